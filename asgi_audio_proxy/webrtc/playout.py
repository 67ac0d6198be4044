"""The reply audio waiting to play on a call's outgoing track, and what the client is told of it.

Owns: :class:`Playout`, a queue of PCM16 mono that the track takes 20 ms at a time (silence when
it is empty), which response each piece belongs to, and the ``output_audio_buffer.started``,
``.stopped`` and ``.cleared`` events its changes make (a reply's first audio taken; its last
audio taken after its end; audio dropped by a stop). Must not: import aiortc, await, or read a
clock (the track's pacing does).
"""

from __future__ import annotations

from collections import deque
from typing import Any

__all__ = ["FRAME_MS", "Playout"]

#: one frame of the track: what WebRTC audio is cut into
FRAME_MS = 20


class Playout:
    """Reply audio queued for a call's track, at one rate.

    Args:
        rate_hz: the rate of the PCM pushed and taken.
    """

    def __init__(self, rate_hz: int) -> None:
        self.rate_hz = rate_hz
        self.frame_bytes = rate_hz * FRAME_MS // 1000 * 2
        self._pieces: deque[tuple[bytes, str | None]] = deque()
        self._queued = 0
        self._response_id: str | None = None  # the response whose audio is being pushed
        self._playing: str | None = None  # the response whose audio the track is taking
        self._is_playing = False
        self._ended: set[str | None] = set()  # responses whose last audio has been pushed
        self._cleared: str | None = None  # a response cleared: what still comes of it is dropped
        self._events: list[dict[str, Any]] = []

    @property
    def queued_ms(self) -> float:
        """Audio waiting to play."""
        return self._queued / 2 / self.rate_hz * 1000

    def response(self, response_id: str) -> None:
        """The audio pushed from now on is ``response_id``'s."""
        self._response_id = response_id
        self._cleared = None

    def push(self, pcm: bytes) -> None:
        """Queue reply audio of the current response (none once it has been cleared)."""
        if pcm and (self._cleared is None or self._cleared != self._response_id):
            self._pieces.append((pcm, self._response_id))
            self._queued += len(pcm)

    def end(self) -> None:
        """The current response has pushed all its audio: once it has played, it has stopped."""
        self._ended.add(self._response_id)
        if not self._queued and self._is_playing and self._playing == self._response_id:
            self._stopped()

    def clear(self) -> int:
        """Drop what waits to play (a stop, a barge-in, ``output_audio_buffer.clear``); returns
        the bytes dropped. Tells the client ``cleared`` if anything was playing or queued."""
        dropped = self._queued
        if dropped or self._is_playing:
            response_id = self._playing if self._is_playing else self._response_id
            self._events.append({"type": "output_audio_buffer.cleared", "response_id": response_id})
        self._pieces.clear()
        self._cleared = self._response_id
        self._queued = 0
        self._is_playing = False
        self._ended.clear()
        return dropped

    def take(self) -> bytes:
        """The next frame for the track: queued audio, padded with silence (all silence when
        nothing waits)."""
        if not self._queued:
            return bytes(self.frame_bytes)
        out = bytearray()
        while self._pieces and len(out) < self.frame_bytes:
            pcm, response_id = self._pieces[0]
            if not self._is_playing or response_id != self._playing:
                if self._is_playing:
                    self._stopped()
                self._playing, self._is_playing = response_id, True
                self._events.append({"type": "output_audio_buffer.started", "response_id": response_id})
            need = self.frame_bytes - len(out)
            out += pcm[:need]
            if len(pcm) > need:
                self._pieces[0] = (pcm[need:], response_id)
            else:
                self._pieces.popleft()
        self._queued -= len(out)
        if not self._queued and self._playing in self._ended:
            self._stopped()
        return bytes(out) + bytes(self.frame_bytes - len(out))

    def events(self) -> list[dict[str, Any]]:
        """The ``output_audio_buffer.*`` events made since the last call (without ids)."""
        events, self._events = self._events, []
        return events

    def _stopped(self) -> None:
        self._events.append({"type": "output_audio_buffer.stopped", "response_id": self._playing})
        self._ended.discard(self._playing)
        self._is_playing = False
