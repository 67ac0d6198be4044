"""Client events waiting for the Realtime socket, in the order the server must get them.

Owns: :class:`SendQueue`: the client's audio and the events that must follow it (a commit, a
clear, a session update) in one line, stop events (``response.cancel``, the truncation) ahead of
it, consecutive audio sent as one append, the bound on queued audio (the adapter waits for room:
back-pressure on the client), and what a clear drops. Must not: await or touch a socket.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from .wire import append_audio

__all__ = ["Outgoing", "SendQueue"]


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One client event to send, and how many bytes of client audio it carries."""

    text: str
    audio_bytes: int = 0


class SendQueue:
    """Audio in, client events out.

    Args:
        max_audio_bytes: queued audio past which :attr:`has_room` is false.
        max_append_bytes: audio joined into one append, at most (a single larger piece goes whole).
    """

    def __init__(self, max_audio_bytes: int, max_append_bytes: int) -> None:
        if max_audio_bytes <= 0 or max_append_bytes <= 0:
            raise ValueError(f"limits must be positive, got {max_audio_bytes}, {max_append_bytes}")
        self._max_audio = max_audio_bytes
        self._max_append = max_append_bytes
        self._line: deque[bytes | str] = deque()  # audio, and events ordered with it
        self._urgent: deque[str] = deque()
        self.audio_bytes = 0

    def __bool__(self) -> bool:
        return bool(self._line or self._urgent)

    @property
    def has_room(self) -> bool:
        """More audio may be queued."""
        return self.audio_bytes < self._max_audio

    def put_audio(self, pcm: bytes) -> None:
        """Client audio (PCM16 at the server's rate), after everything queued."""
        if pcm:
            self._line.append(pcm)
            self.audio_bytes += len(pcm)

    def put(self, message: str) -> None:
        """A client event that must reach the server after the audio queued before it."""
        self._line.append(message)

    def put_urgent(self, message: str) -> None:
        """A client event that goes before the queued audio (after other urgent ones)."""
        self._urgent.append(message)

    def clear_audio(self) -> int:
        """Drop the audio queued since the last event in line (what a commit before it took is
        kept: it belongs to that turn); returns the bytes dropped."""
        dropped = 0
        while self._line and isinstance(self._line[-1], bytes):
            dropped += len(self._line.pop())
        self.audio_bytes -= dropped
        return dropped

    def drain_audio(self) -> int:
        """Drop every queued piece of audio (the conversation is over); returns the bytes."""
        dropped = self.audio_bytes
        self._line = deque(item for item in self._line if isinstance(item, str))
        self.audio_bytes = 0
        return dropped

    def pop(self) -> Outgoing | None:
        """The next client event to send, or ``None`` when there is none."""
        if self._urgent:
            return Outgoing(self._urgent.popleft())
        if not self._line:
            return None
        head = self._line.popleft()
        if isinstance(head, str):
            return Outgoing(head)
        pieces = [head]
        size = len(head)
        while self._line:
            piece = self._line[0]
            if not isinstance(piece, bytes) or size + len(piece) > self._max_append:
                break
            self._line.popleft()
            pieces.append(piece)
            size += len(piece)
        self.audio_bytes -= size
        return Outgoing(append_audio(b"".join(pieces)), size)
