"""``ISalesClient``: the public entry point, owning the session and the resources."""

from __future__ import annotations

import copy
import ssl as _ssl
import types
import warnings
from collections.abc import Callable, Coroutine, Mapping, Sequence
from types import TracebackType
from typing import Any

import aiohttp
import attrs
import yarl

from ._aiohttp import AiohttpTransport
from ._clock import Clock
from ._endpoints import Endpoint
from ._errors import ValidationError
from ._hooks import Hook, RetryScheduled
from ._limits import SharedLimits
from ._retry import RetryBudget, RetryPolicy
from ._secret import Secret
from ._session import RouteLimit, Session, parse_base_url
from ._transport import Timeouts, Transport
from ._validation import check_access_key, check_bool, check_clock, check_int_range, field_check
from .resources.business_results import BusinessResults, SharedDefinitions
from .resources.call_results import CallResults
from .resources.external_results import ExternalResults
from .resources.obs_result_codes import ObsResultCodes

__all__ = ["DEFAULT_ROUTE_LIMITS", "ClientOptions", "ISalesClient"]

#: The flow control the API reference states for the campaign call-result query; read-only,
#: since it is every client's default (pass ``{**DEFAULT_ROUTE_LIMITS, ...}`` to change it).
DEFAULT_ROUTE_LIMITS: Mapping[str, RouteLimit] = types.MappingProxyType(
    {"callresult": RouteLimit(concurrency=10, interval=1.0)}
)
DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024


def _check_tls_choice(ssl: _ssl.SSLContext | None, ca_file: str | None, insecure: bool) -> None:
    """One way to verify the server: the default CAs, ``ssl``, ``ca_file``, or none (``insecure``)."""
    if insecure and (ssl is not None or ca_file is not None):
        raise ValidationError("insecure", "cannot be combined with ssl or ca_file")
    if ssl is not None and ca_file is not None:
        raise ValidationError("ca_file", "give either ssl or ca_file, not both")


def _ssl_option(options: ClientOptions) -> _ssl.SSLContext | bool:
    """What aiohttp's ``ssl=`` gets: reads ``ca_file`` and warns for ``insecure``, so it runs
    once, when the client is made, not when options are (``ClientOptions`` does no I/O)."""
    if options.insecure:
        warnings.warn("TLS certificate verification is disabled (insecure=True)", stacklevel=4)
        return False
    if options.ca_file is not None:
        try:
            return _ssl.create_default_context(cafile=options.ca_file)
        except (OSError, TypeError, ValueError) as exc:  # missing file, not PEM (ssl.SSLError), not a path
            raise ValidationError("ca_file", f"cannot be loaded: {exc}") from None
    return options.ssl if options.ssl is not None else True


def _check_instance(field: str, value: object, cls: type) -> None:
    """An option that must be ``None`` or a ``cls`` (a wrong one would fail much later)."""
    if value is not None and not isinstance(value, cls):
        raise ValidationError(field, f"must be {cls.__name__}, got {type(value).__name__}")


def _instance_of(cls: type) -> Callable[[object, attrs.Attribute[Any], Any], None]:
    """An attrs validator: the option is ``None`` or a ``cls``."""
    return field_check(_check_instance, cls=cls)


def _check_hooks(field: str, hooks: Sequence[Hook] | None) -> None:
    if hooks is None:
        return
    if isinstance(hooks, (str, bytes)) or not isinstance(hooks, Sequence):
        raise ValidationError(field, f"must be a sequence of callables, got {type(hooks).__name__}")
    for hook in hooks:
        if not callable(hook):
            raise ValidationError(field, f"must be callables, got {type(hook).__name__}")


def _check_limits(field: str, limits: object) -> None:
    if limits is not None and not isinstance(limits, SharedLimits):
        raise ValidationError(
            field, f"must be None (limits in this process) or an isales_async.RedisLimits, got {type(limits).__name__}"
        )


def _check_route_limits(field: str, route_limits: Mapping[str, RouteLimit]) -> None:
    if not isinstance(route_limits, Mapping):
        raise ValidationError(field, f"must be a mapping, got {type(route_limits).__name__}")
    for name, limit in route_limits.items():
        _check_instance(f"{field}[{name!r}]", limit, RouteLimit)


