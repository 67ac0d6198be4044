"""Every voice session of an event loop through one batched Silero call per tick, in one thread.

Owns: :class:`FrameBatcher` (one per event loop, :meth:`FrameBatcher.for_running_loop`): it
gathers the frames every joined stream has waiting, and at most once per ``tick_s`` hands them
all to the process's one worker thread, which runs the shared model
(:func:`~asgi_audio_proxy.vad.silero.shared_model`) once per round: the first waiting frame of
every stream in one call, then the second of those that have two, and so on, each stream's
recurrent state moved on in order. ONNX Runtime releases the GIL while it runs, so the loop goes
on with its sockets meanwhile. The thread also takes every frame's band powers for the echo
comparison (:func:`~asgi_audio_proxy.vad.echo.band_powers`), all of a tick's frames in one
transform, which the loop would otherwise take one frame at a time. Each stream's probabilities
and band powers come back to it on the loop, in the order of its frames. :class:`BatchStream` is
one session's place in the batch: its state (1.3 KiB) and the frames waiting. Why one batch in
one thread, with the figures: ``docs/vad.md``.

When the thread falls behind, frames wait. A frame that has waited longer than ``max_wait_s``
when a tick takes it is *coalesced*: the model skips it, and it takes the probability of the next
frame the model judges in its stream (the newest is always judged). No frame goes without a
probability, the work of a tick stays bounded, and each coalesced frame is counted, on the stream
and on the batcher, which says so at WARNING at most every 10 s.

Must not: decide anything (:class:`~asgi_audio_proxy.vad.bargein.VoiceActivity` does), touch a
stream's state on the loop while a tick has it, or call back a stream that has left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import weakref
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import ClassVar, Protocol

import numpy as np

from .detector import DETECTOR_RATE_HZ
from .echo import band_powers
from .silero import SileroState, shared_model

__all__ = ["MAX_WAIT_S", "TICK_S", "BatchModel", "BatchStats", "BatchStream", "FrameBatcher"]

logger = logging.getLogger("asgi_audio_proxy.vad.batch")

#: ticks start at most this often: 10 ms adds at most that to a decision (a cut needs 160 ms of
#: speech anyway), and keeps the calls' fixed cost (about 0.1 ms each) under 1 % of a core
TICK_S = 0.010
#: a frame that has waited this long is coalesced: over 500 ms late, a barge-in is late already,
#: and judging every such frame would only make the next tick later still
MAX_WAIT_S = 0.5
#: frames whose band powers are taken in one transform (1 MiB of samples): the most a tick holds
_POWERS_SLICE = 256
#: coalescing is logged at most this often per loop: while behind, every tick coalesces
_LOG_EVERY_S = 10.0

#: a stream's probabilities, one per frame, and the frames' band powers, one row each
Deliver = Callable[[list[float], np.ndarray], None]


class BatchModel(Protocol):
    """What a tick needs of the model (:class:`~asgi_audio_proxy.vad.silero.SileroModel`)."""

    def batch(self, states: list[SileroState], frames: np.ndarray) -> list[float]: ...


#: one stream's part of a tick: its state, its frames (int16), and which the model judges (the
#: others are coalesced)
_Part = tuple[SileroState, list[np.ndarray], list[bool]]
#: a tick's answer to each stream: probabilities, band powers
_Judged = tuple[list[float], np.ndarray]

_worker_lock = threading.Lock()
_worker: ThreadPoolExecutor | None = None


def _shared_worker() -> ThreadPoolExecutor:
    """The process's one detector thread, like its one model (every loop's ticks take turns)."""
    global _worker
    with _worker_lock:
        if _worker is None:
            _worker = ThreadPoolExecutor(1, thread_name_prefix="asgi-audio-proxy-vad")
        return _worker


@dataclass
class BatchStats:
    """What one batcher has done: ticks, model calls, frames judged, frames coalesced."""

    ticks: int = 0
    calls: int = 0
    frames: int = 0
    coalesced_frames: int = 0


class BatchStream:
    """One session's place in the batch. Made by :meth:`FrameBatcher.join`, on the loop."""

    def __init__(self, batcher: FrameBatcher, deliver: Deliver) -> None:
        self._batcher = batcher
        self._deliver = deliver
        self.state = SileroState()  # a tick's only, while it runs
        self.waiting: deque[tuple[float, np.ndarray]] = deque()  # (queued at, frame)
        self.in_flight = 0
        self.coalesced_frames = 0
        self.has_left = False

    def feed(self, frames: np.ndarray) -> None:
        """Frames of this stream, (count, 512) int16 (PCM16 at 16 kHz), in order after those before."""
        if self.has_left:
            raise RuntimeError("feed after leaving the batch")
        if len(frames):
            self._batcher._queue(self, frames)

    def leave(self) -> None:
        """The session ended: its waiting frames go, and nothing more is delivered to it."""
        self.has_left = True
        self.waiting.clear()
        self._batcher._forget(self)

    def _take(self, now: float, max_wait_s: float) -> tuple[list[np.ndarray], list[bool]]:
        """Every waiting frame, and whether the model judges it (not if it waited too long,
        unless it is the newest)."""
        frames: list[np.ndarray] = []
        judged: list[bool] = []
        late = 0
        oldest = self.waiting[0][0] if self.waiting else now
        while self.waiting:
            queued_at, frame = self.waiting.popleft()
            frames.append(frame)
            is_late = bool(self.waiting) and now - queued_at > max_wait_s
            judged.append(not is_late)
            late += is_late
        if late:
            self.coalesced_frames += late
            self._batcher._coalesced(late, now - oldest, now)
        self.in_flight += 1
        return frames, judged

    def _judged(self, probabilities: list[float], powers: np.ndarray) -> None:
        self.in_flight -= 1
        if not self.has_left:
            self._deliver(probabilities, powers)


