"""The session updates a Realtime adapter sends after connect, and which server event answers each.

Owns: the ids the proxy gives its later ``session.update`` events, and the matching of answers to
them: a ``session.updated`` answers the oldest one waiting (the server answers in order), an
``error`` the one it names by ``event_id`` (or, naming none, the oldest, when its ``param`` is a
session field); any other error is not about an update. Must not: await, or touch a socket.
"""

from __future__ import annotations

from collections import deque

from .wire import ServerError, SessionInfo

__all__ = ["SessionUpdates"]


class SessionUpdates:
    """The later session updates of one conversation, in the order they were sent."""

    def __init__(self) -> None:
        self._waiting: deque[str] = deque()
        self._count = 0

    def sent(self) -> str:
        """A new update's ``event_id``; it waits for its answer from now on."""
        self._count += 1
        event_id = f"proxy_update_{self._count}"
        self._waiting.append(event_id)
        return event_id

    def forget(self, event_id: str) -> None:
        """Stop waiting for ``event_id``'s answer (answered, or given up on)."""
        if event_id in self._waiting:
            self._waiting.remove(event_id)

    def answered_by(self, message: SessionInfo | ServerError) -> str | None:
        """The update ``message`` answers (no longer waiting), or ``None``."""
        if not self._waiting:
            return None
        if isinstance(message, SessionInfo):
            return None if message.is_created else self._waiting.popleft()
        if message.event_id is not None and message.event_id in self._waiting:
            self._waiting.remove(message.event_id)
            return message.event_id
        if message.event_id is None and (message.param or "").startswith("session"):
            return self._waiting.popleft()
        return None
