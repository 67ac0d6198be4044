"""``QueueWriter``: the one task that empties a :class:`~.sendqueue.SendQueue` onto a socket.

Owns: the two wake-ups around the queue (``has_output``: something to send; ``has_room``: the
writer took audio out of a full queue), the bytes of client audio on the wire right now
(``in_flight_bytes``, for the ledger when a socket is lost or the session ends), and the
``sent`` outcome of each append once it is written. Shared by every kind whose client events go
through a ``SendQueue`` (``realtime``, ``vllm-duplex``). Must not: decide what is queued, or in
what order (the queue does).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from ...events import AudioOutcome
from ..base import Emit
from .sendqueue import SendQueue

__all__ = ["QueueWriter"]


class QueueWriter:
    """Writes what ``queue`` gives, in its order, for as long as :meth:`run` runs."""

    def __init__(self, queue: SendQueue) -> None:
        self.queue = queue
        self.has_output = asyncio.Event()  # set when the queue has something to send
        self.has_room = asyncio.Event()  # set when the writer took audio out of a full queue
        self.in_flight_bytes = 0

    async def room(self) -> None:
        """Return once the queue has room for more audio (back-pressure on the client)."""
        while not self.queue.has_room:
            self.has_room.clear()
            await self.has_room.wait()

    async def run(self, send: Callable[[str], Awaitable[None]], emit: Emit) -> None:
        """Send each client event in turn; an append, once written, is audio ``sent``."""
        while True:
            item = self.queue.pop()
            if item is None:
                self.has_output.clear()
                await self.has_output.wait()
                continue
            self.has_room.set()
            self.in_flight_bytes = item.audio_bytes
            await send(item.text)
            self.in_flight_bytes = 0
            if item.audio_bytes:
                emit(AudioOutcome(item.audio_bytes, "sent", "append"))