class FrameBatcher:
    """The voice sessions of one event loop, batched. Use on that loop only.

    Args:
        model: the Silero model; the process's shared one if omitted.
        tick_s: the shortest time between the starts of two ticks.
        max_wait_s: how long a frame may wait before it is coalesced.
    """

    _by_loop: ClassVar[weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, FrameBatcher]] = (
        weakref.WeakKeyDictionary())

    def __init__(self, model: BatchModel | None = None, *, tick_s: float = TICK_S,
                 max_wait_s: float = MAX_WAIT_S) -> None:
        self._model: BatchModel = model if model is not None else shared_model()
        self._tick_s = tick_s
        self._max_wait_s = max_wait_s
        self._due: dict[BatchStream, None] = {}  # streams with frames waiting, in arrival order
        self._is_ticking = False  # a tick is scheduled or running
        self._last_tick = float("-inf")
        self._idle: asyncio.Event | None = None
        self._logged_at = float("-inf")
        self.stats = BatchStats()

    @classmethod
    def for_running_loop(cls) -> FrameBatcher:
        """The running loop's batcher, made on first use (loads the model if not yet loaded)."""
        loop = asyncio.get_running_loop()
        batcher = cls._by_loop.get(loop)
        if batcher is None:
            batcher = cls._by_loop[loop] = cls()
        return batcher

    @property
    def is_idle(self) -> bool:
        """No frame waits and no tick is scheduled or running."""
        return not self._due and not self._is_ticking

    async def idle(self) -> None:
        """Return once no frame waits and no tick runs (what was judged delivered before)."""
        while not self.is_idle:
            if self._idle is None:
                self._idle = asyncio.Event()
            await self._idle.wait()

    def join(self, deliver: Deliver) -> BatchStream:
        """A new stream; ``deliver`` gets its frames' probabilities on the loop, in order."""
        return BatchStream(self, deliver)

    def _queue(self, stream: BatchStream, frames: np.ndarray) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        stream.waiting.extend((now, frame) for frame in frames)
        self._due[stream] = None
        if not self._is_ticking:
            self._is_ticking = True
            loop.call_at(max(now, self._last_tick + self._tick_s), self._tick)

    def _coalesced(self, frames: int, behind_s: float, now: float) -> None:
        """Count coalesced frames; say so at most once per ``_LOG_EVERY_S``, with the totals."""
        self.stats.coalesced_frames += frames
        if now - self._logged_at >= _LOG_EVERY_S:
            self._logged_at = now
            logger.warning("the voice detector is %.0f ms behind: frames coalesced (%d so far)",
                           behind_s * 1000, self.stats.coalesced_frames)

    def _forget(self, stream: BatchStream) -> None:
        self._due.pop(stream, None)

    def _tick(self) -> None:
        """On the loop: take every waiting frame, and hand them to the worker thread."""
        if not self._due:  # every stream that had frames left
            self._next_tick()
            return
        loop = asyncio.get_running_loop()
        now = self._last_tick = loop.time()
        streams = list(self._due)
        self._due.clear()
        parts: list[_Part] = [(s.state, *s._take(now, self._max_wait_s)) for s in streams]
        self.stats.ticks += 1
        job = _shared_worker().submit(_judge, self._model, parts)

        def back(done: Future[tuple[list[_Judged], int]]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is left to tell
                loop.call_soon_threadsafe(self._finished, streams, done)

        job.add_done_callback(back)

    def _finished(self, streams: list[BatchStream],
                  done: Future[tuple[list[_Judged], int]]) -> None:
        """On the loop: each stream's probabilities to it, then the next tick if frames wait."""
        loop = asyncio.get_running_loop()
        try:
            results, calls = done.result()  # the model raising is a bug: the loop's handler logs it
            self.stats.calls += calls
            for stream, (probabilities, powers) in zip(streams, results, strict=True):
                self.stats.frames += len(probabilities)
                # one callback each, in order: a stream's failure is its own, not the others'
                loop.call_soon(stream._judged, probabilities, powers)
        finally:
            loop.call_soon(self._next_tick)  # after the deliveries: this tick ends with them

    def _next_tick(self) -> None:
        self._is_ticking = False
        if self._due:
            self._is_ticking = True
            loop = asyncio.get_running_loop()
            loop.call_at(max(loop.time(), self._last_tick + self._tick_s), self._tick)
        elif self._idle is not None:
            self._idle.set()
            self._idle = None


def _judge(model: BatchModel, parts: list[_Part]) -> tuple[list[_Judged], int]:
    """In the worker thread: every stream's frames, one model call per round; and the calls made.

    Round ``r`` takes the ``r``-th frame the model judges of every stream that has one, so each
    state moves on frame by frame, in order. A coalesced frame takes the next judged one's value.
    """
    counts = [len(frames) for _, frames, _ in parts]
    if not sum(counts):
        return [([], np.empty((0, 0))) for _ in parts], 0
    pcm = np.stack([frame for _, frames, _ in parts for frame in frames])
    # as the session's inline echo comparison converts them, a slice at a time: a tick that takes
    # seconds of every session's audio (the thread was behind) must not take ten times its memory
    powers = np.concatenate([band_powers(pcm[at : at + _POWERS_SLICE].astype(np.float64) / 32768.0,
                                         DETECTOR_RATE_HZ)
                             for at in range(0, len(pcm), _POWERS_SLICE)])
    starts = np.cumsum([0, *counts])
    judged = [[int(starts[i]) + k for k, is_judged in enumerate(part[2]) if is_judged]
              for i, part in enumerate(parts)]
    # and as its detector does, for the frames the model judges only
    at_row = {row: n for n, row in enumerate(row for rows in judged for row in rows)}
    floats = pcm[list(at_row)].astype(np.float32) / np.float32(32768.0)
    probabilities: list[list[float]] = [[] for _ in parts]
    calls = 0
    for r in range(max(len(j) for j in judged)):
        members = [i for i, j in enumerate(judged) if len(j) > r]
        out = model.batch([parts[i][0] for i in members],
                          floats[[at_row[judged[i][r]] for i in members]])
        calls += 1
        for i, p in zip(members, out, strict=True):
            probabilities[i].append(p)
    results: list[_Judged] = []
    for i, ((_, _, is_judged), mine) in enumerate(zip(parts, probabilities, strict=True)):
        filled: list[float] = []
        following = len(mine)
        for judged_here in reversed(is_judged):
            if judged_here:
                following -= 1
            filled.append(mine[following])
        filled.reverse()
        results.append((filled, powers[starts[i] : starts[i + 1]]))
    return results, calls
