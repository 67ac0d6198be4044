"""A call's media: the reply track the server sends, and the microphone's frames made PCM.

Owns: :class:`ReplyTrack`, an aiortc audio track that takes one 20 ms frame from the call's
:class:`~.playout.Playout` every 20 ms of real time (silence when nothing waits), and
:class:`MicrophoneReader`, which turns the decoded Opus frames (48 kHz, stereo) into PCM16 mono
at the session's rate with one resampler. Must not: decide anything about the conversation.
"""

from __future__ import annotations

import asyncio
import fractions
from collections.abc import Callable
from typing import Any

import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame

from ..audio.resample import Resampler
from .playout import FRAME_MS, Playout

__all__ = ["MicrophoneReader", "ReplyTrack"]


class ReplyTrack(MediaStreamTrack):
    """The server's audio track: the playout's frames, paced at 20 ms.

    Args:
        playout: where reply audio waits.
        on_events: told of the ``output_audio_buffer.*`` events each frame taken makes.
    """

    kind = "audio"

    def __init__(self, playout: Playout, on_events: Callable[[list[dict[str, Any]]], None]) -> None:
        super().__init__()
        self._playout = playout
        self._on_events = on_events
        self._start: float | None = None
        self._pts = 0

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        playout, loop = self._playout, asyncio.get_running_loop()
        rate = playout.rate_hz
        samples = rate * FRAME_MS // 1000
        if self._start is None:
            self._start = loop.time()
        else:
            self._pts += samples
            wait = self._start + self._pts / rate - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)  # real time: the track is the clock of the reply
        pcm = playout.take()
        events = playout.events()
        if events:
            self._on_events(events)
        frame = AudioFrame(format="s16", layout="mono", samples=samples)
        frame.planes[0].update(pcm)
        frame.pts = self._pts
        frame.sample_rate = rate
        frame.time_base = fractions.Fraction(1, rate)
        return frame


class MicrophoneReader:
    """The decoded frames of the client's track as PCM16 mono at ``rate_hz``.

    Args:
        rate_hz: the session's rate.
    """

    def __init__(self, rate_hz: int) -> None:
        self.rate_hz = rate_hz
        self._resampler: Resampler | None = None

    def pcm(self, frame: AudioFrame) -> bytes:
        """One decoded frame, mixed to mono and resampled (one resampler for the stream)."""
        samples = frame.to_ndarray()
        channels = len(frame.layout.channels)
        if frame.format.is_planar:
            mono = samples.astype(np.int32).mean(axis=0)
        else:
            mono = samples.reshape(-1, channels).astype(np.int32).mean(axis=1)
        pcm = mono.astype("<i2").tobytes()
        if self._resampler is None or self._resampler.in_rate_hz != frame.sample_rate:
            self._resampler = Resampler(frame.sample_rate, self.rate_hz)
        return self._resampler.feed(pcm)
