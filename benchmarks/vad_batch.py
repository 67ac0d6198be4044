"""The product's batched voice detector driven in this process, for :mod:`benchmarks.vad_scale`
and :mod:`benchmarks.compare`.

Owns: :class:`BatchedTicks` (the detector alone: ``n`` streams of the loop's
:class:`~asgi_audio_proxy.vad.FrameBatcher`, one frame each per tick) and
:func:`batched_voice_cpu` (whole sessions' ears, :class:`~asgi_audio_proxy.session.voice.VoiceWatch`
batched, fed the same audio). Both run the batcher on a private event loop in this thread, so
``time.thread_time`` there is the loop's CPU and ``time.process_time`` the worker thread's too.
The batcher's tick spacing is set to nothing and its wait limit to none: the benchmark drives
the ticks (one per step, every session's frame due at once, the worst case) and measures work,
not the pace of a clock. Must not: print.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np

from asgi_audio_proxy.config import ProxyConfig
from asgi_audio_proxy.session.voice import VoiceWatch
from asgi_audio_proxy.vad import FrameBatcher

__all__ = ["BatchedTicks", "batched_voice_cpu"]

_UNBOUNDED_S = float("inf")


def _batcher() -> FrameBatcher:
    return FrameBatcher(tick_s=0.0, max_wait_s=_UNBOUNDED_S)


class BatchedTicks:
    """``n`` streams of the product's batcher; calling it with one tick's frames, (n, 512)
    float32, feeds each stream its frame (as PCM16, what a session feeds) and returns once every
    probability is delivered."""

    def __init__(self, n: int) -> None:
        self._loop = asyncio.new_event_loop()
        self._batcher = self._loop.run_until_complete(self._make())
        self._delivered = 0
        self._streams = [self._batcher.join(self._count) for _ in range(n)]

    async def _make(self) -> FrameBatcher:
        return _batcher()

    def _count(self, probabilities: list[float], powers: np.ndarray) -> None:
        self._delivered += len(probabilities)

    def __call__(self, frames: np.ndarray) -> None:
        self._loop.run_until_complete(self._tick(frames))

    async def _tick(self, frames: np.ndarray) -> None:
        pcm = (frames * 32767).astype(np.int16)
        for stream, frame in zip(self._streams, pcm, strict=True):
            stream.feed(frame[np.newaxis])
        await self._batcher.idle()

    def close(self) -> None:
        for stream in self._streams:
            stream.leave()
        self._loop.close()


def batched_voice_cpu(frames: list[bytes], sessions: int, seconds: float) -> dict[str, Any]:
    """``sessions`` voice sessions' ears batched, each fed ``frames`` (16 kHz PCM16, 20 ms each).

    Returns:
        CPU per session-second (all threads, and the event loop's own), % of a core; the
        batcher's ticks, model calls and frames.
    """
    config = ProxyConfig(barge_in="voice").voice
    watches = [VoiceWatch(config) for _ in range(sessions)]  # the model loaded before counting

    async def run() -> dict[str, Any]:
        batcher = _batcher()
        for watch in watches:
            watch.batch_with(batcher, lambda heard: None)
        loop_cpu, cpu = time.thread_time(), time.process_time()
        for frame in frames:  # every session's 20 ms at once, then the tick that takes them
            for watch in watches:
                watch.heard(frame, 16_000)
            await batcher.idle()
        loop_cpu, cpu = time.thread_time() - loop_cpu, time.process_time() - cpu
        for watch in watches:
            watch.close()
        per = seconds * sessions / 100
        stats = batcher.stats
        return {"sessions": sessions, "audio_s": seconds, "cpu_pct_per_session_s": round(cpu / per, 3),
                "loop_cpu_pct_per_session_s": round(loop_cpu / per, 3), "ticks": stats.ticks,
                "calls": stats.calls, "frames": stats.frames,
                "coalesced_frames": stats.coalesced_frames}

    return asyncio.run(run())
