"""The harness that keeps the benchmarks honest: each step in a fresh interpreter, rounds in
alternating order, every ratio with its spread, and the machine's load beside each result.

A step is a function ``module:name`` that takes JSON-able keyword arguments and returns a
JSON-able dict. The parent (:func:`run_steps`) starts, for each step, ``python -m
benchmarks --child module:name --kwargs JSON --out FILE`` (:func:`run_isolated`); the child
(:func:`child_main`) imports the step, runs it and writes its result to ``FILE``, so what
one step leaves behind (threads, the heap, the GC's generations, SQLite files, sockets)
cannot colour the next. The result travels through a file, not stdout, because a step and
the fake server it starts may print.

The pure parts (:func:`spread`, :func:`alternated`, :func:`rounds`, :func:`busy_jiffies`,
:func:`pid_stat`, :func:`tree_ticks`) are tested synchronously in
``tests/test_benchmarks_harness.py``.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

__all__ = [
    "CHILD_FLAG",
    "Load",
    "Meter",
    "Step",
    "StepFailed",
    "alternated",
    "busy_jiffies",
    "child_main",
    "pid_stat",
    "resolve",
    "rounds",
    "run_isolated",
    "run_steps",
    "spread",
    "tree_ticks",
    "write_results",
]

#: The repository's root: the child runs there, so ``benchmarks`` (and ``tests``) import.
ROOT = Path(__file__).resolve().parent.parent
#: The internal flag of ``python -m benchmarks`` that runs one step (see :func:`child_main`).
CHILD_FLAG = "--child"

T = TypeVar("T")
Step = tuple[str, dict[str, Any]]


class StepFailed(RuntimeError):
    """A step's interpreter exited without writing a result (its traceback went to stderr)."""

    def __init__(self, target: str, returncode: int) -> None:
        super().__init__(f"{target} exited with status {returncode} and no result")
        self.target = target
        self.returncode = returncode


# -- pure: rounds, order, spread, the text of /proc -----------------------------------------


def rounds(base: int, repeat: int) -> int:
    """The rounds an A/B step runs: its own ``base`` multiplied by ``--repeat``."""
    if base < 1 or repeat < 1:
        raise ValueError(f"rounds need a base and a repeat of at least 1, not {base} and {repeat}")
    return base * repeat


def alternated(round_index: int, sides: Sequence[T]) -> tuple[T, ...]:
    """The order the ``sides`` of a comparison run in round ``round_index``: rotated by one
    each round, so with two sides each goes first every other round, and a side that
    profits (or suffers) from going first does so as often as the other."""
    if not sides:
        raise ValueError("a round needs at least one side")
    shift = round_index % len(sides)
    return (*sides[shift:], *sides[:shift])


