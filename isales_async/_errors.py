"""The one exception hierarchy of the client.

Every error the client raises on purpose derives from :class:`ISalesError`::

    ISalesError
    ├── ValidationError            bad input, refused before anything is sent (names the field)
    │   ├── DuplicateRecordError   a batch record whose dataId an earlier record has (not sent)
    │   └── UndefinedResultError   a busiResult/subStatus the tenant does not define (not sent)
    ├── ClientClosedError          a request on a client that is not open (also a RuntimeError)
    ├── WrongEventLoopError        a request from another event loop than the client's (also a RuntimeError)
    ├── DeadlineExceededError      a call ran out of its deadline (a write: before it was sent)
    ├── TransportError             no usable HTTP response
    │   ├── ConnectError           the connection failed before the request was sent
    │   │   └── TLSError           certificate or handshake failure (not retried)
    │   ├── ReadTimeoutError       the request was sent, no timely response
    │   └── ConnectionLostError    the connection broke after the request was sent
    ├── HTTPStatusError            a non-2xx status (``.status``)
    │   ├── AuthenticationError    401: signature refused (AK/SK, clock skew, Host)
    │   ├── RateLimitedError       429 once retries are spent (``.retry_after``)
    │   └── ServerError            5xx
    ├── ResponseFormatError        a 2xx body that is not the JSON envelope (HTML, garbage)
    │   └── ResponseTooLargeError  a body over the size cap
    ├── BusinessError              a ``resultCode``/``returnCode`` other than ``0200000``
    │   ├── InvalidParameterError  the endpoint's parameter-error codes
    │   └── NotFoundError          the endpoint's "does not exist" codes
    ├── OutcomeUnknownError        a write whose fate on the server is unknown (never resent)
    ├── UnexpectedError            a batch record failed, unsent, by an exception of no type here (``__cause__``)
    ├── PaginationError            a server that pages inconsistently (a repeated page, a short one, no end)
    ├── PushFormatError            a pushed body that is not a JSON list
    ├── DefinitionsUnavailableError  the tenant's business results could not be fetched, or none is listed:
    │                                nothing sent (``.cause``)
    ├── JournalError               a batch journal that cannot be opened, read or written (``.path``)
    │   └── JournalLockedError     another run holds the journal (``.holder``)
    └── BatchAbortedError          a fatal error stopped a batch (``.report`` so far, ``.reason``, ``.cause``)

Cancellation is never wrapped: ``asyncio.CancelledError`` passes through untouched.

Every error survives ``pickle`` (for Celery, multiprocessing and the like): the root
class rebuilds any subclass from its ``args`` and ``__dict__``, so a subclass only has
to keep its attributes on the instance and pass its final message to
``super().__init__(message)``. ``__cause__`` and tracebacks are not carried across,
as with any pickled exception.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .batch._report import BatchReport

__all__ = [
    "AuthenticationError",
    "BatchAbortedError",
    "BusinessError",
    "ClientClosedError",
    "ConnectError",
    "ConnectionLostError",
    "DeadlineExceededError",
    "DefinitionsUnavailableError",
    "DuplicateRecordError",
    "HTTPStatusError",
    "ISalesError",
    "InvalidParameterError",
    "JournalError",
    "JournalLockedError",
    "NotFoundError",
    "OutcomeUnknownError",
    "PaginationError",
    "PushFormatError",
    "RateLimitedError",
    "ReadTimeoutError",
    "ResponseFormatError",
    "ResponseTooLargeError",
    "ServerError",
    "TLSError",
    "TransportError",
    "UndefinedResultError",
    "UnexpectedError",
    "ValidationError",
    "WrongEventLoopError",
]


def _rebuild_error(cls: type[ISalesError], args: tuple[object, ...]) -> ISalesError:
    # ``__new__`` sets ``args`` without running ``__init__``, whose signature differs per
    # subclass; pickle then restores the instance ``__dict__``.
    return cls.__new__(cls, *args)


class ISalesError(Exception):
    """Root of every error raised by isales-async."""

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild_error, (type(self), self.args), self.__dict__ or None


class ValidationError(ISalesError, ValueError):
    """A value was refused before sending; ``field`` names the offending parameter."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class ClientClosedError(ISalesError, RuntimeError):
    """A request on a client that was never opened or is already closed (``aclose()``).

    Nothing was sent. It is a ``RuntimeError`` too, as this misuse was before it had a type.
    """


