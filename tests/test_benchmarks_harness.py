"""The benchmark harness's pure parts and its subprocess protocol (``benchmarks/harness.py``).

The figures themselves are measured by ``python -m benchmarks``, never asserted here: these
tests check the arithmetic of the spread, the order of the rounds, the arguments each step
gets, and that a step runs in an interpreter of its own whose result comes back whole.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from benchmarks.__main__ import parse_args, plan
from benchmarks.harness import (
    StepFailed,
    alternated,
    busy_jiffies,
    pid_stat,
    rounds,
    run_isolated,
    run_steps,
    spread,
    tree_ticks,
)

#: State the parent changes before starting a child: the child must not see the change.
LEFT_BEHIND: list[str] = []
HERE = "tests.test_benchmarks_harness"


def tiny_step(factor: int, values: list[int]) -> dict[str, Any]:
    """A fake step for the protocol: what it was given, where it ran, what it inherited."""
    return {"scaled": [factor * v for v in values], "pid": os.getpid(), "left_behind": list(LEFT_BEHIND)}


def broken_step() -> dict[str, Any]:
    """A fake step that crashes, as a real one might."""
    raise RuntimeError("this step fails on purpose")


# -- spread ------------------------------------------------------------------------------------


def test_spread_of_an_odd_number_of_rounds() -> None:
    assert spread([5.0, 1.0, 4.0, 2.0, 3.0]) == {
        "by_round": [5.0, 1.0, 4.0, 2.0, 3.0],
        "median": 3.0,
        "min": 1.0,
        "max": 5.0,
        "q1": 2.0,
        "q3": 4.0,
        "iqr": 2.0,
    }


def test_spread_of_an_even_number_of_rounds_interpolates_the_quartiles() -> None:
    summary = spread([0.4, 0.8, 0.6, 1.0])
    assert summary["median"] == 0.7
    assert (summary["q1"], summary["q3"], summary["iqr"]) == (0.55, 0.85, 0.3)
    assert (summary["min"], summary["max"]) == (0.4, 1.0)


def test_spread_keeps_the_rounds_in_their_order_and_rounds_to_the_digits() -> None:
    summary = spread([0.12345, 0.98765], digits=2)
    assert summary["by_round"] == [0.12, 0.99]
    assert summary["median"] == 0.56


def test_spread_of_one_round_has_no_interquartile_range() -> None:
    summary = spread([0.8])
    assert summary["median"] == summary["min"] == summary["max"] == summary["q1"] == summary["q3"] == 0.8
    assert summary["iqr"] == 0


def test_spread_of_no_rounds_is_an_error() -> None:
    with pytest.raises(ValueError, match="no rounds"):
        spread([])


# -- the order of the rounds -------------------------------------------------------------------


def test_two_sides_alternate_which_goes_first() -> None:
    orders = [alternated(i, ("ours", "raw")) for i in range(4)]
    assert orders == [("ours", "raw"), ("raw", "ours"), ("ours", "raw"), ("raw", "ours")]


def test_over_an_even_number_of_rounds_each_side_goes_first_as_often() -> None:
    firsts = [alternated(i, (True, False))[0] for i in range(6)]
    assert firsts.count(True) == firsts.count(False) == 3


def test_more_sides_rotate_so_each_runs_in_every_position() -> None:
    orders = [alternated(i, (1, 2, 4, 8)) for i in range(4)]
    assert orders == [(1, 2, 4, 8), (2, 4, 8, 1), (4, 8, 1, 2), (8, 1, 2, 4)]
    for position in range(4):
        assert sorted(order[position] for order in orders) == [1, 2, 4, 8]


def test_a_round_without_sides_is_an_error() -> None:
    with pytest.raises(ValueError):
        alternated(0, ())


def test_repeat_multiplies_the_rounds() -> None:
    assert rounds(5, 1) == 5
    assert rounds(6, 3) == 18
    with pytest.raises(ValueError):
        rounds(5, 0)


# -- the load ------------------------------------------------------------------------------------


def test_busy_jiffies_sums_the_busy_fields_of_all_cpus_and_reads_the_steal() -> None:
    proc_stat = "\n".join(
        [
            "cpu  100 20 30 5000 7 1 2 9 0 0",
            "cpu0 50 10 15 2500 3 1 1 4 0 0",
            "cpu1 50 10 15 2500 4 0 1 5 0 0",
            "intr 12345",
        ]
    )
    assert busy_jiffies(proc_stat) == (100 + 20 + 30 + 1 + 2, 9)


def test_pid_stat_reads_the_parent_and_the_ticks_past_a_command_name_with_spaces_and_parentheses() -> None:
    # pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime ...
    text = "4242 (python (x) y) S 17 4242 4242 0 -1 4194304 100 0 0 0 30 12 5 3 20 0 1 0 256275"
    assert pid_stat(text) == (17, 30 + 12 + 5 + 3)


def test_tree_ticks_counts_the_root_and_its_descendants_only() -> None:
    processes = {1: (0, 1000), 10: (1, 7), 11: (10, 5), 12: (11, 3), 20: (1, 900), 21: (20, 50)}
    assert tree_ticks(processes, 10) == 7 + 5 + 3
    assert tree_ticks(processes, 12) == 3
    assert tree_ticks(processes, 99) == 0  # gone


# -- the arguments each step gets ----------------------------------------------------------------


def test_repeat_multiplies_the_rounds_of_the_ab_steps_and_leaves_their_sizes() -> None:
    once, thrice = plan(quick=False, repeat=1, streamed=None), plan(quick=False, repeat=3, streamed=None)
    assert once.keys() == thrice.keys()
    for name, (function, kwargs) in once.items():
        assert thrice[name][0] == function
        for key, value in kwargs.items():
            assert thrice[name][1][key] == (value * 3 if key == "repetitions" else value), (name, key)
    assert once["journal"][1]["repetitions"] == 6
    assert once["write_back_vs_raw"][1]["repetitions"] == 5


def test_quick_shrinks_the_sizes_and_streamed_overrides_its_count() -> None:
    full, quick = plan(quick=False, repeat=1, streamed=None), plan(quick=True, repeat=1, streamed=None)
    assert full["throughput"][1]["count"] == 3000 and quick["throughput"][1]["count"] == 300
    assert full["streamed"][1]["records"] == 1_000_000 and quick["streamed"][1]["records"] == 20_000
    assert plan(quick=True, repeat=1, streamed=123)["streamed"][1]["records"] == 123


def test_every_step_names_a_function_of_the_steps_module() -> None:
    import benchmarks.steps

    for function, _ in plan(quick=False, repeat=1, streamed=None).values():
        module, _, name = function.partition(":")
        assert module == "benchmarks.steps"
        assert callable(getattr(benchmarks.steps, name))


def test_the_command_line_refuses_an_unknown_step_and_a_repeat_below_one() -> None:
    assert parse_args(["--only", "journal", "memory", "--repeat", "2"]).repeat == 2
    with pytest.raises(SystemExit):
        parse_args(["--only", "jounral"])
    with pytest.raises(SystemExit):
        parse_args(["--repeat", "0"])


# -- the subprocess protocol ---------------------------------------------------------------------


def test_a_step_runs_in_a_fresh_interpreter_and_its_result_comes_back() -> None:
    LEFT_BEHIND.append("state of the parent")
    try:
        result = run_isolated(f"{HERE}:tiny_step", {"factor": 3, "values": [1, 2]}, timeout=60)
    finally:
        LEFT_BEHIND.clear()
    assert result["scaled"] == [3, 6]
    assert result["pid"] != os.getpid()
    assert result["left_behind"] == []


def test_a_step_that_crashes_raises_step_failed() -> None:
    with pytest.raises(StepFailed) as failure:
        run_isolated(f"{HERE}:broken_step", {}, timeout=60)
    assert failure.value.returncode != 0


def test_the_results_are_written_after_each_step_and_a_crash_keeps_the_others(tmp_path: Path) -> None:
    target = tmp_path / "results.json"
    results: dict[str, Any] = {"machine": {"cores": 2}}
    steps = {
        "first": (f"{HERE}:tiny_step", {"factor": 1, "values": [7]}),
        "broken": (f"{HERE}:broken_step", {}),
        "last": (f"{HERE}:tiny_step", {"factor": 2, "values": [7]}),
    }
    assert run_steps(steps, target, results) == ["broken"]
    written = json.loads(target.read_text())
    assert written.keys() == {"machine", "first", "last"}
    assert written["first"]["scaled"] == [7] and written["last"]["scaled"] == [14]
    assert written["first"]["pid"] != written["last"]["pid"]
    for entry in (written["first"], written["last"]):
        assert {"date", "wall_seconds", "load"} <= entry.keys()
        assert len(entry["load"]["loadavg_before"]) == len(entry["load"]["loadavg_after"]) == 3
        assert entry["load"]["cores_busy_by_others"] >= 0
