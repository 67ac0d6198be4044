"""The chunk buffer: client PCM in, exact 200 ms messages out (``UPSTREAM_PROTOCOL.md`` 5.3).

Owns: gathering PCM16 of any frame size (an odd byte carried) and releasing it in whole
messages once ``release_messages`` of them have gathered. Must not: import asyncio or a network
library, or read a clock.
"""

from __future__ import annotations

from .wav import MESSAGE_BYTES

__all__ = ["ChunkBuffer"]


class ChunkBuffer:
    """Gathers client PCM and releases it as exactly-200 ms upstream messages.

    Frames of any size go in; an odd trailing byte simply waits for the next frame. Audio is
    released once ``release_messages`` whole messages (``chunk_duration`` seconds) have gathered,
    so ``chunk_duration`` sets how long audio waits, never the message size (section 5.3).

    Overflow policy: none here; the session bounds what it feeds (``max_buffered_seconds``).

    Args:
        release_messages: how many 200 ms messages to gather before releasing them.
    """

    def __init__(self, release_messages: int = 5) -> None:
        if release_messages < 1:
            raise ValueError(f"release_messages must be >= 1, got {release_messages}")
        self._release_bytes = release_messages * MESSAGE_BYTES
        self._pending = bytearray()

    @property
    def pending_bytes(self) -> int:
        return len(self._pending)

    def feed(self, pcm: bytes | bytearray | memoryview) -> list[bytes]:
        """Add client PCM; return the messages now due (possibly none)."""
        self._pending += pcm
        if len(self._pending) < self._release_bytes:
            return []
        due = len(self._pending) - len(self._pending) % self._release_bytes
        return self._take(due)

    def flush(self) -> list[bytes]:
        """Release every whole message pending now, early; less than one message stays."""
        return self._take(len(self._pending) - len(self._pending) % MESSAGE_BYTES)

    def clear(self) -> int:
        """Drop what is pending; return how many bytes were dropped."""
        dropped = len(self._pending)
        self._pending.clear()
        return dropped

    def _take(self, nbytes: int) -> list[bytes]:
        view = memoryview(self._pending)
        try:
            out = [bytes(view[i : i + MESSAGE_BYTES]) for i in range(0, nbytes, MESSAGE_BYTES)]
        finally:
            view.release()
        del self._pending[:nbytes]
        return out