def _check_transport(transport: object, **aiohttp_options: object) -> None:
    """A transport, and none of the options only the aiohttp transport takes (they would be ignored)."""
    if not isinstance(transport, Transport):
        raise ValidationError(
            "transport", f"must be a Transport (open, aclose, check_usable, send), got {type(transport).__name__}"
        )
    for name, value in aiohttp_options.items():
        if value not in (None, False):
            raise ValidationError(name, "is an option of the default aiohttp transport: give it or transport, not both")


@attrs.frozen(kw_only=True)
class ClientOptions:
    """Everything that tunes an :class:`ISalesClient` besides where it connects and who it is
    (``base_url``, ``ak``, ``sk``, ``vdn_id``): each option once, with its default and its check.

    ``ISalesClient(url, ak=..., sk=..., vdn_id=..., max_concurrency=5)`` and
    ``ISalesClient(url, ak=..., sk=..., vdn_id=..., options=ClientOptions(max_concurrency=5))``
    make the same client; ``client.options`` is what it was made with, and
    ``client.with_options(...)`` evolves it. A bad option is a
    :class:`~isales_async.ValidationError` naming it, here, before any client exists. It
    holds no credential (the SK stays a :class:`~isales_async.Secret` in the client) and
    does no I/O: ``ca_file`` is read, and ``insecure`` warns, when a client is made.

    Args:
        max_concurrency: requests in flight at once, across every call of the client.
        timeouts: per-attempt timeouts; ``None``: ``Timeouts()``.
        retry: the retry policy (see :class:`~isales_async.RetryPolicy`); ``None``: ``RetryPolicy()``.
        ssl: an ``ssl.SSLContext`` for servers with their own CA; ``ca_file`` does the same
            from a PEM file. Verification is on unless ``insecure=True`` (which warns).
        ca_file: a PEM file of the CAs to trust, instead of ``ssl``.
        insecure: do not verify the server's certificate (refused with ``ssl`` or ``ca_file``).
        session: an aiohttp session to use instead of creating one (the client does not close it).
        hooks: callables given every call, request, response, retry, cool-down and give-up
            event (:mod:`isales_async.otel` has one for OpenTelemetry); default: standard
            ``logging`` on the ``isales_async`` logger.
        clock: replaces the real clock: an object with ``monotonic()``, ``wall()`` and
            ``sleep()`` (tests use :class:`isales_async.testing.FakeClock`).
        max_response_bytes: larger response bodies are refused.
        route_limits: per-endpoint flow limits (default: the callresult limit).
        limits: where the route limits and the cool-down after a ``Retry-After`` are kept:
            ``None`` (the default) in this process; a :class:`~isales_async.RedisLimits`
            shares them with every process that names the same tenant, which is what a
            tenant's limit means once several workers or pods call it.
        retry_budget: the budget retries draw on, shared by every call of the client.
        trust_env: take the proxy from ``HTTP_PROXY``/``HTTPS_PROXY`` (lower case too),
            skipping the hosts ``NO_PROXY`` lists, as httpx and curl do; read once, when the
            client is made. Off by default, as in aiohttp. ``.netrc`` is not read: requests are signed.
        transport: what carries the signed requests (a :class:`~isales_async.Transport`)
            instead of aiohttp, e.g. ``FakeISales().transport()`` in a unit test; it
            replaces ``session``, ``ssl``, ``ca_file``, ``insecure`` and ``trust_env``,
            which are then refused.
    """

    max_concurrency: int = attrs.field(default=10, validator=field_check(check_int_range, low=1))
    timeouts: Timeouts | None = attrs.field(default=None, validator=_instance_of(Timeouts))
    retry: RetryPolicy | None = attrs.field(default=None, validator=_instance_of(RetryPolicy))
    ssl: _ssl.SSLContext | None = attrs.field(default=None, validator=_instance_of(_ssl.SSLContext))
    ca_file: str | None = None
    insecure: bool = attrs.field(default=False, validator=field_check(check_bool))
    session: aiohttp.ClientSession | None = attrs.field(default=None, validator=_instance_of(aiohttp.ClientSession))
    hooks: Sequence[Hook] | None = attrs.field(default=None, validator=field_check(_check_hooks))
    clock: Clock | None = attrs.field(default=None, validator=field_check(check_clock))
    max_response_bytes: int = attrs.field(
        default=DEFAULT_MAX_RESPONSE_BYTES, validator=field_check(check_int_range, low=1)
    )
    route_limits: Mapping[str, RouteLimit] = attrs.field(
        default=DEFAULT_ROUTE_LIMITS, validator=field_check(_check_route_limits)
    )
    limits: SharedLimits | None = attrs.field(default=None, validator=field_check(_check_limits))
    retry_budget: RetryBudget | None = attrs.field(default=None, validator=_instance_of(RetryBudget))
    trust_env: bool = attrs.field(default=False, validator=field_check(check_bool))
    transport: Transport | None = None

    def __attrs_post_init__(self) -> None:
        if self.transport is None:
            _check_tls_choice(self.ssl, self.ca_file, self.insecure)
        else:
            _check_transport(
                self.transport,
                session=self.session,
                ssl=self.ssl,
                ca_file=self.ca_file,
                insecure=self.insecure,
                trust_env=self.trust_env,
            )


