"""SIGINT and SIGTERM during ``isales writeback``, and the command that resumes a stopped run."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import shlex
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from .. import BatchControl
from ._output import err


class Signals:
    """SIGINT and SIGTERM for the whole of ``isales writeback``: recorded, never an exception.

    Installed before the command reads anything and kept until it exits, so a signal at
    any moment (checking the header, opening the journal, writing the follow-up file) is
    acted on where stopping is safe, instead of a ``KeyboardInterrupt`` (or the default
    kill of SIGTERM) in the middle of a write. While the batch runs (:meth:`stopping`),
    the first stops it gracefully and a second abandons the records in flight; a dry run
    (:meth:`cancelling`) just stops. Outside the main thread nothing is installed.
    """

    def __init__(self) -> None:
        self.received: list[int] = []
        self.during_batch: list[int] = []
        self._on_signal: Callable[[int], None] | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> Signals:
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[signum] = signal.signal(signum, self._record)
            except ValueError:  # not the main thread
                break
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)

    @property
    def status(self) -> int | None:
        """The exit status the first signal asks for (128 + its number), if one came."""
        return 128 + self.received[0] if self.received else None

    def _record(self, signum: int, frame: object) -> None:
        self.received.append(signum)
        if self._on_signal is not None:
            self._on_signal(signum)

    @contextlib.contextmanager
    def _calling(self, act: Callable[[int], None]) -> Iterator[None]:
        """Run ``act(signum)`` in the running loop for each signal, those already received first."""
        loop = asyncio.get_running_loop()

        def on_signal(signum: int) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed as the signal came: the command ends anyway
                loop.call_soon_threadsafe(act, signum)  # which also wakes the loop

        self._on_signal = on_signal
        try:
            for signum in self.received:
                act(signum)
            yield
        finally:
            self._on_signal = None

    def stopping(self, control: BatchControl) -> contextlib.AbstractContextManager[None]:
        """While the batch runs: the first signal stops it, a second abandons what is in flight."""

        def act(signum: int) -> None:
            self.during_batch.append(signum)
            name = signal.Signals(signum).name
            if len(self.during_batch) == 1:
                control.stop()
                err.print(
                    f"{name}: stopping: no new records; waiting for those in flight ({name} again abandons them)",
                    highlight=False,
                    soft_wrap=True,
                )
            else:
                control.abandon()
                err.print(
                    f"{name}: abandoning the records in flight: they are listed as unknown",
                    highlight=False,
                    soft_wrap=True,
                )

        return self._calling(act)

    def cancelling(self, task: asyncio.Task[Any]) -> contextlib.AbstractContextManager[None]:
        """While ``task`` (which sends nothing) runs: a signal cancels it."""

        def act(signum: int) -> None:
            task.cancel()

        return self._calling(act)

    def exit_if_received(self, doing: str) -> None:
        """Exit with the signal's status if one came before ``doing`` started; nothing was sent."""
        if self.status is not None:
            name = signal.Signals(self.received[0]).name
            err.print(f"stopped by {name} before {doing}: nothing was sent", highlight=False, soft_wrap=True)
            raise SystemExit(self.status)


def with_signals(command: Callable[..., None]) -> Callable[..., None]:
    """Run ``command`` with :class:`Signals` installed, passed to it as ``signals``."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        with Signals() as signals:
            command(*args, signals=signals, **kwargs)

    return wrapper


# Options a resume command never repeats: they would resend what this run left in doubt
# or refused, or they are not a run at all.
_NOT_RESUMED = frozenset({"retry_failed", "resend_unknown", "retry_unknown", "dry_run"})


def _flags_given(ctx: click.Context, skip: frozenset[str] = frozenset()) -> list[str]:
    """The options of ``ctx`` given on the command line (not from the environment or a default), as words.

    The SK is never among them: it is never an option.
    """
    words: list[str] = []
    for param in ctx.command.params:
        if not isinstance(param, click.Option) or param.name is None or param.name in skip:
            continue
        if ctx.get_parameter_source(param.name) is not click.core.ParameterSource.COMMANDLINE:
            continue
        value = ctx.params.get(param.name)
        name = max(param.opts, key=len)
        if param.count:
            words += [name] * int(value or 0)
        elif param.is_flag and param.secondary_opts and not value:
            words.append(max(param.secondary_opts, key=len))
        elif param.is_flag:
            words += [name] if value else []
        elif param.multiple:
            for item in value or ():
                words += [name, str(item)]
        elif value is not None:
            words += [name, str(value)]
    return words


def resume_command(ctx: click.Context, file: Path) -> str:
    """The command that resumes this run: the same settings and options as given on the
    command line, never --retry-failed or --resend-unknown, which would resend what this
    run left in doubt."""
    parts = ["isales"]
    if ctx.parent is not None:
        parts += _flags_given(ctx.parent)
    parts += [ctx.info_name or "writeback", str(file), *_flags_given(ctx, _NOT_RESUMED)]
    return shlex.join(parts)
