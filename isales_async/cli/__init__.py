"""The ``isales`` command line (``pip install "isales-async[cli]"``).

Connection settings come from flags or the environment: ``ISALES_BASE_URL``,
``ISALES_AK``, ``ISALES_VDN_ID`` and the secret from ``ISALES_SK`` or ``ISALES_SK_FILE``.
The secret is never a flag: a command line shows in the process list.

The commands live in rooms by group: ``_settings`` (the group and its connection
settings), ``_output`` (consoles, JSON Lines, tables, exit codes), ``_queries``,
``_writeback`` with ``_files``, ``_followup`` and ``_signals``, ``_journal`` and ``_demo``
(the only one that loads :mod:`isales_async.testing`, and only when it runs).
"""

from __future__ import annotations

try:
    import click  # noqa: F401
    import rich  # noqa: F401
except ImportError as _missing_extra:  # pragma: no cover - only without the extra
    raise SystemExit("the isales command needs its extra: pip install 'isales-async[cli]'") from _missing_extra

from ._demo import demo, fake_server
from ._journal import journal_group
from ._queries import business_results, call_result, call_results, external_results, obs_codes
from ._settings import cli
from ._writeback import writeback

__all__ = ["cli", "main"]

for _command in (
    obs_codes,
    business_results,
    external_results,
    call_result,
    call_results,
    writeback,
    journal_group,
    fake_server,
    demo,
):
    cli.add_command(_command)


def main() -> None:
    """The ``isales`` entry point."""
    cli()
