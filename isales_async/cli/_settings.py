"""The ``isales`` group: connection settings from flags or the environment, shared by every subcommand.

The secret comes only from ``ISALES_SK`` or ``ISALES_SK_FILE``, never a flag: a command
line shows in the process list."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import attrs
import click

from .. import ISalesClient, __version__
from ._output import err


@attrs.define
class Settings:
    """The connection settings of the group's options, shared by every subcommand."""

    base_url: str | None
    ak: str | None
    vdn_id: int | None
    ca_file: str | None
    insecure: bool
    max_concurrency: int
    trust_env: bool = True

    def client(self, *, concurrency_at_least: int = 1) -> ISalesClient:
        """A client from these settings; what is missing is named, a warning is one line on stderr.

        ``concurrency_at_least`` raises the client's ``max_concurrency`` for a command that
        asks for more requests in flight (a writeback's ``--concurrency``), which the
        group's default would otherwise cap silently.
        """
        sk = _read_secret()
        missing = [
            name
            for name, value in (
                ("--base-url/ISALES_BASE_URL", self.base_url),
                ("--ak/ISALES_AK", self.ak),
                ("--vdn-id/ISALES_VDN_ID", self.vdn_id),
            )
            if value is None or value == ""
        ]
        if sk is None:
            missing.append("ISALES_SK or ISALES_SK_FILE")
        if missing:
            raise click.UsageError("missing settings: " + ", ".join(missing))
        assert self.base_url and self.ak and self.vdn_id and sk
        # Recorded under the filters in force (PYTHONWARNINGS, -W), then printed without a source line.
        with warnings.catch_warnings(record=True) as caught:
            client = ISalesClient(
                self.base_url,
                ak=self.ak,
                sk=sk,
                vdn_id=self.vdn_id,
                ca_file=self.ca_file,
                insecure=self.insecure,
                max_concurrency=max(self.max_concurrency, concurrency_at_least),
                trust_env=self.trust_env,
            )
        for message in dict.fromkeys(str(w.message) for w in caught):
            err.print(f"warning: {message}", highlight=False, markup=False, soft_wrap=True)
        return client


def _read_secret() -> str | None:
    if os.environ.get("ISALES_SK"):
        return os.environ["ISALES_SK"]
    path = os.environ.get("ISALES_SK_FILE")
    if path:
        try:
            return Path(path).read_text().strip() or None
        except OSError as exc:
            raise click.UsageError(f"cannot read ISALES_SK_FILE: {exc.strerror}") from None
    return None


@click.group()
@click.version_option(__version__, prog_name="isales", message="%(prog)s %(version)s")
@click.option(
    "--base-url",
    envvar="ISALES_BASE_URL",
    help="https://ip:port of CC-iSales [ISALES_BASE_URL]; a trailing /rest/isales/v1/openapi is dropped",
)
@click.option(
    "--ak", envvar="ISALES_AK", help="access key [ISALES_AK]; the SK comes only from ISALES_SK or ISALES_SK_FILE"
)
@click.option("--vdn-id", envvar="ISALES_VDN_ID", type=click.IntRange(1, 9999), help="VDN, 1-9999 [ISALES_VDN_ID]")
@click.option(
    "--ca-file",
    envvar="ISALES_CA_FILE",
    type=click.Path(exists=True, dir_okay=False),
    help="CA bundle for the server's certificate",
)
@click.option("--insecure", is_flag=True, help="do not verify TLS certificates (warns)")
@click.option(
    "--max-concurrency",
    default=10,
    show_default=True,
    help="requests in flight at once (writeback raises it to its --concurrency)",
)
@click.option(
    "--no-proxy",
    is_flag=True,
    help="connect directly: ignore HTTP_PROXY, HTTPS_PROXY and NO_PROXY (honoured by default, as curl does)",
)
@click.option("-v", "--verbose", count=True, help="log retries (-v) or every request (-vv) to stderr")
@click.pass_context
def cli(
    ctx: click.Context,
    base_url: str | None,
    ak: str | None,
    vdn_id: int | None,
    ca_file: str | None,
    insecure: bool,
    max_concurrency: int,
    no_proxy: bool,
    verbose: int,
) -> None:
    """Query and write CC-iSales outbound-call results.

    Exits 0 on success, 2 on a usage error, a connection, TLS or credentials problem, or
    an error answer of the server (``writeback`` adds 1 and 130/143: see its help).
    """
    if verbose:
        logging.basicConfig(
            level=logging.DEBUG if verbose > 1 else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
        )
    ctx.obj = Settings(base_url, ak, vdn_id, ca_file, insecure, max_concurrency, trust_env=not no_proxy)
