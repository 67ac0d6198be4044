"""What waits to be sent to the client: neutral events, bounded by bytes of reply audio.

Owns: the overflow policy for a slow client. Events other than reply audio are never dropped;
when reply audio passes ``max_audio_bytes`` the oldest audio goes first and is counted; a stop
drops all queued reply audio at once (barge-in). Must not: await, send or encode (the session's
writer task hands each event to the dialect).
"""

from __future__ import annotations

from collections import deque

from ..events import ReplyAudio, ReplyEnded, ServerEvent

__all__ = ["Outbox"]


class Outbox:
    """A FIFO of :data:`~asgi_audio_proxy.events.ServerEvent` values.

    Args:
        max_audio_bytes: reply audio that may wait; past it the oldest audio is dropped.
    """

    def __init__(self, max_audio_bytes: int) -> None:
        self._max = max_audio_bytes
        self._queue: deque[ServerEvent] = deque()
        self.audio_bytes = 0  # queued now
        self.dropped_bytes = 0  # dropped for overflow, in total

    def __len__(self) -> int:
        return len(self._queue)

    def put(self, event: ServerEvent) -> int:
        """Queue an event; returns how many reply audio bytes were dropped to make room."""
        self._queue.append(event)
        if not isinstance(event, ReplyAudio):
            return 0
        self.audio_bytes += len(event.pcm)
        dropped = 0
        while self.audio_bytes > self._max:
            dropped += self._drop_oldest_audio()
        self.dropped_bytes += dropped
        return dropped

    def get(self) -> ServerEvent:
        """The next event (the caller checks ``len`` first)."""
        event = self._queue.popleft()
        if isinstance(event, ReplyAudio):
            self.audio_bytes -= len(event.pcm)
        return event

    def drop_audio(self) -> int:
        """Drop every queued reply audio event (the reply was stopped); returns the bytes."""
        dropped = self.audio_bytes
        self._queue = deque(e for e in self._queue if not isinstance(e, ReplyAudio))
        self.audio_bytes = 0
        return dropped

    def cut_reply(self, ending: ReplyEnded) -> bool:
        """A stop arrived while a finished reply still waits to be sent (a paced client plays
        it at real time): its ending becomes ``ending``. Returns whether one was waiting; the
        caller drops the audio."""
        for i, event in enumerate(self._queue):
            if isinstance(event, ReplyEnded):
                self._queue[i] = ending
                return True
        return False

    def _drop_oldest_audio(self) -> int:
        for i, event in enumerate(self._queue):
            if isinstance(event, ReplyAudio):
                del self._queue[i]
                self.audio_bytes -= len(event.pcm)
                return len(event.pcm)
        raise AssertionError("audio_bytes > 0 with no audio queued")  # pragma: no cover
