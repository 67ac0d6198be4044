"""``python -m benchmarks [--quick] [--json PATH] [--plot PATH] [--soak-seconds S]``.

Runs every figure of the suite in one go, each beside the baseline measured in the same run,
prints the table, and writes the JSON report (and a PNG when matplotlib is installed). See
``docs/benchmarks.md`` for what each figure means.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from typing import Any

from . import chunk, compare, kinds, overload, webrtc_calls
from .load import LoadResult, run_load, summary
from .procs import PLACEMENT, ServerProcess, server
from .report import Row, build_rows, format_table, plot
from .resampler import measure_resamplers
from .routing import measure_router
from .turns import barge_in, first_audio_direct, first_audio_proxy


def _levels(quick: bool) -> list[int]:
    return [20] if quick else [1, 50, 100, 200]


def _phases_level(quick: bool) -> int:
    """Where aligned and random message phases are compared (the sweep's run is the aligned one)."""
    return 20 if quick else 100


def _sweep(args: argparse.Namespace, log: Any, upstream: ServerProcess
           ) -> tuple[list[LoadResult], list[LoadResult], dict[str, LoadResult]]:
    """Bare relay then proxy at each level, side by side in time, so both see the machine as it
    was (a machine's pace drifts over minutes); at the phases level, a random-phase run of each
    right after."""
    warmup, window = (0.3, 1.5) if args.quick else (2.0, 10.0)
    runs: dict[str, list[LoadResult]] = {"bare": [], "proxy": []}
    random_phases: dict[str, LoadResult] = {}
    with server("bare", "--upstream", upstream.http_url) as bare, \
            server("proxy", "--upstream", upstream.http_url) as proxy:
        relays = {"bare": (bare, bare.ws_url + "/relay"), "proxy": (proxy, proxy.ws_url + "/audio")}
        levels = _levels(args.quick)
        i = 0
        while i < len(levels):
            n = levels[i]
            # capacity probe: past the sweep, only the proxy goes on
            for kind in ("bare", "proxy") if i < len(_levels(args.quick)) else ("proxy",):
                relay, url = relays[kind]
                log(f"load: {kind} x {n} sessions ...")
                run = run_load(relay, upstream, url, target=kind, sessions=n, warmup_s=warmup,
                               window_s=window)
                runs[kind].append(run)
                log(f"  p50 {run.latency_ms.get('p50')} ms p99 {run.latency_ms.get('p99')} ms, "
                    f"cpu {run.relay_cpu_s} s, valid {run.valid} {run.invalid_reasons}")
            if n == _phases_level(args.quick):
                for kind, (relay, url) in relays.items():
                    log(f"load: {kind} x {n} sessions, random message phases ...")
                    random_phases[kind] = run = run_load(relay, upstream, url, target=f"{kind}-random",
                                                         sessions=n, warmup_s=warmup, window_s=window,
                                                         phases="random")
                    log(f"  p50 {run.latency_ms.get('p50')} ms p99 {run.latency_ms.get('p99')} ms, "
                        f"valid {run.valid}")
            # go on while the proxy still holds p99 < 20 ms
            last = runs["proxy"][-1]
            if (not args.quick and i == len(levels) - 1 and last.valid
                    and last.latency_ms.get("p99", 1e9) < 20 and n < 400):
                levels.append(n + 100)
            i += 1
    return runs["bare"], runs["proxy"], random_phases


def _comparisons(args: argparse.Namespace, log: Any, upstream: ServerProcess) -> dict[str, Any]:
    """Dialects against native and voice barge-in against off (see :mod:`benchmarks.compare`)."""
    warmup, window = (0.3, 1.0) if args.quick else (2.0, 10.0)

    def run(*a: Any, **k: Any) -> LoadResult:
        return run_load(*a, warmup_s=warmup, window_s=window, **k)

    by_dialect, off = compare.measure_dialects(upstream, run, args.quick, log)
    on = compare.measure_voice(upstream, run, args.quick, log)
    log("voice: the detector alone, in-process ...")
    detector = compare.measure_detector_cpu(args.quick)
    return {"dialects": by_dialect, "on": on, "off": off, "detector": detector}


def _reply_path(args: argparse.Namespace, log: Any) -> LoadResult:
    sessions, window = (1, 2.0) if args.quick else (20, 10.0)
    log(f"reply path: proxy x {sessions} sessions with replies ...")
    with server("load-upstream") as upstream, \
            server("proxy", "--upstream", upstream.http_url, "--stamp-replies") as relay:
        return run_load(relay, upstream, relay.ws_url + "/audio", target="proxy-replies",
                        sessions=sessions, warmup_s=1.0, window_s=window, reply_every=10)


def _turns(args: argparse.Namespace, log: Any) -> dict[str, Any]:
    turns = 1 if args.quick else 6
    log(f"turns: first reply audio (proxy, direct) and barge-in, {turns} turn(s) each ...")
    with server("simulator", "--chunk-delay-s", "0.1", "--reply-chunks", "8") as sim:
        with server("proxy", "--upstream", sim.http_url) as relay:
            url = relay.ws_url + "/audio"
            proxied = asyncio.run(first_audio_proxy(url, turns))
            cut = asyncio.run(barge_in(url, turns))
        direct = asyncio.run(first_audio_direct(sim.http_url, turns))
    return {"proxy": proxied, "direct": direct, "barge_in": cut}


def _chunk_durations(log: Any) -> dict[float, Any]:
    turns = 6
    log(f"chunk_duration: first reply audio at {' and '.join(f'{d:g} s' for d in chunk.DURATIONS_S)}, "
        f"{turns} turn(s) each ...")
    return chunk.measure_chunk_durations(turns, log)


def _kinds(log: Any) -> dict[str, kinds.KindRun]:
    """serve's CPU per session in front of each upstream kind (see :mod:`benchmarks.kinds`)."""
    sessions, warmup, window = 20, 3.0, 20.0
    return kinds.measure_kinds(sessions=sessions, warmup_s=warmup, window_s=window, log=log)


def _soak(args: argparse.Namespace, log: Any) -> LoadResult:
    log(f"soak: proxy x 50 sessions for {args.soak_seconds:.0f} s, replies every 10 s ...")
    with server("load-upstream") as upstream, \
            server("proxy", "--upstream", upstream.http_url) as relay:
        return run_load(relay, upstream, relay.ws_url + "/audio", target="proxy-soak", sessions=50,
                        warmup_s=10.0, window_s=args.soak_seconds, reply_every=50,
                        rss_every_s=max(5.0, args.soak_seconds / 30))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small version, under a minute")
    parser.add_argument("--json", metavar="PATH", help="write the report as JSON here")
    parser.add_argument("--plot", metavar="PATH", help="write a PNG (needs matplotlib)")
    parser.add_argument("--soak-seconds", type=float, default=180.0,
                        help="soak length in seconds (full run only; 600 for a 10-minute soak, "
                             "which does not fit a 10-minute full run)")
    parser.add_argument("--overload-capacity", type=int, default=overload.DEFAULT_CAPACITY,
                        help="full run: sessions the proxy holds in the overload run (twice as "
                             "many are offered)")
    args = parser.parse_args(argv)
    started = time.monotonic()

    def log(message: str) -> None:
        print(f"[{time.monotonic() - started:6.1f} s] {message}", file=sys.stderr, flush=True)

    log("resampler: ours and soxr ...")
    resamplers = measure_resamplers(quick=args.quick)
    router = measure_router(quick=args.quick)
    with server("load-upstream") as upstream:
        bare_runs, proxy_runs, random_phases = _sweep(args, log, upstream)
        compared = _comparisons(args, log, upstream)
    replies = _reply_path(args, log)
    turns = _turns(args, log)
    # the chunk_duration and upstream-kind figures take a minute and a half on their own: a
    # quick run leaves them to python -m benchmarks.chunk and benchmarks.kinds (each tested alone)
    durations = {} if args.quick else _chunk_durations(log)
    kind_runs = {} if args.quick else _kinds(log)
    soak = None if args.quick else _soak(args, log)
    overloaded = None if args.quick else overload.measure_overload(
        args.overload_capacity, warmup_s=2.0, window_s=10.0, log=log)
    calls = [] if args.quick else webrtc_calls.measure_calls([10, 50], 12.0, log)
    rows: list[Row] = build_rows(bare_runs, proxy_runs, replies, turns, soak, resamplers, router)
    top = _phases_level(args.quick)
    aligned = {"proxy": next(r for r in proxy_runs if r.sessions == top),
               "bare": next(r for r in bare_runs if r.sessions == top)}
    rows += compare.phase_rows(aligned, random_phases)
    rows += compare.dialect_rows(compared["dialects"])
    rows += compare.voice_rows(compared["on"], compared["off"], compared["detector"])
    rows += chunk.chunk_rows(durations) if durations else []
    rows += kinds.kind_rows(kind_runs) if kind_runs else []
    rows += overload.overload_rows(overloaded) if overloaded else []
    rows += webrtc_calls.webrtc_rows(calls) if calls else []
    elapsed = time.monotonic() - started
    report = {
        "meta": {"quick": args.quick, "elapsed_s": round(elapsed, 1), "python": platform.python_version(),
                 "machine": platform.machine(), "cpus": os.cpu_count(), "placement": PLACEMENT,
                 "generated": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
        "figures": [row.as_dict() for row in rows],
        "baselines": {"bare_relay": [r.as_dict() for r in bare_runs],
                      "direct_first_audio_ms": summary(turns["direct"].first_audio_ms)},
        "runs": {"proxy": [r.as_dict() for r in proxy_runs], "reply_path": replies.as_dict(),
                 "soak": soak.as_dict() if soak else None,
                 "overload": overloaded.as_dict() if overloaded else None,
                 "turns": {k: vars(v) for k, v in turns.items()},
                 "chunk_duration": chunk.as_json(durations) if durations else None,
                 "upstream_kinds": kinds.as_json(kind_runs) if kind_runs else None,
                 "webrtc_calls": [run.as_dict() for run in calls] or None,
                 "resamplers": [r.as_dict() for r in resamplers], "router": router,
                 "phases": {"aligned": {k: r.as_dict() for k, r in aligned.items()},
                            "random": {k: r.as_dict() for k, r in random_phases.items()}},
                 **compare.as_json(compared["dialects"], compared["on"], compared["off"],
                                   compared["detector"])},
    }
    print(format_table(rows, elapsed))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    if args.plot:
        log(plot(args.plot, bare_runs, proxy_runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