class WrongEventLoopError(ISalesError, RuntimeError):
    """A request from another event loop than the one the client was opened in.

    Nothing was sent: the client's connections belong to the loop that opened it (an
    ``asyncio.run`` per call, or a client shared across threads, gets here). Close it
    and open it again (``async with``) in the loop that uses it. It is a
    ``RuntimeError`` too, as aiohttp's own error for this misuse was.
    """


class DeadlineExceededError(ISalesError):
    """A call ran out of its deadline.

    Either a wait would outlast it (the client's shared cool-down after a
    ``Retry-After`` or a route's flow limit spacing; ``wait`` is how long it still had to
    run, in seconds), or the deadline passed while the attempt waited for a limiter slot
    or, for a read, while its request was in flight (``wait`` is 0). A write whose
    request had left when the deadline passed is an :class:`OutcomeUnknownError`
    instead, so a write that ends here was not sent, and every earlier attempt of it was
    refused unprocessed (only those are retried): it was provably not applied.
    ``__cause__`` is the previous attempt's failure, if there was one.
    """

    def __init__(self, message: str, *, endpoint: str, wait: float) -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.wait = wait


class DuplicateRecordError(ValidationError):
    """A batch record whose canonical dataId (``key``) an earlier record of the batch has; it is not sent."""

    def __init__(self, key: str) -> None:
        super().__init__("data_id", f"{key} appears earlier in this batch; not sent twice")
        self.key = key


class UndefinedResultError(ValidationError):
    """A writeback the tenant's business-result definitions refuse; it is not sent.

    ``field`` is ``busi_result`` (not a defined level-1 code) or ``sub_status`` (not one
    of that code's sub-statuses, or given to a code that has none); ``value`` is the code
    refused, ``reason`` which of the three it is (the constants of ``_definitions``), and
    ``suggestions`` the closest defined codes, best first (perhaps none).
    """

    def __init__(self, field: str, message: str, *, value: str, reason: str, suggestions: tuple[str, ...] = ()) -> None:
        super().__init__(field, message)
        self.value = value
        self.reason = reason
        self.suggestions = suggestions


class DefinitionsUnavailableError(ISalesError):
    """The tenant's business-result definitions could not be fetched, so nothing was checked or sent.

    A batch asked to check its records does not start without them: an unreachable
    server must not turn into a refusal per record. ``cause`` (also ``__cause__``) is the
    error the fetch ended with; ``None`` when the fetch succeeded but listed no
    business result at all (a check against nothing would refuse every record).
    """

    def __init__(self, message: str, *, cause: BaseException | None) -> None:
        super().__init__(message)
        self.cause = cause


class TransportError(ISalesError):
    """No usable HTTP response was received."""


class ConnectError(TransportError):
    """The connection could not be made, so the request was provably not sent."""


class TLSError(ConnectError):
    """TLS failed (certificate verification, handshake); retrying cannot help."""


class ReadTimeoutError(TransportError):
    """The request went out but no response came in time."""


class ConnectionLostError(TransportError):
    """The connection broke after the request may have been sent."""