def spread(values: Sequence[float], digits: int = 3) -> dict[str, Any]:
    """The per-round ``values`` of a ratio with their median, min, max and quartiles
    (``statistics.quantiles``, inclusive method), so a reader sees how far a median can
    be trusted. ``iqr`` is ``q3 - q1``; one round has an IQR of 0."""
    if not values:
        raise ValueError("no rounds to summarise")
    if len(values) == 1:
        q1 = q3 = values[0]
    else:
        q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return {
        "by_round": [round(v, digits) for v in values],
        "median": round(statistics.median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
        "q1": round(q1, digits),
        "q3": round(q3, digits),
        "iqr": round(q3 - q1, digits),
    }


def busy_jiffies(proc_stat: str) -> tuple[int, int]:
    """(busy, steal) clock ticks of all CPUs from the text of ``/proc/stat``: busy is user,
    nice, system, irq and softirq time; steal is time the hypervisor gave to other guests."""
    fields = next(line for line in proc_stat.splitlines() if line.startswith("cpu ")).split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return user + nice + system + irq + softirq, steal


def pid_stat(text: str) -> tuple[int, int]:
    """(parent pid, CPU ticks) from the text of ``/proc/PID/stat``: the user and system time of
    the process (all its threads) and of the children it has reaped."""
    fields = text[text.rindex(")") + 2 :].split()  # the command name may hold spaces and parentheses
    return int(fields[1]), sum(int(f) for f in fields[11:15])


def tree_ticks(processes: Mapping[int, tuple[int, int]], root: int) -> int:
    """The CPU ticks of ``root`` and every live descendant, from ``{pid: (ppid, ticks)}``."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in processes.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += processes.get(pid, (0, 0))[1]
        todo.extend(children.get(pid, ()))
    return total


# -- the load while a step (or a round) runs ------------------------------------------------


def _processes() -> dict[int, tuple[int, int]]:
    """Every process's parent and CPU ticks, from ``/proc``."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                found[int(entry.name)] = pid_stat((entry / "stat").read_text())
            except (OSError, ValueError):  # it exited while we looked
                continue
    return found


class Meter:
    """The cores processes outside this one's tree (this process, its fake server, a step's
    interpreter) kept busy since the meter started, and the share of time the hypervisor
    stole: what a reader needs to tell a quiet round from a disturbed one. The load average
    cannot tell: it counts the benchmark itself (about 2 on this machine)."""

    def __init__(self) -> None:
        self.root = os.getpid()
        self.started = time.perf_counter()
        self.jiffies = busy_jiffies(Path("/proc/stat").read_text())
        self.ours = tree_ticks(_processes(), self.root)

    def read(self) -> dict[str, float]:
        """``cores_busy_by_others`` and ``steal_fraction`` from the start until now."""
        wall = time.perf_counter() - self.started
        busy, steal = busy_jiffies(Path("/proc/stat").read_text())
        ours = tree_ticks(_processes(), self.root)
        tick, cores = os.sysconf("SC_CLK_TCK"), len(os.sched_getaffinity(0))
        if wall <= 0:
            return {"cores_busy_by_others": 0.0, "steal_fraction": 0.0}
        others = (busy - self.jiffies[0] - (ours - self.ours)) / tick
        return {
            "cores_busy_by_others": round(max(others, 0.0) / wall, 2),
            "steal_fraction": round((steal - self.jiffies[1]) / tick / wall / cores, 3),
        }


class Load:
    """The load while a step ran: the load averages before and after, and its :class:`Meter`."""

    def __init__(self) -> None:
        self.loadavg_before = os.getloadavg()
        self.meter = Meter()

    def finish(self) -> dict[str, Any]:
        """The load figures from construction until now."""
        return {
            "loadavg_before": [round(x, 2) for x in self.loadavg_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
            **self.meter.read(),
        }


# -- the subprocess protocol ------------------------------------------------------------------


def resolve(target: str) -> Callable[..., dict[str, Any]]:
    """The function ``module:name`` names."""
    module, _, name = target.partition(":")
    if not module or not name:
        raise ValueError(f"a step is named module:function, not {target!r}")
    function: Callable[..., dict[str, Any]] = getattr(importlib.import_module(module), name)
    return function


def child_main(target: str, kwargs_json: str, out: Path) -> None:
    """The child's side: run one step and write its JSON result to ``out``."""
    result = resolve(target)(**json.loads(kwargs_json))
    out.write_text(json.dumps(result))


def run_isolated(target: str, kwargs: Mapping[str, Any], *, timeout: float | None = None) -> dict[str, Any]:
    """Run ``target(**kwargs)`` in a fresh interpreter and return its result. Its stdout and
    stderr are this process's; raises :class:`StepFailed` if it writes no result."""
    with tempfile.TemporaryDirectory(prefix="isales-bench-") as tmp:
        out = Path(tmp) / "result.json"
        command = [
            sys.executable,
            "-m",
            "benchmarks",
            CHILD_FLAG,
            target,
            "--kwargs",
            json.dumps(dict(kwargs)),
            "--out",
            str(out),
        ]
        completed = subprocess.run(command, cwd=ROOT, stdin=subprocess.DEVNULL, timeout=timeout, check=False)
        if completed.returncode != 0 or not out.exists():
            raise StepFailed(target, completed.returncode)
        result: dict[str, Any] = json.loads(out.read_text())
        return result


def write_results(target: Path, results: Mapping[str, Any]) -> None:
    """Write ``results`` to ``target`` whole (a reader never sees half a file)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    partial.write_text(json.dumps(results, indent=1) + "\n")
    partial.replace(target)


def run_steps(
    plan: Mapping[str, Step],
    target: Path,
    results: dict[str, Any],
    run: Callable[[str, Mapping[str, Any]], dict[str, Any]] = run_isolated,
) -> list[str]:
    """Run each step of ``plan`` (name: target and kwargs) in its own interpreter, stamped
    with its date, its wall time and the load while it ran, and write ``results`` after
    each one, so a step that crashes keeps the others. Returns the names of failed steps."""
    failed = []
    for name, (function, kwargs) in plan.items():
        print(f"running {name}...", file=sys.stderr, flush=True)
        date = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        load = Load()
        try:
            result = run(function, kwargs)
        except StepFailed as error:
            print(f"{name} failed: {error}", file=sys.stderr, flush=True)
            failed.append(name)
            continue
        seconds = round(time.perf_counter() - load.meter.started, 1)
        results[name] = {"date": date, "wall_seconds": seconds, "load": load.finish(), **result}
        print(json.dumps(results[name], indent=1), file=sys.stderr, flush=True)
        write_results(target, results)
    return failed