_DEFAULT_OPTIONS = ClientOptions()


def _one_spelling(given: ClientOptions, options: ClientOptions | None) -> ClientOptions:
    """The options of a client: ``options=``, or the ones given one by one, never a mix."""
    if options is None:
        return given
    _check_instance("options", options, ClientOptions)
    if given != _DEFAULT_OPTIONS:
        raise ValidationError("options", "give the options either one by one or as options=, not both")
    return options


@attrs.frozen
class _ViewRequester:
    """The :class:`~isales_async.resources._base.Requester` resources call: the client's
    session, with the timeouts and retry policy of one view (``with_options``)."""

    session: Session
    timeouts: Timeouts | None
    retry: RetryPolicy | None

    @property
    def clock(self) -> Clock:
        return self.session.clock

    def request(
        self,
        endpoint: Endpoint,
        *,
        path_params: Mapping[str, str | int] | None = None,
        query: Sequence[tuple[str, str]] = (),
        body: Mapping[str, Any] | None = None,
        on_send: Callable[[], None] | None = None,
        on_retry: Callable[[RetryScheduled], None] | None = None,
    ) -> Coroutine[Any, Any, dict[str, Any]]:
        # The session's coroutine itself, not one awaiting it: a coroutine less per call.
        return self.session.request(
            endpoint,
            path_params=path_params,
            query=query,
            body=body,
            timeouts=self.timeouts,
            retry=self.retry,
            on_send=on_send,
            on_retry=on_retry,
        )


