"""Resampling between a client dialect's rates and the upstream's: once each way, state kept.

Owns: the input stream's resampler (client rate to the upstream's) and the reply's (the rate
the upstream made it at to the dialect's), rebuilt when either rate changes and flushed at the
end of each reply so its tail is heard. Must not: do I/O or know a wire format.
"""

from __future__ import annotations

from ..audio.resample import Resampler
from ..events import ReplyAudio

__all__ = ["RateBridge"]


class RateBridge:
    """One session's resamplers; equal rates pass through untouched."""

    def __init__(self) -> None:
        self._input: Resampler | None = None
        self._reply: Resampler | None = None

    def to_upstream(self, pcm: bytes, rate_hz: int, upstream_rate_hz: int) -> bytes:
        """Client audio at ``rate_hz``, at the upstream's rate."""
        if rate_hz == upstream_rate_hz:
            return pcm
        if self._input is None or (self._input.in_rate_hz, self._input.out_rate_hz) != (
                rate_hz, upstream_rate_hz):
            self._input = Resampler(rate_hz, upstream_rate_hz)
        return self._input.feed(pcm)

    def reply(self, audio: ReplyAudio, client_rate_hz: int) -> list[ReplyAudio]:
        """Reply audio at the client's rate (a previous stream's tail first, if a rate changed)."""
        if audio.rate_hz == client_rate_hz:
            return [*self.end_reply(), audio]
        out: list[ReplyAudio] = []
        if self._reply is None or (self._reply.in_rate_hz, self._reply.out_rate_hz) != (
                audio.rate_hz, client_rate_hz):
            out = self.end_reply()
            self._reply = Resampler(audio.rate_hz, client_rate_hz)
        pcm = self._reply.feed(audio.pcm)
        return [*out, ReplyAudio(pcm, client_rate_hz)] if pcm else out

    def end_reply(self) -> list[ReplyAudio]:
        """The reply is over: the resampler's tail (what its filter still held)."""
        resampler, self._reply = self._reply, None
        tail = resampler.flush() if resampler is not None else b""
        return [ReplyAudio(tail, resampler.out_rate_hz)] if resampler is not None and tail else []

    def drop_reply(self) -> None:
        """The reply was cut: its tail must not play."""
        self._reply = None
