"""``python -m benchmarks.kinds`` with two sessions: every kind measured through its own ``serve``,
every kind completed turns, the report whole. No timing is asserted here."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks.kinds import (
    BASELINE_KIND,
    KIND_UPSTREAMS,
    KindRun,
    kind_rows,
    kinds_to_measure,
    simulator_kinds,
)
from benchmarks.talkers import TalkFigures
from tests.test_benchmarks import FELL_BEHIND, ROOT
from tests.timing import within


def _run_kinds(path: Path) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONASYNCIODEBUG"}
    done = subprocess.run([sys.executable, "-m", "benchmarks.kinds", "--sessions", "2", "--warmup", "1",
                           "--seconds", "5", "--json", str(path)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=within(150))
    # 1 with a report written: a kind's run marked itself invalid (the report says why)
    assert done.returncode == 0 or (done.returncode == 1 and path.exists()), done.stderr[-3000:]
    loaded: dict[str, Any] = json.loads(path.read_text())
    return done, loaded


@pytest.mark.slow
@pytest.mark.timeout(200)
def test_each_kind_completes_turns_through_its_own_serve(tmp_path: Path) -> None:
    done, report = _run_kinds(tmp_path / "kinds.json")
    kinds = report["kinds"]
    assert report["baseline"] == BASELINE_KIND
    assert list(kinds) == list(kinds_to_measure()), "every kind, the baseline first"
    assert {"minicpm", "realtime"} <= set(kinds)
    assert kinds["realtime"]["upstream"].endswith("/v1/realtime"), "a second serve's Realtime path"
    for kind, run in kinds.items():
        talk = run["talk"]
        assert talk["turns_in_window"] >= 1, f"{kind} completed no turn:\n{done.stderr[-3000:]}"
        assert (run["kind"], run["sessions"], talk["connected"]) == (kind, 2, 2), run
        assert talk["errors"] == [] and talk["unexpected_closes"] == [], run
        # the figure is the front serve's CPU over the window, per session-second, in ms
        assert run["front_cpu_s"] > 0
        assert run["cpu_ms_per_session_s"] == pytest.approx(run["front_cpu_s"] * 1000 / (5 * 2), abs=0.01)
        base = kinds[BASELINE_KIND]["cpu_ms_per_session_s"]
        assert run["ratio_to_baseline"] == pytest.approx(run["cpu_ms_per_session_s"] / base, abs=0.01)
        # a busy machine may leave the clients behind real time: said, but nothing else may be wrong
        assert all(FELL_BEHIND in why for why in run["invalid_reasons"]), run["invalid_reasons"]
    figures = {f["figure"]: f for f in report["figures"]}
    assert len(figures) == len(kinds)
    for kind, run in kinds.items():
        row = figures[f"upstream kind {kind} vs {BASELINE_KIND}: serve CPU per session-second, 2 sessions"]
        assert row["value"] == run["cpu_ms_per_session_s"] and row["unit"] == "ms CPU/s"
    assert "| kind |" in done.stdout and "realtime" in done.stdout


def _figures(turns_in_window: int, unanswered_turns: int = 0) -> TalkFigures:
    return TalkFigures(sessions=2, warmup_s=1, window_s=5, connected=2, turns_in_window=turns_in_window,
                       turns_total=3, unanswered_turns=unanswered_turns, late_ms={"p99": 1.0, "max": 2.0})


def test_a_kind_that_completes_no_turn_is_invalid_however_cheap() -> None:
    from benchmarks.kinds import _judge

    runs = {kind: KindRun(kind=kind, target=f"serve --upstream-kind {kind}", upstream="", sessions=2,
                          window_s=5, cpu_ms_per_session_s=cpu) for kind, cpu in (("minicpm", 3.0),
                                                                                   ("realtime", 0.1))}
    _judge(runs["minicpm"], _figures(4))
    _judge(runs["realtime"], _figures(0))
    assert runs["minicpm"].valid and not runs["realtime"].valid
    assert "realtime kind completed no turn" in runs["realtime"].invalid_reasons[0]
    runs["minicpm"].talk = runs["realtime"].talk = {"turns_in_window": 0}
    rows = {row.figure.split(":")[0]: row for row in kind_rows(runs)}
    assert rows["upstream kind realtime vs minicpm"].note.startswith("INVALID: the realtime kind")


def test_a_kind_that_answers_only_some_turns_is_invalid() -> None:
    from benchmarks.kinds import _judge

    run = KindRun(kind="realtime", target="serve --upstream-kind realtime", upstream="", sessions=2,
                  window_s=5)
    _judge(run, _figures(2, unanswered_turns=1))
    assert run.invalid_reasons == ["1 of 3 turns got no reply (within 10 s of the utterance, or not a "
                                   "complete one)"]


def test_a_kind_the_simulator_command_plays_is_measured_with_no_entry_of_its_own() -> None:
    parser = argparse.ArgumentParser()
    simulate = parser.add_subparsers().add_parser("simulate")
    simulate.add_argument("--kind", choices=["minicpm", "another-kind", "elsewhere"])
    assert simulator_kinds(parser) == ("minicpm", "another-kind", "elsewhere")
    assert simulator_kinds(argparse.ArgumentParser()) == ()
    kinds = kinds_to_measure(simulator_kinds(parser), known=("minicpm", "realtime", "another-kind"))
    # the table's kinds serve knows, in order, then the simulator's; "elsewhere": serve does not know it
    assert list(kinds) == ["minicpm", "realtime", "another-kind"]
    assert kinds["minicpm"] is KIND_UPSTREAMS["minicpm"], "the table's entry wins over the simulator's"
