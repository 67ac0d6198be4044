"""The benchmarks drive the product's batcher: a tick's frames all judged, and the CPU figures."""

from __future__ import annotations

import numpy as np

from benchmarks.vad_batch import BatchedTicks, batched_voice_cpu
from benchmarks.vad_scale import measure_detectors


def test_batched_ticks_judge_every_session_s_frame_in_one_call() -> None:
    ticks = BatchedTicks(3)
    try:
        frames = (np.random.default_rng(1).standard_normal((3, 512)) * 0.1).astype(np.float32)
        ticks(frames)
        ticks(frames)
        stats = ticks._batcher.stats
        assert (stats.ticks, stats.calls, stats.frames) == (2, 2, 6)
    finally:
        ticks.close()


def test_batched_voice_cpu_counts_every_frame_of_every_session() -> None:
    figures = batched_voice_cpu([bytes(640)] * 16, sessions=2, seconds=16 * 0.02)
    assert figures["frames"] == 2 * (16 * 320 // 512)
    assert figures["cpu_pct_per_session_s"] >= figures["loop_cpu_pct_per_session_s"] > 0


def test_vad_scale_measures_the_product_batcher() -> None:
    rows = measure_detectors((2,), 0.1)
    assert "batched: the product's FrameBatcher, one thread" in {row["candidate"] for row in rows}