class HTTPStatusError(ISalesError):
    """The server answered with a non-2xx status."""

    def __init__(self, message: str, *, status: int, endpoint: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.endpoint = endpoint
        #: The server's ``Retry-After`` hint in seconds, when it sent one.
        self.retry_after = retry_after


class AuthenticationError(HTTPStatusError):
    """HTTP 401: the server refused the C2 signature. Never retried."""


class RateLimitedError(HTTPStatusError):
    """HTTP 429 after every allowed retry; ``retry_after`` is the server's hint in seconds."""


class ServerError(HTTPStatusError):
    """HTTP 5xx."""


class ResponseFormatError(ISalesError):
    """A 2xx response whose body is not a JSON object with a result code, or holds a
    value the models cannot read: then ``field`` names it as the API does, with its
    position (``data[3].callStatus``), and ``value`` is the raw value received."""

    def __init__(
        self, message: str, *, endpoint: str, snippet: str = "", field: str | None = None, value: Any = None
    ) -> None:
        super().__init__(f"{message} ({endpoint}){': ' + snippet if snippet else ''}")
        self.endpoint = endpoint
        self.snippet = snippet
        self.field = field
        self.value = value


class ResponseTooLargeError(ResponseFormatError):
    """The response body exceeded the client's ``max_response_bytes``."""


class BusinessError(ISalesError):
    """The envelope carried a result code other than ``0200000``.

    ``code`` and ``description`` are the server's; ``meaning`` is what the code means
    for this particular ``endpoint`` (the same code means different things elsewhere).
    """

    def __init__(self, *, code: str, description: str, endpoint: str, meaning: str) -> None:
        super().__init__(f"{endpoint} failed with {code}: {description or meaning}")
        self.code = code
        self.description = description
        self.endpoint = endpoint
        self.meaning = meaning


class InvalidParameterError(BusinessError):
    """The server rejected a parameter (see ``description``)."""


class NotFoundError(BusinessError):
    """What the request names does not exist on the server."""


class OutcomeUnknownError(ISalesError):
    """A write was sent but its fate is unknown; it was deliberately not resent.

    ``__cause__`` holds the failure that made the outcome unknown.
    """

    def __init__(self, message: str, *, endpoint: str) -> None:
        super().__init__(message)
        self.endpoint = endpoint


class UnexpectedError(ISalesError):
    """A batch record failed before it was sent, by an exception the client did not expect.

    That exception, a bug in the client or in the record's own methods, is ``__cause__``;
    it is wrapped so that every :attr:`Outcome.error <isales_async.Outcome.error>` is an
    :class:`ISalesError`. The record was not sent, so a re-run sends it again. (After
    sending, the same exception makes the outcome an :class:`OutcomeUnknownError`.)
    """


class PaginationError(ISalesError):
    """The server paged inconsistently: a page repeated the one before it (``pageNum``
    ignored), a page came back short twice before the reported total, or the page cap was
    reached. The items yielded before it were in order and never repeated."""


class PushFormatError(ISalesError):
    """A pushed body that is not a JSON list of call-result objects."""


class JournalError(ISalesError):
    """A batch journal could not be opened, read or written.

    ``path`` is the journal file; the message and ``__cause__`` carry the OS or SQLite error.
    """

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"journal {path}: {message}")
        self.path = path


class JournalLockedError(JournalError):
    """Another run holds the journal; ``holder`` says who (process id, host, start time).

    The lock is the operating system's: it goes when the holder ends or dies, ``kill -9`` included.
    """

    def __init__(self, path: str, holder: str) -> None:
        super().__init__(path, f"in use by another run ({holder}); one run at a time may use a journal")
        self.holder = holder


class BatchAbortedError(ISalesError):
    """A fatal error stopped a batch: nothing more was sent, and records not yet sent stay pending.

    ``report`` is the :class:`~isales_async.BatchReport` so far (records taken but never
    sent are in ``report.not_sent``), ``reason`` says why in words, ``cause`` (also
    ``__cause__``) is the error: an :class:`AuthenticationError`, a :class:`ConnectError`
    once the retries are spent, a :class:`TLSError`, a :class:`JournalError`, or the
    input iterable's own exception.
    """

    def __init__(self, reason: str, *, report: BatchReport, cause: BaseException | None) -> None:
        super().__init__(f"the batch stopped: {reason}")
        self.reason = reason
        self.report = report
        self.cause = cause
