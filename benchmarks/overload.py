"""``python -m benchmarks.overload [--capacity N] [--warmup S] [--window S] [--json PATH]``.

The overload row: twice the sessions the proxy process can hold, offered at once. The proxy runs
with ``max_sessions`` at the capacity and ``max_loop_lag_s`` at :data:`MAX_LOOP_LAG_S`, so the
sessions past what it can hold are refused at the handshake (HTTP 503 and ``Retry-After``,
before accept), and the ones it admitted are served in real time: their added latency is the
figure. Owns: that run, its verdict and its rows. Must not: print outside :func:`main`.

A run is **invalid** when a session ended with ``internal error in the proxy`` (or any close
1011), when a session failed to open for any reason but a 503 at admission, when none was
admitted, or when the load itself was invalid for a reason other than the refusals (a generator
that fell behind, a message lost: see :mod:`benchmarks.load`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from asgi_audio_proxy.edge.settings import SUGGESTED_MAX_LOOP_LAG_S

from .load import LoadResult, run_load
from .procs import server
from .report import Row, format_table

__all__ = ["DEFAULT_CAPACITY", "MAX_LOOP_LAG_S", "OverloadRun", "main", "measure_overload",
           "overload_rows"]

#: sessions one proxy process holds with p99 under 20 ms (the native sweep's, rounded down)
DEFAULT_CAPACITY = 100
#: the lag threshold the run's proxy sheds at (the one docs/deployment.md suggests)
MAX_LOOP_LAG_S = SUGGESTED_MAX_LOOP_LAG_S
_REFUSED = "HTTP 503"


@dataclass
class OverloadRun:
    """What the overload run saw (latencies in ms of the admitted sessions' messages)."""

    capacity: int
    offered: int
    admitted: int = 0
    refused_at_admission: int = 0
    other_failures: list[str] = field(default_factory=list)
    internal_errors: list[str] = field(default_factory=list)
    latency_ms: dict[str, float] = field(default_factory=dict)
    invalid_reasons: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.invalid_reasons

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "valid": self.valid}


def judge(capacity: int, load: LoadResult) -> OverloadRun:
    """The overload verdict from one load run of twice ``capacity`` sessions."""
    run = OverloadRun(capacity=capacity, offered=load.sessions, latency_ms=load.latency_ms)
    refused = [f for f in load.connect_failures if _REFUSED in f]
    run.refused_at_admission = len(refused)
    run.other_failures = [f for f in load.connect_failures if _REFUSED not in f]
    run.admitted = load.sessions - len(load.connect_failures)
    run.internal_errors = [e for e in load.session_errors if "internal error" in e]
    run.internal_errors += [f"close {c}" for c in load.unexpected_closes if c == 1011]
    if run.internal_errors:
        run.invalid_reasons.append(f"{len(run.internal_errors)} sessions ended as an internal "
                                   f"error: {run.internal_errors[:3]}")
    if run.other_failures:
        run.invalid_reasons.append(f"{len(run.other_failures)} sessions failed to open other "
                                   f"than by a 503: {run.other_failures[:3]}")
    if run.admitted == 0:
        run.invalid_reasons.append("no session was admitted")
    # the refusals are the point of the run; every other reason the load gives stands
    run.invalid_reasons += [r for r in load.invalid_reasons if "failed to connect" not in r]
    return run


def measure_overload(capacity: int, *, warmup_s: float, window_s: float,
                     log: Callable[[str], None] = lambda _: None) -> OverloadRun:
    """Offer ``2 * capacity`` sessions to a proxy that holds ``capacity``; judge what it did."""
    log(f"overload: proxy holding {capacity}, offered {2 * capacity} sessions ...")
    with server("load-upstream") as upstream, \
            server("proxy", "--upstream", upstream.http_url, "--max-sessions", str(capacity),
                   "--max-loop-lag", str(MAX_LOOP_LAG_S)) as proxy:
        load = run_load(proxy, upstream, proxy.ws_url + "/audio", target="proxy-overload",
                        sessions=2 * capacity, warmup_s=warmup_s, window_s=window_s)
    run = judge(capacity, load)
    log(f"  admitted {run.admitted}, refused at admission {run.refused_at_admission}, "
        f"p99 {run.latency_ms.get('p99')} ms, valid {run.valid} {run.invalid_reasons}")
    return run


def overload_rows(run: OverloadRun) -> list[Row]:
    """The run as table rows: refusals, internal errors, the admitted sessions' latency."""
    note = "" if run.valid else "INVALID: " + "; ".join(run.invalid_reasons)
    late = run.offered - run.admitted
    return [
        Row(f"overload {run.offered} offered / {run.capacity} held: refused at admission (503)",
            run.refused_at_admission, "sessions", baseline=late, goal="every late one, before accept",
            holds=run.refused_at_admission == late and not run.other_failures, note=note),
        Row("overload: sessions ended as internal error", len(run.internal_errors), "sessions",
            goal="0", holds=not run.internal_errors, note=note),
        Row(f"overload: {run.admitted} admitted, message latency p99", run.latency_ms.get("p99"), "ms",
            goal="< 20 ms", holds=run.valid and run.latency_ms.get("p99", 1e9) < 20, note=note),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.overload",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--capacity", type=int, default=DEFAULT_CAPACITY,
                        help="sessions the proxy holds (max_sessions); twice as many are offered")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before the window")
    parser.add_argument("--window", type=float, default=10.0, help="seconds measured")
    parser.add_argument("--json", metavar="PATH", help="write the run as JSON here")
    args = parser.parse_args(argv)
    started = time.monotonic()

    def log(message: str) -> None:
        print(f"[{time.monotonic() - started:6.1f} s] {message}", file=sys.stderr, flush=True)

    run = measure_overload(args.capacity, warmup_s=args.warmup, window_s=args.window, log=log)
    print(format_table(overload_rows(run), time.monotonic() - started))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(run.as_dict(), f, indent=1)
    return 0 if run.valid else 1


if __name__ == "__main__":
    sys.exit(main())
