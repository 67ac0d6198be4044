"""``python -m benchmarks.chunk``: first reply audio at each ``chunk_duration``, one turn each.

It runs as an operator runs it (a process, its servers its own children) and its report is
checked for shape: every duration answered, a row against the 1 s baseline. No timing is
asserted here (docs/benchmarks.md has the figures of a real run).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.chunk import BASELINE_S, DURATIONS_S, chunk_rows
from benchmarks.turns import TurnFigures
from tests.timing import within

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_one_turn_at_each_duration_is_measured_and_reported(tmp_path: Path) -> None:
    path = tmp_path / "chunk.json"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONASYNCIODEBUG"}
    done = subprocess.run([sys.executable, "-m", "benchmarks.chunk", "--turns", "1", "--json", str(path)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=within(80))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "first reply audio, chunk_duration 0.2 s vs 1 s" in done.stdout
    report = json.loads(path.read_text())
    assert report["turns"] == 1
    by_duration = report["chunk_duration"]
    assert set(by_duration) == {f"{d:g}" for d in DURATIONS_S}
    for figures in by_duration.values():
        assert len(figures["first_audio_ms"]) == 1 and figures["failures"] == []
        assert figures["summary"]["n"] == 1


def test_the_row_is_a_ratio_and_a_difference_against_the_baseline() -> None:
    rows = chunk_rows({BASELINE_S: TurnFigures(first_audio_ms=[1000.0, 1200.0, 1100.0]),
                       0.2: TurnFigures(first_audio_ms=[600.0, 500.0, 550.0])})
    (row,) = rows
    assert (row.value, row.baseline, row.ratio) == (550.0, 1100.0, 0.5)
    assert row.note.startswith("-550.0 ms; turns 3/3")


def test_the_standalone_command_bounds_its_turns() -> None:
    done = subprocess.run([sys.executable, "-m", "benchmarks.chunk", "--turns", "500"], cwd=ROOT,
                          capture_output=True, text=True, timeout=within(30))
    assert done.returncode == 2 and "--turns must be 1 to 20" in done.stderr
