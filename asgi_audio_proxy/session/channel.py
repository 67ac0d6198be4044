"""The way to the client: a bounded outbox of events, its writer task, and the last words on close.

Owns: queueing events without ever blocking the reply path (the outbox drops the oldest reply
audio for a slow reader, reports it once, and gives up with ``ClientTooSlow`` once a whole
outbox's worth is lost), the writer loop (each event encoded by the connection's dialect as it
goes out, reply audio paced to the dialect's ``playback_lead_ms``), the reply as the client has
been sent it (one :class:`~asgi_audio_proxy.reply_state.ReplyLifecycle`), barge-in (queued audio
dropped at once), and the goodbye: flush, error event, close, all under a deadline.
Must not: route, parse or decide when a session ends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from starlette import status

from ..dialects.base import ClientDialect
from ..dialects.connection import ClientConnection
from ..errors import AudioProxyError, ClientGone, ClientTooSlow
from ..events import ClientEvent, ErrorEvent, ReplyAudio, ReplyEnded, ReplyStarted, ServerEvent
from ..reply_state import ReplyLifecycle
from .outbox import Outbox
from .stats import SessionStats

__all__ = ["ClientChannel", "EventObserver"]

#: told of every event a session receives from its client or sends to it (metrics time turns)
EventObserver = Callable[[ClientEvent | ServerEvent], None]


class ClientChannel:
    """Sends a session's events to its client, in order, from one writer task.

    Args:
        client: the connection.
        dialect: the connection's wire format.
        max_pending_reply_bytes: reply audio that may wait for a slow client.
        stats: where dropped reply audio is counted.
        log: the session's logger.
        observer: told of every event sent.
    """

    def __init__(self, client: ClientConnection, dialect: ClientDialect, max_pending_reply_bytes: int,
                 stats: SessionStats, log: logging.LoggerAdapter[logging.Logger],
                 observer: EventObserver | None = None) -> None:
        self._client = client
        self._dialect = dialect
        self._max_dropped = max_pending_reply_bytes
        self._stats = stats
        self._log = log
        self._observer = observer
        self._outbox = Outbox(max_pending_reply_bytes)
        self._ready = asyncio.Event()
        self._overflow_reported = False
        self._played_until = 0.0  # when the reply audio sent so far ends playing (paced dialects)
        self._cuts = 0  # bumped by every stop: a paced send in progress gives up its rest
        #: the reply as sent: playing from its start going out until its end does
        self.sent_reply = ReplyLifecycle("client")

    def emit(self, event: ServerEvent) -> None:
        """Queue an event; a slow client loses the oldest reply audio first.

        Raises:
            ClientTooSlow: the client has lost a whole outbox's worth of audio.
        """
        dropped = self._outbox.put(event)
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
            self._outbox.put(ErrorEvent("reply_audio_dropped", "reading too slowly: the oldest "
                                        "reply audio is being dropped", status.WS_1013_TRY_AGAIN_LATER))

    def drop_audio(self) -> None:
        """The reply was stopped: what is queued of it must not play."""
        self._stats.reply_audio_dropped_bytes += self._outbox.drop_audio()
        self._played_until = 0.0
        self._cuts += 1

    def cut_queued_reply(self, ending: ReplyEnded) -> bool:
        """Stop a reply the upstream has finished but the client has not been sent all of (a
        paced client): its queued audio is dropped and its end becomes ``ending``. Returns
        whether there was one."""
        if not self.sent_reply.is_playing:
            return False
        self.drop_audio()
        if not self._outbox.cut_reply(ending):
            self.emit(ending)
        return True

    async def send_now(self, event: ServerEvent) -> None:
        """Send one event at once, before the writer runs (``queued``, ``ready``)."""
        await self._send(event)

    async def write(self) -> None:
        """The writer task: sends queued events as they come, forever."""
        lead_ms = self._dialect.playback_lead_ms
        loop = asyncio.get_running_loop()
        while True:
            while not self._outbox:
                self._ready.clear()
                await self._ready.wait()
            event = self._outbox.get()
            if isinstance(event, ReplyAudio) and lead_ms is not None:
                await self._send_paced(event, lead_ms / 1000, loop)
                continue
            if isinstance(event, ReplyEnded):
                self._played_until = 0.0
            await self._send(event)

    async def _send_paced(self, audio: ReplyAudio, lead_s: float, loop: asyncio.AbstractEventLoop) -> None:
        """Send reply audio in pieces of half the lead, each no further ahead of real time than
        the lead: a long upstream chunk never fills the client's buffer, so a stop is cheap."""
        cuts = self._cuts
        step = max(2, int(audio.rate_hz * lead_s / 2) * 2)  # bytes of half the lead
        for start in range(0, len(audio.pcm), step):
            now = loop.time()
            ahead_s = self._played_until - now - lead_s
            if ahead_s > 0:
                await asyncio.sleep(ahead_s)  # pacing to real time
                now = loop.time()
            if self._cuts != cuts:  # stopped meanwhile: the rest of this event must not play either
                self._stats.reply_audio_dropped_bytes += len(audio.pcm) - start
                return
            piece = ReplyAudio(audio.pcm[start:start + step], audio.rate_hz)
            self._played_until = max(self._played_until, now) + piece.duration_ms / 1000
            await self._send(piece)

    async def goodbye(self, failure: AudioProxyError | None, code: int, deadline_s: float) -> None:
        """Flush what the client is owed, tell it what went wrong, close; within ``deadline_s``."""
        try:
            async with asyncio.timeout(deadline_s):
                if isinstance(failure, ClientTooSlow):
                    self.drop_audio()  # it cannot take the audio; events still go
                while self._outbox:
                    await self._send(self._outbox.get())
                if failure is not None:
                    await self._send(ErrorEvent(failure.kind, failure.message, code, fatal=True))
                await self._client.close(code, failure.message if failure else "")
        except (ClientGone, TimeoutError):
            pass  # the client cannot hear it; the session's log line has it
        finally:
            self.drop_audio()  # whatever did not go out is counted, once

    async def _send(self, event: ServerEvent) -> None:
        if isinstance(event, ReplyStarted | ReplyEnded):
            self._sending(event)
        for frame in self._dialect.send(event):
            await self._client.send(frame)
        if self._observer is not None:
            self._observer(event)

    def _sending(self, event: ReplyStarted | ReplyEnded) -> None:
        sent = self.sent_reply
        if isinstance(event, ReplyStarted):
            if not sent.is_playing:  # else the session has said its adapter is out of order
                sent.start()
        elif sent.is_playing:  # else its start never went out: it was cut before it began
            if event.reason == "stopped":
                sent.cut()
                sent.close()  # its queued audio was dropped with the cut: nothing more of it goes
            else:
                sent.end()
