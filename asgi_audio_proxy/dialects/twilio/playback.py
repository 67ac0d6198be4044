"""Reply playback on a phone line: media-sized pieces, a named mark after each, and what was heard.

Owns: cutting one connection's reply audio (G.711 bytes, one per sample) into pieces of 20 to 60
ms, naming the mark that follows each piece, and reading Twilio's echoed marks back into how much
of each reply the caller has heard, how much a ``clear`` threw away, and how much is still in
Twilio's buffer. Must not: encode audio, build JSON, or read a clock (an echoed mark *is* the
clock: Twilio echoes it once the audio before it has played).

Twilio echoes marks in the order they were sent, and echoes every pending one at once on
``clear``; a mark still pending when the proxy cleared counts as cleared, not heard (one that
crossed the ``clear`` on the wire after its audio played is counted cleared too: heard is a
lower bound by at most one piece).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

__all__ = [
    "MAX_PIECE_MS",
    "MAX_UNECHOED_MARKS",
    "MIN_PIECE_MS",
    "PlaybackCounts",
    "ReplyPlayback",
    "UnknownMark",
]

#: the shortest media message sent (Twilio's own frames are 20 ms); a reply's last piece is
#: padded with silence up to it
MIN_PIECE_MS = 20
#: the longest media message sent: past it a ``clear`` has more to throw away and marks say less
MAX_PIECE_MS = 60
#: μ-law silence (zero, bits inverted on the line)
ULAW_SILENCE = b"\xff"
#: marks awaiting their echo (over a minute of audio at 40 ms a piece); past it the oldest is
#: taken as heard: audio sent that long ago has played, and a peer that never echoes must not
#: grow this without end
MAX_UNECHOED_MARKS = 1_600


class UnknownMark(ValueError):
    """An echoed mark that was never sent on this stream, or was echoed already."""


@dataclass(frozen=True, slots=True)
class PlaybackCounts:
    """Reply audio of one connection, in milliseconds.

    ``sent = heard + cleared + pending``; ``dropped`` never reached Twilio (cut by a stop before it
    filled a piece, or had no stream to go to).
    """

    sent_ms: float
    heard_ms: float
    cleared_ms: float
    pending_ms: float
    dropped_ms: float


@dataclass(slots=True)
class _Mark:
    name: str
    reply: int
    samples: int
    is_cleared: bool = False


class ReplyPlayback:
    """One connection's reply audio, from pieces sent to marks echoed.

    Args:
        rate_hz: samples per second of the G.711 audio (8000 on a phone line).
        piece_ms: the size pieces are cut to when more audio is waiting (within 20..60 ms).
    """

    def __init__(self, *, rate_hz: int = 8000, piece_ms: int = 40) -> None:
        if not MIN_PIECE_MS <= piece_ms <= MAX_PIECE_MS:
            raise ValueError(f"invalid piece_ms={piece_ms!r}: expected {MIN_PIECE_MS}..{MAX_PIECE_MS}")
        self._rate_hz = rate_hz
        self._min = rate_hz * MIN_PIECE_MS // 1000
        self._max = rate_hz * MAX_PIECE_MS // 1000
        self._piece = rate_hz * piece_ms // 1000
        self._waiting = bytearray()  # under one minimum piece, held for the next audio
        self._unechoed: deque[_Mark] = deque()
        self._reply = 0
        self._pieces = 0
        self._reply_heard = 0
        self._sent = self._heard = self._cleared = self._dropped = 0

    def start_reply(self) -> None:
        """A new reply begins: its marks get a new prefix and its heard count starts at zero."""
        self._dropped += len(self._waiting)
        self._waiting.clear()
        self._reply += 1
        self._pieces = 0
        self._reply_heard = 0

    def feed(self, audio: bytes) -> list[tuple[bytes, str]]:
        """Reply audio in; the pieces ready to send out, each with the name of its mark.

        Audio short of a minimum piece waits for the next call (or :meth:`finish`).
        """
        if self._reply == 0:
            self.start_reply()
        self._waiting += audio
        pieces: list[tuple[bytes, str]] = []
        while len(self._waiting) >= self._min:
            # all of it if that fits one piece; else a piece_ms cut (the rest is then >= 0)
            size = len(self._waiting) if len(self._waiting) <= self._max else self._piece
            pieces.append(self._piece_out(bytes(self._waiting[:size]), size))
            del self._waiting[:size]
        return pieces

    def finish(self) -> list[tuple[bytes, str]]:
        """The reply is complete: its last audio, padded with silence to a minimum piece."""
        if not self._waiting:
            return []
        samples = len(self._waiting)
        piece = bytes(self._waiting) + ULAW_SILENCE * (self._min - samples)
        self._waiting.clear()
        return [self._piece_out(piece, samples)]

    def clear(self) -> None:
        """The reply was stopped and Twilio told to ``clear``: audio not yet sent is dropped and
        every mark not yet echoed will come back cleared."""
        self._dropped += len(self._waiting)
        self._waiting.clear()
        for mark in self._unechoed:
            mark.is_cleared = True

    def drop(self, samples: int) -> None:
        """Count reply audio that could not be sent at all (no stream to send it on)."""
        self._dropped += samples

    def echoed(self, name: str) -> None:
        """Twilio echoed mark ``name``: the audio before it has played (or was cleared).

        Raises:
            UnknownMark: no mark of that name is waiting for its echo.
        """
        if all(mark.name != name for mark in self._unechoed):
            raise UnknownMark(f"mark {name!r} was never sent on this stream, or was echoed already")
        while True:
            # marks come back in order: any before this one were lost, so count them with it
            mark = self._unechoed.popleft()
            if mark.is_cleared:
                self._cleared += mark.samples
            else:
                self._heard += mark.samples
                if mark.reply == self._reply:
                    self._reply_heard += mark.samples
            if mark.name == name:
                return

    @property
    def reply_heard_ms(self) -> float:
        """How much of the current (or last) reply the caller has heard."""
        return self._ms(self._reply_heard)

    @property
    def pending_ms(self) -> float:
        """Reply audio sent whose mark has not come back: at most what Twilio has buffered."""
        return self._ms(sum(mark.samples for mark in self._unechoed))

    @property
    def counts(self) -> PlaybackCounts:
        """The connection's totals so far."""
        return PlaybackCounts(sent_ms=self._ms(self._sent), heard_ms=self._ms(self._heard),
                              cleared_ms=self._ms(self._cleared), pending_ms=self.pending_ms,
                              dropped_ms=self._ms(self._dropped))

    def _piece_out(self, piece: bytes, samples: int) -> tuple[bytes, str]:
        self._pieces += 1
        name = f"r{self._reply}.{self._pieces}"
        self._unechoed.append(_Mark(name, self._reply, samples))
        if len(self._unechoed) > MAX_UNECHOED_MARKS:
            self.echoed(self._unechoed[0].name)
        self._sent += samples
        return piece, name

    def _ms(self, samples: int) -> float:
        return samples * 1000.0 / self._rate_hz
