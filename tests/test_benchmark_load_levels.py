"""The medians of benchmarks.load_levels, from rounds built by hand (no load is run here)."""

from __future__ import annotations

from typing import Any

from benchmarks.load import LoadResult
from benchmarks.load_levels import format_rows, median_rows


def _run(target: str, p50: float, p99: float, cpu: float, *, valid: bool = True) -> dict[str, Any]:
    run = LoadResult(target=target, sessions=100, window_s=10.0,
                     latency_ms={"p50": p50, "p99": p99}, relay_cpu_s=cpu)
    if not valid:
        run.invalidate("load generator fell behind")
    return run.as_dict()


def test_medians_are_of_each_round_against_its_own_bare_relay_and_skip_invalid_rounds() -> None:
    rounds = [
        {"round": 1, "sessions": 100, "runs": {"bare": _run("bare", 1.0, 3.0, 2.0),
                                               "proxy": _run("proxy", 3.0, 13.0, 3.0)}},
        {"round": 2, "sessions": 100, "runs": {"bare": _run("bare", 5.0, 9.0, 2.0),
                                               "proxy": _run("proxy", 6.0, 11.0, 2.0)}},
        {"round": 3, "sessions": 100, "runs": {"bare": _run("bare", 2.0, 4.0, 2.0),
                                               "proxy": _run("proxy", 4.0, 30.0, 2.5)}},
        {"round": 4, "sessions": 100, "runs": {"bare": _run("bare", 1.0, 2.0, 2.0),
                                               "proxy": _run("proxy", 900.0, 900.0, 9.0, valid=False)}},
    ]
    [row] = median_rows(rounds)
    assert (row["sessions"], row["target"], row["valid_rounds"], row["rounds"]) == (100, "proxy", 3, 4)
    # added per round: p50 2, 1, 2 -> 2; p99 10, 2, 26 -> 10 (not the medians' difference, 11 - 4)
    assert (row["added_p50"], row["added_p99"]) == (2.0, 10.0)
    assert (row["p50"], row["p99"], row["max_p99"]) == (4.0, 13.0, 30.0)
    assert row["cpu_ratio"] == 1.25
    assert "| 100 | this tree | 4.0 | 13.0 (30.0) |" in format_rows([row], None)


def test_a_level_with_no_valid_round_says_invalid() -> None:
    rounds = [{"round": 1, "sessions": 200, "runs": {"bare": _run("bare", 1.0, 3.0, 2.0),
                                                     "rev": _run("rev", 1.0, 3.0, 2.0, valid=False),
                                                     "proxy": _run("proxy", 2.0, 5.0, 2.0)}}]
    rows = median_rows(rounds)
    assert [(r["target"], r["valid_rounds"]) for r in rows] == [("proxy", 1), ("rev", 0)]
    assert "| 200 | 48d9be1 | INVALID |" in format_rows(rows, "48d9be1")
