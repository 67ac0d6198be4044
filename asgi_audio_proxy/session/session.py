"""``ProxySession``: one proxied conversation, from accept to the last close.

Owns: the session's state enum, its tasks in one ``TaskGroup`` (client receiver, upstream
sender, acknowledgement reader, reply pump, client writer, watchdog), the bounded queues
between them, real-time pacing, limits, byte accounting, the one catch-all, and teardown on
every path. Must not: buffer, frame or route replies inline (``audio``, ``protocol``,
``router``, ``pacing`` and ``outbox`` do), or outlive its connection.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, TypeVar

import httpx
from starlette import status

from ..audio.buffer import ChunkBuffer
from ..audio.wav import MESSAGE_BYTES
from ..config import MESSAGE_DURATION_S, ProxyConfig
from ..dialects.native import ConfigControl, StopControl, parse_control
from ..edge.connection import ClientConnection, ClientGone
from ..errors import (
    AudioProxyError,
    BadClientPayload,
    ClientError,
    IdleTimeout,
    MessageTooBig,
    ServerShutdown,
    SessionLimitExceeded,
    UpstreamError,
)
from ..pool.lease import Lease, UpstreamLeaser
from ..upstreams.minicpm.adapter import BodyClosed, MiniCPMUpstream, Upstream
from ..upstreams.minicpm.replies import ReplyRouter, client_event, error_message
from ..upstreams.minicpm.wire import ack_error
from .channel import ClientChannel
from .pacing import Pacer, RateLimit
from .stats import AudioLedger, SessionLog, SessionStats

__all__ = ["ProxySession", "SessionState"]

logger = logging.getLogger("asgi_audio_proxy.session")
_E = TypeVar("_E", bound=BaseException)


class SessionState(enum.Enum):
    CONNECTING = "connecting"  # accepted (or waiting for an upstream); reaching the upstream
    STREAMING = "streaming"  # audio flows both ways
    CLOSING = "closing"  # teardown under way; nothing is received any more
    CLOSED = "closed"


class ProxySession:
    """Runs one conversation between a client connection and one upstream.

    Args:
        client: the client connection (see :func:`asgi_audio_proxy.edge.connection.as_client`).
        config: the proxy's settings.
        http_client: the proxy's shared ``httpx.AsyncClient``.
        config_data: the caller's camelCase options (``assistantPrompt``, ``vadThreshold``...).
        upstream: an :class:`~.adapter.Upstream`; a MiniCPM-o adapter by default.
        on_end: called with the final :class:`SessionStats`.
        identity: who the client is (from admission); kept on the stats and in the logs.
        leaser: hands out upstreams (a pool); without one, ``config.upstream_url`` is used.
    """

    def __init__(self, client: ClientConnection, config: ProxyConfig,
                 http_client: httpx.AsyncClient, *, config_data: Mapping[str, Any] | None = None,
                 upstream: Upstream | None = None,
                 on_end: Callable[[SessionStats], None] | None = None,
                 identity: object = None, leaser: UpstreamLeaser | None = None) -> None:
        self.id = uuid.uuid4().hex[:12]
        self.log = SessionLog(logger, {"session": self.id})
        self.stats = SessionStats(self.id, identity=identity)
        self._client = client
        self._config = config
        self._config_data = config_data
        self._http_client = http_client
        self._upstream: Upstream | None = upstream
        self._leaser = leaser
        self._lease: Lease | None = None
        self._on_end = on_end
        self._state = SessionState.CONNECTING
        self._buffer = ChunkBuffer(config.release_messages)
        self._router = ReplyRouter()
        self._pacer = Pacer(MESSAGE_DURATION_S, config.chunk_duration)
        self._text_rate = RateLimit(config.max_text_frames_per_s)
        self._ledger = AudioLedger(self.stats)
        self._to_client = ClientChannel(client, config.max_pending_reply_bytes, self.stats, self.log)
        self._shutdown = asyncio.Event()
        # cleared while a stopped reply's body is still open: the upstream would skip audio
        # sent now, so it waits here until the next /completions is open
        self._upstream_listening = asyncio.Event()
        self._upstream_listening.set()
        # back-pressure: a full queue stops the receiver, so the client is no longer read
        self._to_upstream: asyncio.Queue[bytes] = asyncio.Queue(
            round(config.max_buffered_s / MESSAGE_DURATION_S))
        self._messages_sent = 0
        self._skipped_run_s = 0.0  # audio skipped in a row with no reply playing
        self._last_activity = 0.0

    @property
    def state(self) -> SessionState:
        return self._state

    @state.setter
    def state(self, new: SessionState) -> None:
        self.log.debug("state %s -> %s", self._state.value, new.value)
        self._state = new

    def request_shutdown(self) -> None:
        """End the session soon with 1001 (the server is going away)."""
        self._shutdown.set()

    async def run(self) -> SessionStats:
        """Run until the client or the upstream ends the conversation.

        Never raises, except ``CancelledError`` when cancelled (after a 1001 teardown).
        """
        loop = asyncio.get_running_loop()
        started = self._last_activity = loop.time()
        failure: AudioProxyError | None = None
        client_left = cancelled = False
        try:
            await self._serve()
        except* ClientGone as group:
            client_left = True
            self.stats.close_code = _first(group, ClientGone).code
        except* AudioProxyError as group:
            failure = _first(group, AudioProxyError)
        except* asyncio.CancelledError:  # the server cancelled us: it is going away
            cancelled = True
            failure = ServerShutdown("the server is shutting down")
        except* Exception as group:  # the one catch-all: anything else is our bug
            self.log.error("session failed", exc_info=group.exceptions[0])
            failure = AudioProxyError("internal error in the proxy")
        finally:
            await self._teardown(failure, client_left)
            self.stats.duration_s = loop.time() - started
            self.log.info("closed: %s", self.stats.summary())
            if self._on_end is not None:
                self._on_end(self.stats)
        if cancelled:
            raise asyncio.CancelledError
        return self.stats

    async def _serve(self) -> None:
        await self._client.accept()
        self.log.info("open: identity %s", self.stats.identity)
        try:
            options = self._config.client_options(self._config_data)
        except ValueError as exc:
            raise ClientError(f"bad config: {exc}") from exc
        config = self._config
        if self._leaser is not None:
            self._lease = await self._leaser.acquire(self.id, self._client)
            config = replace(config, upstream_url=self._lease.url)
        upstream = self._upstream = self._upstream or MiniCPMUpstream(config, self._http_client,
                                                                      self.log)
        async with asyncio.timeout(3 * config.connect_timeout_s):
            await upstream.connect(options)
        self.log.debug("upstream %s, version %s", config.upstream_url, upstream.version)
        await self._client.send(client_event(type="ready", session=self.id,
                                       upstream_version=upstream.version))
        self.state = SessionState.STREAMING
        for frame in self._lease.held_frames if self._lease else ():
            await (self._on_audio(frame) if isinstance(frame, bytes) else self._on_control(frame))
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._receive_from_client())
            tg.create_task(self._send_upstream())
            tg.create_task(self._read_acks())
            tg.create_task(self._pump_replies())
            tg.create_task(self._to_client.write())
            tg.create_task(self._watch())
            if self._lease is not None:
                tg.create_task(self._watch_lease(self._lease))

    async def _receive_from_client(self) -> None:
        while True:
            frame = await self._client.receive()
            if isinstance(frame, bytes):
                await self._on_audio(frame)
            else:
                await self._on_control(frame)

    async def _on_audio(self, frame: bytes) -> None:
        now = asyncio.get_running_loop().time()
        self._ledger.received(len(frame))
        if len(frame) > self._config.max_message_bytes:
            self._ledger.dropped("oversize", len(frame))
            raise MessageTooBig(f"audio frame of {len(frame)} bytes is over the limit of "
                                f"{self._config.max_message_bytes}")
        self._last_activity = now
        self._pacer.received(len(frame), now)
        lead_s = self._pacer.lead_s(now)
        if lead_s > self._config.max_lead_s:
            self._ledger.dropped("too_fast", len(frame))
            raise ClientError(f"audio is arriving {lead_s:.1f} s ahead of real time (the limit is "
                              f"{self._config.max_lead_s} s): stream at real-time pace")
        for message in self._buffer.feed(frame):
            self._ledger.queued(len(message))
            await self._to_upstream.put(message)  # full queue: back-pressure on the client

    async def _on_control(self, text: str) -> None:
        """A control frame; a bad one costs an error event, never the session."""
        if not self._text_rate.allow(asyncio.get_running_loop().time()):
            raise ClientError(f"more than {self._config.max_text_frames_per_s:g} control "
                              "messages per second")
        try:
            control = parse_control(text, self._config.max_text_bytes)
            if isinstance(control, StopControl):
                self._stop_reply()
            elif isinstance(control, ConfigControl):
                await self._reconfigure(control.config_data)
        except ClientError as exc:
            self.log.warning("client sent a bad control message: %s", exc.message)
            self._to_client.emit(error_message(exc.kind, exc.message, exc.close_code))

    def _stop_reply(self) -> None:
        cut = self._router.cut()
        if not cut:
            return  # no reply playing: nothing to stop, and a /stop now would kill the next one
        # cut here at once (section 8: the upstream's /stop is late): no queued audio either
        self._to_client.drop_audio()
        self._upstream_listening.clear()
        self._live_upstream.stop()
        self.log.debug("reply stopped by the client")
        for message in cut:
            self._to_client.emit(message)

    async def _reconfigure(self, config_data: dict[str, Any]) -> None:
        if self.stats.received_bytes:
            raise ClientError("config must be sent before the first audio")
        try:
            options = self._config.client_options(config_data)
        except ValueError as exc:
            raise BadClientPayload(f"bad config: {exc}") from exc
        await self._live_upstream.set_options(options)
        self._to_client.emit(client_event(type="config_applied"))

    async def _send_upstream(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            message = await self._to_upstream.get()
            await self._upstream_listening.wait()
            delay = self._pacer.send_at(self._messages_sent) - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)  # pacing to real time, which the upstream's VAD needs
            self._ledger.sending(len(message))
            self._messages_sent += 1
            await self._live_upstream.send_audio(message)

    async def _read_acks(self) -> None:
        async for nbytes, ack in self._live_upstream.acks():
            self._ledger.acknowledged(nbytes, ack.reason)
            if ack.reason == "done":
                self._skipped_run_s = 0.0
            elif ack.reason == "skip":
                self._count_skip(nbytes)
            elif ack.error is not None:
                raise ack_error(ack.error)

    def _count_skip(self, nbytes: int) -> None:
        if self._router.has_open_reply:
            return  # half duplex: audio during a reply is skipped by design
        self._skipped_run_s += nbytes / MESSAGE_BYTES * MESSAGE_DURATION_S
        if self._skipped_run_s > self._config.max_skipped_s:
            raise UpstreamError(f"the upstream skipped {self._skipped_run_s:.0f} s of audio in a "
                                "row with no reply: it is stuck")

    async def _pump_replies(self) -> None:
        async for item in self._live_upstream.events():
            self._last_activity = asyncio.get_running_loop().time()
            self._skipped_run_s = 0.0
            if isinstance(item, BodyClosed):
                messages = self._router.body_closed()
                self._upstream_listening.set()
            else:
                messages = self._router.route(item)
            for message in messages:
                self._to_client.emit(message)

    async def _watch(self) -> None:
        """Ends the session at shutdown, at its time limit, or when it has been idle too long."""
        loop = asyncio.get_running_loop()
        ends_at = loop.time() + self._config.max_session_s
        while True:
            idle_at = self._last_activity + self._config.idle_timeout_s
            try:
                async with asyncio.timeout_at(min(ends_at, idle_at)):
                    await self._shutdown.wait()
            except TimeoutError:
                now = loop.time()
                if now >= ends_at:
                    raise SessionLimitExceeded("the session reached its time limit of "
                                               f"{self._config.max_session_s:g} s") from None
                if now >= self._last_activity + self._config.idle_timeout_s:
                    raise IdleTimeout(f"no audio for {self._config.idle_timeout_s:g} s") from None
                continue
            raise ServerShutdown("the server is shutting down")

    async def _watch_lease(self, lease: Lease) -> None:
        """A lost lease means the upstream may be handed to someone else: end at once."""
        await lease.lost.wait()
        raise UpstreamError(f"the lease on {lease.url} was lost; the conversation cannot go on")

    @property
    def _live_upstream(self) -> Upstream:
        if self._upstream is None:
            raise RuntimeError(f"no upstream in state {self._state.value}")
        return self._upstream

    async def _teardown(self, failure: AudioProxyError | None, client_left: bool) -> None:
        self.state = SessionState.CLOSING
        self.stats.replies = self._router.stats.replies
        self.stats.reply_audio_bytes = self._router.stats.reply_audio_bytes
        if self._upstream is not None:
            if self._router.cut():  # the client will not hear the rest: stop the model now
                self._upstream.stop()
            await self._upstream.aclose()
        if self._lease is not None:
            await self._lease.release(failed=isinstance(failure, UpstreamError))
        self._ledger.settle(self._buffer.clear())
        if failure is not None:
            level = logging.INFO if isinstance(failure, IdleTimeout | ServerShutdown) else logging.WARNING
            self.log.log(level, "ending with %s: %s", type(failure).__name__, failure.message)
            self.stats.close_code = failure.close_code
        if not client_left:
            code = self.stats.close_code = self.stats.close_code or status.WS_1000_NORMAL_CLOSURE
            await self._to_client.goodbye(failure, code, self._config.close_timeout_s)
        self.state = SessionState.CLOSED


def _first(group: BaseExceptionGroup[Any], kind: type[_E]) -> _E:
    """The first exception an ``except*`` clause caught (its group holds only ``kind``)."""
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    assert isinstance(exc, kind)
    return exc
