"""What waits to be sent to the client, bounded by bytes of reply audio.

Owns: the overflow policy for a slow client. Text events are never dropped; when reply audio
passes ``max_audio_bytes`` the oldest audio goes first and is counted; a stop drops all
queued audio at once (barge-in). Must not: await or send (the session's writer task does).
"""

from __future__ import annotations

from collections import deque

__all__ = ["Outbox"]


class Outbox:
    """A FIFO of client messages (``str`` events, ``bytes`` audio).

    Args:
        max_audio_bytes: reply audio that may wait; past it the oldest audio is dropped.
    """

    def __init__(self, max_audio_bytes: int) -> None:
        self._max = max_audio_bytes
        self._queue: deque[str | bytes] = deque()
        self.audio_bytes = 0  # queued now
        self.dropped_bytes = 0  # dropped for overflow, in total

    def __len__(self) -> int:
        return len(self._queue)

    def put(self, message: str | bytes) -> int:
        """Queue a message; returns how many audio bytes were dropped to make room."""
        self._queue.append(message)
        if isinstance(message, str):
            return 0
        self.audio_bytes += len(message)
        dropped = 0
        while self.audio_bytes > self._max:
            dropped += self._drop_oldest_audio()
        self.dropped_bytes += dropped
        return dropped

    def get(self) -> str | bytes:
        """The next message (the caller checks ``len`` first)."""
        message = self._queue.popleft()
        if isinstance(message, bytes):
            self.audio_bytes -= len(message)
        return message

    def drop_audio(self) -> int:
        """Drop every queued audio message (the reply was stopped); returns the bytes."""
        dropped = self.audio_bytes
        self._queue = deque(m for m in self._queue if isinstance(m, str))
        self.audio_bytes = 0
        return dropped

    def _drop_oldest_audio(self) -> int:
        for i, message in enumerate(self._queue):
            if isinstance(message, bytes):
                del self._queue[i]
                self.audio_bytes -= len(message)
                return len(message)
        raise AssertionError("audio_bytes > 0 with no audio queued")  # pragma: no cover
