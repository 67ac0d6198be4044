"""``python -m benchmarks.chunk [--turns N] [--json PATH]``: first reply audio at each ``chunk_duration``.

Owns: the figure that says what the MiniCPM-o kind's ``chunk_duration`` costs in turn-taking:
first reply audio (last tone frame sent → first reply PCM in hand, :func:`.turns.first_audio_proxy`)
through a proxy that gathers 1 s of audio before it goes upstream (the original document's
buffering, the baseline) and one that sends each 200 ms message as soon as it is whole (the
kind's default), against one simulator, both proxies up at once and their turns interleaved (the
order alternating by turn), so both see the machine as it was. Must not: assert a timing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from .load import summary
from .procs import server
from .report import Row, format_table
from .turns import TurnFigures, first_audio_proxy

__all__ = ["BASELINE_S", "DURATIONS_S", "MAX_TURNS", "as_json", "chunk_rows", "measure_chunk_durations"]

#: the original document's 1 s (the baseline) and the kind's default 200 ms
BASELINE_S = 1.0
DURATIONS_S = (BASELINE_S, 0.2)
#: each turn is about 3.5 s of real time per duration: the standalone command stops here
MAX_TURNS = 20


def measure_chunk_durations(turns: int, log: Callable[[str], None] = lambda _: None
                            ) -> dict[float, TurnFigures]:
    """``turns`` turns through a proxy at each of :data:`DURATIONS_S`, one simulator behind both.

    The simulator replies at a GPU's pace (0.1 s a chunk) as in the suite's turn figures; each
    turn is a session of its own (one ``first_audio_proxy`` turn), so no turn waits on another.
    """
    figures = {duration: TurnFigures() for duration in DURATIONS_S}
    with server("simulator", "--chunk-delay-s", "0.1", "--reply-chunks", "8") as sim, \
            server("proxy", "--upstream", sim.http_url, "--chunk-duration", str(DURATIONS_S[0])) as a, \
            server("proxy", "--upstream", sim.http_url, "--chunk-duration", str(DURATIONS_S[1])) as b:
        urls = {DURATIONS_S[0]: a.ws_url + "/audio", DURATIONS_S[1]: b.ws_url + "/audio"}
        for turn in range(turns):
            order = DURATIONS_S if turn % 2 == 0 else DURATIONS_S[::-1]
            for duration in order:
                one = asyncio.run(first_audio_proxy(urls[duration], 1))
                figures[duration].first_audio_ms += one.first_audio_ms
                figures[duration].failures += one.failures
            log(f"chunk_duration: turn {turn + 1}/{turns}: " + ", ".join(
                f"{d:g} s {figures[d].first_audio_ms[-1]:.0f} ms" if figures[d].first_audio_ms
                else f"{d:g} s no reply" for d in DURATIONS_S))
    return figures


def _median(values: list[float]) -> float | None:
    return round(float(np.median(values)), 1) if values else None


def chunk_rows(figures: dict[float, TurnFigures]) -> list[Row]:
    """One row per duration but the baseline: its median first reply audio against the
    baseline's, as a ratio, with the difference in the note."""
    base = figures[BASELINE_S].first_audio_ms
    rows = []
    for duration, figure in figures.items():
        if duration == BASELINE_S:
            continue
        value, baseline = _median(figure.first_audio_ms), _median(base)
        ratio = None if value is None or not baseline else round(value / baseline, 2)
        difference = "" if value is None or baseline is None else f"{value - baseline:+.1f} ms; "
        rows.append(Row(f"first reply audio, chunk_duration {duration:g} s vs {BASELINE_S:g} s (median)",
                        value, "ms", baseline, ratio, "", None,
                        f"{difference}turns {len(figure.first_audio_ms)}/{len(base)}"
                        + "".join("; " + f for f in figure.failures + figures[BASELINE_S].failures)))
    return rows


def as_json(figures: dict[float, TurnFigures]) -> dict[str, Any]:
    """Each duration's turns (ms) and their summary, keyed by the duration."""
    return {f"{duration:g}": {"first_audio_ms": figure.first_audio_ms,
                              "summary": summary(figure.first_audio_ms), "failures": figure.failures}
            for duration, figure in figures.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.chunk", description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=6, help=f"turns per duration, 1 to {MAX_TURNS}")
    parser.add_argument("--json", metavar="PATH", help="write the figures as JSON here")
    args = parser.parse_args(argv)
    if not 1 <= args.turns <= MAX_TURNS:
        parser.error(f"--turns must be 1 to {MAX_TURNS}")

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    started = time.monotonic()
    figures = measure_chunk_durations(args.turns, log)
    table = format_table(chunk_rows(figures), 0.0).rsplit("\n\n", 1)[0]  # not the suite's footer
    print(f"{table}\n\n(baseline: chunk_duration {BASELINE_S:g} s, measured in the same run; "
          f"run took {time.monotonic() - started:.0f} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"turns": args.turns, "chunk_duration": as_json(figures)}, f, indent=1)
    failed = any(not figure.first_audio_ms for figure in figures.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
