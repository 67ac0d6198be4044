"""The way to the client: a bounded outbox, its writer task, and the last words on close.

Owns: queueing client messages without ever blocking the reply path (the outbox drops the
oldest reply audio for a slow reader, reports it once, and gives up with ``ClientTooSlow``
once a whole outbox's worth is lost), the writer loop, barge-in (queued audio dropped at once),
and the goodbye: flush, error event, close, all under a deadline.
Must not: route, parse or decide when a session ends.
"""

from __future__ import annotations

import asyncio
import logging

from starlette import status

from ..edge.connection import ClientConnection, ClientGone
from ..errors import AudioProxyError, ClientTooSlow
from ..upstreams.minicpm.replies import ClientMessage, error_message
from .outbox import Outbox
from .stats import SessionStats

__all__ = ["ClientChannel"]


class ClientChannel:
    """Sends a session's messages to its client, in order, from one writer task.

    Args:
        client: the connection.
        max_pending_reply_bytes: reply audio that may wait for a slow client.
        stats: where dropped reply audio is counted.
        log: the session's logger.
    """

    def __init__(self, client: ClientConnection, max_pending_reply_bytes: int, stats: SessionStats,
                 log: logging.LoggerAdapter[logging.Logger]) -> None:
        self._client = client
        self._max_dropped = max_pending_reply_bytes
        self._stats = stats
        self._log = log
        self._outbox = Outbox(max_pending_reply_bytes)
        self._ready = asyncio.Event()
        self._overflow_reported = False

    def emit(self, message: ClientMessage) -> None:
        """Queue a message; a slow client loses the oldest reply audio first.

        Raises:
            ClientTooSlow: the client has lost a whole outbox's worth of audio.
        """
        dropped = self._outbox.put(message)
        self._ready.set()
        if not dropped:
            return
        self._stats.reply_audio_dropped_bytes += dropped
        if self._stats.reply_audio_dropped_bytes > self._max_dropped:
            raise ClientTooSlow("the client does not read its replies: "
                                f"{self._stats.reply_audio_dropped_bytes} bytes of audio dropped")
        if not self._overflow_reported:
            self._overflow_reported = True
            self._log.warning("client too slow: dropping the oldest reply audio")
            self._outbox.put(error_message("reply_audio_dropped", "reading too slowly: the oldest "
                                           "reply audio is being dropped",
                                           status.WS_1013_TRY_AGAIN_LATER))

    def drop_audio(self) -> None:
        """The reply was stopped: what is queued of it must not play."""
        self._stats.reply_audio_dropped_bytes += self._outbox.drop_audio()

    async def write(self) -> None:
        """The writer task: sends queued messages as they come, forever."""
        while True:
            while not self._outbox:
                self._ready.clear()
                await self._ready.wait()
            await self._client.send(self._outbox.get())

    async def goodbye(self, failure: AudioProxyError | None, code: int, deadline_s: float) -> None:
        """Flush what the client is owed, tell it what went wrong, close; within ``deadline_s``."""
        try:
            async with asyncio.timeout(deadline_s):
                if isinstance(failure, ClientTooSlow):
                    self.drop_audio()  # it cannot take the audio; events still go
                while self._outbox:
                    await self._client.send(self._outbox.get())
                if failure is not None:
                    await self._client.send(error_message(failure.kind, failure.message, code))
                await self._client.close(code, failure.message if failure else "")
        except (ClientGone, TimeoutError):
            pass  # the client cannot hear it; the session's log line has it
        finally:
            self.drop_audio()  # whatever did not go out is counted, once
