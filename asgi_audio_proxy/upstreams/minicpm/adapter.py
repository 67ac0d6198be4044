"""The MiniCPM-o adapter: the upstream seam over the web-demo model server's protocol.

Owns: the server's rules, so nothing above the seam knows them: 200 ms WAV messages released
every ``chunk_duration`` of the kind's :class:`.MiniCPMSettings` (section 5.3), real-time pacing
(its VAD needs it), the pipelined sender and its acknowledgements turned into audio outcomes
(``done`` = sent, ``skip`` = skipped, an error = rejected; 3.3), the upstream stuck skipping,
replies through :class:`.ReplyRouter`, the hold after a stop (audio waits until the next
``/completions`` is open, so the model hears what interrupted it; section 8), manual turns ended
with silence, and option names.
Must not: know the client, or let a library exception out (the transport translates them).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, replace

import httpx

from ...audio.buffer import ChunkBuffer
from ...audio.wav import CLIENT_SAMPLE_RATE_HZ, MESSAGE_BYTES
from ...config import ProxyConfig, UpstreamOptions
from ...errors import UpstreamError
from ...events import AudioOutcome
from ...pacing import Pacer
from ..base import Emit, UpstreamFactory
from .replies import ReplyRouter
from .settings import MESSAGE_DURATION_S, MiniCPMSettings
from .transport import BodyClosed, MiniCPMTransport, Transport
from .wire import ack_error

__all__ = ["COMMIT_SILENCE_S", "MiniCPMAdapter", "minicpm_adapter", "minicpm_upstream"]

logger = logging.getLogger("asgi_audio_proxy.upstream")
#: the server ends a turn once speech in the last second drops under its threshold: 1.2 s of
#: silence after a committed utterance always ends it, whatever ``vad_threshold`` is
COMMIT_SILENCE_S = 1.2
#: the last messages remembered, to send again after a voice barge-in those the server skipped:
#: 2 s covers the speech a detector needs before it cuts (a few hundred ms) with room to spare
RESEND_MESSAGES = 10


@dataclass(slots=True)
class _Sent:
    """One message sent, until it is known whether the server heard it."""

    index: int
    message: bytes | None  # None once heard or sent again: nothing left to send
    over_reply: bool  # sent while a reply was open (skipped, unless the ack says otherwise)
    ack: str | None = None  # the server's finish reason once acknowledged

    def skipped_since(self, first: int) -> bool:
        """Whether this message is part of an interruption from ``first`` and went unheard."""
        if self.index < first or self.message is None:
            return False
        return self.ack == "skip" or (self.ack is None and self.over_reply)


class MiniCPMAdapter:
    """One conversation with a MiniCPM-o model server.

    Args:
        config: the proxy's settings (``upstream_url`` is the leased server).
        http_client: the proxy's shared client; never closed here.
        log: a session-tagged logger.
        transport: the server's calls (a :class:`.MiniCPMTransport` by default; tests inject one).
        settings: the kind's settings (its defaults when omitted); what ``config`` forwards
            under the original keywords (``chunk_duration``...) is applied over them.
    """

    def __init__(self, config: ProxyConfig, http_client: httpx.AsyncClient | None = None,
                 log: logging.LoggerAdapter[logging.Logger] | None = None, *,
                 transport: Transport | None = None, settings: MiniCPMSettings | None = None) -> None:
        self._config = config
        self.settings = (settings or MiniCPMSettings()).forwarded(config)
        self._log = log or logging.LoggerAdapter(logger, {})
        if transport is None:
            if http_client is None:
                raise ValueError("MiniCPMAdapter needs an http_client or a transport")
            transport = MiniCPMTransport(config, http_client, self._log, settings=self.settings)
        self._transport = transport
        self._buffer = ChunkBuffer(self.settings.release_messages)
        self._pacer = Pacer(MESSAGE_DURATION_S, self.settings.chunk_duration)
        self._last_sent_at: float | None = None  # when the last message went (the catch-up pace)
        self._backlog: int | None = None  # messages queued when the first went
        self._router = ReplyRouter()
        # back-pressure: a full queue makes send_audio wait, so the client is no longer read
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(
            round(config.max_buffered_s / MESSAGE_DURATION_S))
        self._queued_bytes = 0
        self._in_flight_bytes = 0
        self._messages_sent = 0
        # the last messages sent: those the server skipped (half duplex: a reply was pending
        # or playing) are the ones a voice barge-in sends again
        self._recent: deque[_Sent] = deque(maxlen=RESEND_MESSAGES)
        # a voice cut's first message: from there, what was skipped goes first once no reply
        # is open and the server listens again
        self._resend_from: int | None = None
        self._in_flight: deque[_Sent | None] = deque()  # per message in flight; None: a resend
        self._skipped_run_s = 0.0  # audio skipped in a row with no reply playing
        # cleared while a stopped reply's body is still open: the upstream would skip audio
        # sent now, so it waits here until the next /completions is open (section 8)
        self._listening = asyncio.Event()
        self._listening.set()

    @property
    def version(self) -> str:
        return self._transport.version

    @property
    def input_rate_hz(self) -> int:
        return CLIENT_SAMPLE_RATE_HZ

    @property
    def reconfigurable(self) -> bool:
        """No: ``/init_options`` is taken before the first audio only."""
        return False

    async def connect(self, options: UpstreamOptions) -> None:
        await self._transport.connect(options)

    async def configure(self, options: UpstreamOptions) -> None:
        await self._transport.set_options(options)

    async def send_audio(self, pcm: bytes) -> None:
        if not self._pacer.started:  # the schedule runs from the first audio
            self._pacer.start(asyncio.get_running_loop().time())
        for message in self._buffer.feed(pcm):
            self._queued_bytes += len(message)
            await self._queue.put(message)

    async def commit(self) -> None:
        pending = self._buffer.flush()  # whole messages; a part-message waits for the silence
        silence = bytes(round(COMMIT_SILENCE_S / MESSAGE_DURATION_S) * MESSAGE_BYTES)
        if not self._pacer.started:
            self._pacer.start(asyncio.get_running_loop().time())
        for message in [*pending, *self._buffer.feed(silence), *self._buffer.flush()]:
            self._queued_bytes += len(message)
            await self._queue.put(message)

    def clear(self) -> int:
        dropped = self._buffer.clear()
        while not self._queue.empty():
            dropped += len(self._queue.get_nowait())
        self._queued_bytes = 0
        return dropped

    def stop(self, resend_from_ms: float | None = None) -> bool:
        if resend_from_ms is not None:
            # half duplex: what was said over the reply was skipped. Even when the model's reply
            # has already ended (the client still plays its queued audio), what the server
            # skipped while it was open goes again
            self._resend_from = int(resend_from_ms / 1000 / MESSAGE_DURATION_S)
        if not self._router.cut():
            return False  # no reply playing: a /stop now would kill the next one
        # cut here at once (section 8: the upstream's /stop is late)
        self._listening.clear()
        self._transport.stop()
        return True

    async def run(self, emit: Emit) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._send())
            tg.create_task(self._read_acks(emit))
            tg.create_task(self._pump_replies(emit))

    def leftover(self) -> Mapping[str, int]:
        left = {"session_end": self._buffer.clear() + self._queued_bytes,
                "unacknowledged": self._in_flight_bytes}
        self._queued_bytes = self._in_flight_bytes = 0
        return {reason: nbytes for reason, nbytes in left.items() if nbytes}

    async def aclose(self) -> None:
        if self._router.cut():  # the client will not hear the rest: stop the model now
            self._transport.stop()
        await self._transport.aclose()

    async def _send(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            message = await self._queue.get()
            await self._listening.wait()
            if self._resend_from is not None and not self._router.has_open_reply:
                await self._send_again(self._resend_from)
            if self._backlog is None:  # what came while the conversation was being opened
                self._backlog = self._queue.qsize() + 1
            # the opening's backlog goes at once (its schedule says so), later lateness catches
            # up at CATCH_UP times real time, never as one burst
            previous = self._last_sent_at if self._messages_sent >= self._backlog else None
            delay = self._pacer.send_at(self._messages_sent, previous) - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)  # pacing to real time, which the upstream's VAD needs
            self._last_sent_at = loop.time()
            self._queued_bytes -= len(message)
            self._in_flight_bytes += len(message)
            sent = _Sent(self._messages_sent, message, self._router.has_open_reply)
            self._recent.append(sent)
            self._in_flight.append(sent)
            self._messages_sent += 1
            await self._transport.send_audio(message)

    async def _send_again(self, first: int) -> None:
        """The interruption first, at once (its time has passed): what the server skipped of it."""
        self._resend_from = None
        for sent in [sent for sent in self._recent if sent.skipped_since(first)]:
            again, sent.message = sent.message, None
            assert again is not None  # skipped_since checked it
            self._pacer.replayed(len(again))
            self._in_flight.append(None)
            await self._transport.send_audio(again)

    async def _read_acks(self, emit: Emit) -> None:
        async for nbytes, ack in self._transport.acks():
            sent = self._in_flight.popleft()
            if sent is None:  # a resend: counted when it was skipped the first time
                if ack.reason == "done":
                    emit(AudioOutcome(nbytes, "resent", "done"))
                continue
            sent.ack = ack.reason
            if ack.reason != "skip":
                sent.message = None  # heard (or refused): never sent again
            self._in_flight_bytes -= nbytes
            if ack.reason == "done":
                self._skipped_run_s = 0.0
                emit(AudioOutcome(nbytes, "sent", "done"))
            elif ack.reason == "skip":
                emit(AudioOutcome(nbytes, "skipped", "skip"))
                self._count_skip(nbytes)
            else:
                emit(AudioOutcome(nbytes, "rejected", ack.reason if ack.reason is not None else "error"))
                if ack.error is not None:
                    raise ack_error(ack.error)

    def _count_skip(self, nbytes: int) -> None:
        if self._router.has_open_reply:
            return  # half duplex: audio during a reply is skipped by design
        self._skipped_run_s += nbytes / MESSAGE_BYTES * MESSAGE_DURATION_S
        if self._skipped_run_s > self.settings.max_skipped_s:
            raise UpstreamError(f"the upstream skipped {self._skipped_run_s:.0f} s of audio in a "
                                "row with no reply: it is stuck")

    async def _pump_replies(self, emit: Emit) -> None:
        async for item in self._transport.events():
            self._skipped_run_s = 0.0
            if isinstance(item, BodyClosed):
                events = self._router.body_closed()
                self._listening.set()
            else:
                events = self._router.route(item)
            for event in events:
                emit(event)


def minicpm_upstream(settings: MiniCPMSettings) -> UpstreamFactory:
    """The :data:`~asgi_audio_proxy.upstreams.base.UpstreamFactory` of a MiniCPM-o kind with
    ``settings`` (what a session's ``ProxyConfig`` forwards is applied over them)."""

    def factory(url: str, config: ProxyConfig, http_client: httpx.AsyncClient,
                log: logging.LoggerAdapter[logging.Logger]) -> MiniCPMAdapter:
        return MiniCPMAdapter(replace(config, upstream_url=url), http_client, log, settings=settings)

    return factory


def minicpm_adapter(url: str, config: ProxyConfig, http_client: httpx.AsyncClient,
                    log: logging.LoggerAdapter[logging.Logger]) -> MiniCPMAdapter:
    """The default :data:`~asgi_audio_proxy.upstreams.base.UpstreamFactory`: MiniCPM-o at ``url``
    with the kind's default settings."""
    return MiniCPMAdapter(replace(config, upstream_url=url), http_client, log)