class ISalesClient:
    """An asyncio client for the CC-iSales outbound-call open API.

    Use it as an async context manager; it owns one aiohttp ``ClientSession`` (or uses
    the injected ``session``, which it then does not close)::

        async with ISalesClient("https://isales.example:28090", ak=AK, sk=SK, vdn_id=1) as client:
            async for code in client.obs_result_codes.iter():
                print(code.obs_code, code.obs_code_desc)

    Args:
        base_url: ``https://ip:port`` of the CC-iSales server (a path prefix is kept).
        ak: the access key, printable ASCII without ``/``; sent in every ``Authorization`` header.
        sk: the secret key, a string or a :class:`~isales_async.Secret`; wrapped in a
            ``Secret`` at once, only ever revealed to sign, never shown.
        vdn_id: the tenant's VDN, 1 to 9999.
        max_concurrency: requests in flight at once, across every call of this client.
        timeouts: per-attempt timeouts.
        retry: the retry policy (see :class:`RetryPolicy`).
        ssl: an ``ssl.SSLContext`` for servers with their own CA.
        ca_file: a PEM file of the CAs to trust, instead of ``ssl``.
        insecure: no certificate verification (warns).
        session: an aiohttp session to use instead of creating one.
        hooks: callables given every call, request, response, retry, cool-down and give-up event.
        clock: replaces the real clock (``monotonic()``, ``wall()``, ``sleep()``).
        max_response_bytes: larger response bodies are refused.
        route_limits: per-endpoint flow limits (default: the callresult limit).
        limits: ``None`` to keep the limits in this process, or a :class:`RedisLimits`
            to share them with every process of the tenant.
        retry_budget: the budget retries draw on, shared by every call of the client.
        trust_env: take the proxy from ``HTTP_PROXY``/``HTTPS_PROXY``, honouring ``NO_PROXY``.
        transport: what carries the signed requests instead of aiohttp.
        options: all of the above as one :class:`ClientOptions` (which documents each
            option), instead of one by one.
    """

    def __init__(
        self,
        base_url: str,
        *,
        ak: str,
        sk: str | Secret,
        vdn_id: int,
        max_concurrency: int = 10,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        ssl: _ssl.SSLContext | None = None,
        ca_file: str | None = None,
        insecure: bool = False,
        session: aiohttp.ClientSession | None = None,
        hooks: Sequence[Hook] | None = None,
        clock: Clock | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        route_limits: Mapping[str, RouteLimit] = DEFAULT_ROUTE_LIMITS,
        limits: SharedLimits | None = None,
        retry_budget: RetryBudget | None = None,
        trust_env: bool = False,
        transport: Transport | None = None,
        options: ClientOptions | None = None,
    ) -> None:
        # First of all: from here on no frame of a traceback holds the SK itself.
        sk = Secret(sk)
        if sk.problem is not None:
            raise ValidationError("sk", sk.problem)
        self.ak: str = check_access_key("ak", ak)
        self.vdn_id: int = check_int_range("vdn_id", vdn_id, 1, 9999)
        given = ClientOptions(
            max_concurrency=max_concurrency,
            timeouts=timeouts,
            retry=retry,
            ssl=ssl,
            ca_file=ca_file,
            insecure=insecure,
            session=session,
            hooks=hooks,
            clock=clock,
            max_response_bytes=max_response_bytes,
            route_limits=route_limits,
            limits=limits,
            retry_budget=retry_budget,
            trust_env=trust_env,
            transport=transport,
        )
        self._options: ClientOptions = _one_spelling(given, options)
        url = parse_base_url(base_url)
        if url.scheme == "http":
            warnings.warn(
                f"base_url {url.host_port_subcomponent} uses plain http: the signed requests and "
                "their data travel unencrypted",
                stacklevel=2,
            )
        self.base_url: str = base_url
        self._session = self._make_session(url, ak, sk, vdn_id)
        self._shared_definitions = SharedDefinitions()  # views (with_options) share it: one tenant
        self._bind_resources()

    def _make_session(self, url: yarl.URL, ak: str, sk: Secret, vdn_id: int) -> Session:
        options = self._options
        transport = options.transport
        if transport is None:
            transport = AiohttpTransport(
                url,
                ssl=_ssl_option(options),
                session=options.session,
                max_concurrency=options.max_concurrency,
                trust_env=options.trust_env,
            )
        return Session(
            url,
            ak=ak,
            sk=sk,
            vdn_id=vdn_id,
            max_concurrency=options.max_concurrency,
            timeouts=options.timeouts or Timeouts(),
            retry=options.retry or RetryPolicy(),
            transport=transport,
            hooks=options.hooks,
            clock=options.clock,
            max_response_bytes=options.max_response_bytes,
            route_limits=options.route_limits,
            retry_budget=options.retry_budget,
            limits=options.limits,
        )

    def _bind_resources(self) -> None:
        """Resources that send through the session with this client's (or view's) timeouts and retry."""
        requester = _ViewRequester(self._session, timeouts=self._options.timeouts, retry=self._options.retry)
        self._requester = requester
        self.obs_result_codes: ObsResultCodes = ObsResultCodes(requester)
        self.business_results: BusinessResults = BusinessResults(requester, self._shared_definitions)
        self.call_results: CallResults = CallResults(requester)
        self.external_results: ExternalResults = ExternalResults(requester)

    @property
    def options(self) -> ClientOptions:
        """The options this client, or this ``with_options`` view of it, was made with."""
        return self._options

    def __repr__(self) -> str:
        # getattr: a client whose constructor failed midway must still have a repr.
        fields = ", ".join(f"{name}={getattr(self, name, '?')!r}" for name in ("base_url", "ak", "vdn_id"))
        return f"ISalesClient({fields})"

    async def __aenter__(self) -> ISalesClient:
        await self._session.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Refuse further requests (:class:`~isales_async.ClientClosedError`) and close the
        aiohttp session if this client created it; ``async with`` opens it again."""
        await self._session.close()

    def with_options(self, *, timeouts: Timeouts | None = None, retry: RetryPolicy | None = None) -> ISalesClient:
        """A view of this client whose calls use other timeouts or retry policy.

        Its :attr:`options` are this client's evolved (``attrs.evolve``) with what is given;
        ``None`` keeps this client's. It shares the connection pool, limiter, cool-down,
        retry budget, proxy and the cached business-result definitions::

            await client.with_options(retry=RetryPolicy(attempts=1)).call_results.get(call_id)
        """
        options = self._options
        view = copy.copy(self)
        view._options = attrs.evolve(
            options,
            timeouts=options.timeouts if timeouts is None else timeouts,
            retry=options.retry if retry is None else retry,
        )
        view._bind_resources()
        return view
