"""Run every benchmark, each step in a fresh interpreter, and write ``benchmarks/results/latest.json``.

All figures that matter are ratios measured in the same run on the same machine:
absolute times on a shared machine are noise. ``--quick`` shrinks every scenario,
``--repeat N`` multiplies the rounds of the A/B steps, ``--only`` runs some steps and
keeps the others' entries. The steps are in :mod:`benchmarks.steps`, the harness that
runs them in :mod:`benchmarks.harness`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks.harness import CHILD_FLAG, Step, child_main, rounds, run_steps

RESULTS = Path(__file__).parent / "results"
STEPS = "benchmarks.steps"


def plan(quick: bool, repeat: int, streamed: int | None) -> dict[str, Step]:
    """Every step by name: the function a child runs and its arguments. The sizes are the
    full run's, or ``--quick``'s; the rounds of the A/B steps are multiplied by ``repeat``."""

    def size(small: int, full: int) -> int:
        return small if quick else full

    def reps(small: int, full: int) -> int:
        return rounds(size(small, full), repeat)

    return {
        "throughput": (f"{STEPS}:throughput", {"count": size(300, 3000), "repetitions": reps(5, 5)}),
        "throughput_5ms": (
            f"{STEPS}:throughput",
            {"count": size(300, 2000), "latency": 0.005, "repetitions": reps(5, 5)},
        ),
        "micro": (f"{STEPS}:micro", {}),
        "profile": (f"{STEPS}:profile", {"count": size(300, 2000)}),
        "pagination": (f"{STEPS}:pagination", {"pages": size(20, 100), "latency": 0.02, "repetitions": reps(3, 3)}),
        "pagination_ms_timers": (
            f"{STEPS}:pagination",
            {"pages": size(20, 100), "latency": 0.02, "repetitions": reps(3, 3), "precise_timers": False},
        ),
        "batch": (
            f"{STEPS}:batch",
            {"records": size(1000, 10_000), "latency": 0.01, "concurrencies": [10, 50], "repetitions": reps(1, 1)},
        ),
        "write_back_vs_raw": (
            f"{STEPS}:write_back_vs_raw",
            {"records": size(500, 5000), "concurrencies": [10, 50], "repetitions": reps(3, 5)},
        ),
        "journal": (
            f"{STEPS}:journal_cost",
            {"records": size(500, 5000), "concurrency": 10, "repetitions": reps(3, 6)},
        ),
        "journal_5ms": (
            f"{STEPS}:journal_cost",
            {"records": size(200, 2000), "concurrency": 10, "repetitions": reps(3, 4), "latency": 0.005},
        ),
        "memory": (f"{STEPS}:memory_per_write", {"in_flight": size(100, 500), "repetitions": reps(2, 2)}),
        "definitions_check": (
            f"{STEPS}:definitions_check",
            {"records": size(500, 4000), "repetitions": reps(3, 15)},
        ),
        "definitions_check_10ms": (
            f"{STEPS}:definitions_check",
            {"records": size(200, 2000), "repetitions": reps(3, 9), "latency": 0.01},
        ),
        "streamed": (f"{STEPS}:streamed", {"records": streamed or size(20_000, 1_000_000)}),
    }


def machine() -> dict[str, Any]:
    """What the figures were measured on (the load of each step is in its own entry)."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    versions = {name: metadata.version(name) for name in ("isales-async", "aiohttp", "orjson", "cattrs", "anyio")}
    return {
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0)),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "versions": versions,
    }


def positive(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument(
        "--streamed",
        type=positive,
        default=None,
        help="records in the streamed-memory run (default 1,000,000; quick 20,000)",
    )
    parser.add_argument(
        "--repeat",
        type=positive,
        default=1,
        help="multiply the rounds of the A/B steps by N, for a more stable median (default 1)",
    )
    parser.add_argument("--only", nargs="*", default=None, help=" ".join(plan(False, 1, None)))
    # The child side of the harness's protocol: run one step, write its result to --out.
    parser.add_argument(CHILD_FLAG, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--kwargs", default="{}", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    steps = plan(args.quick, args.repeat, args.streamed)
    unknown = set(args.only or ()) - set(steps)
    if unknown:
        parser.error(f"unknown steps: {' '.join(sorted(unknown))}")
    if args.child is not None and args.out is None:
        parser.error(f"{CHILD_FLAG} needs --out")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child is not None:
        child_main(args.child, args.kwargs, args.out)
        return 0
    steps = plan(args.quick, args.repeat, args.streamed)
    wanted = {name: step for name, step in steps.items() if not args.only or name in args.only}
    target = RESULTS / ("quick.json" if args.quick else "latest.json")
    # A partial run (--only) updates its entries and keeps the others, each stamped with its date.
    results: dict[str, Any] = json.loads(target.read_text()) if args.only and target.exists() else {}
    results.update({"machine": machine(), "quick": args.quick})
    failed = run_steps(wanted, target, results)
    print(f"wrote {target}")
    if failed:
        print(f"failed: {' '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
