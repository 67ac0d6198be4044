"""``ProxySession``: one proxied conversation, from accept to the last close.

Owns: the session's state enum, its four tasks in one ``TaskGroup`` (client receiver, upstream
sender, acknowledgement reader, reply pump), the bounded queue between receiver and sender,
the session-tagged logger, byte accounting, the one catch-all, and teardown on every path.
Must not: buffer, frame or route replies inline (``audio``, ``protocol`` and ``router`` do),
or outlive its connection.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TypeVar

import httpx
from starlette import status

from .audio import MESSAGE_BYTES, ChunkBuffer
from .config import ProxyConfig
from .connection import ClientConnection, ClientGone
from .errors import (
    AudioProxyError,
    BadClientPayload,
    ClientError,
    MessageTooBig,
    UpstreamError,
    UpstreamProtocolError,
)
from .router import ClientMessage, ReplyRouter, error_message
from .upstream import BodyClosed, MiniCPMUpstream, Upstream

__all__ = ["Lease", "ProxySession", "SessionState", "SessionStats", "UpstreamLeaser"]

logger = logging.getLogger("asgi_audio_proxy.session")
_E = TypeVar("_E", bound=BaseException)


class SessionState(enum.Enum):
    CONNECTING = "connecting"  # accepted; reaching the upstream
    STREAMING = "streaming"  # audio flows both ways
    CLOSING = "closing"  # teardown under way; nothing is received any more
    CLOSED = "closed"


@dataclass
class SessionStats:
    """What one session did. ``received_bytes == sent + skipped + sum(dropped)`` always."""

    session_id: str
    received_bytes: int = 0  # client PCM
    sent_bytes: int = 0  # acknowledged ``done`` by the upstream
    skipped_bytes: int = 0  # acknowledged ``skip`` (the upstream was replying)
    dropped_bytes: Counter[str] = field(default_factory=Counter)  # by reason
    acks: Counter[str] = field(default_factory=Counter)
    replies: int = 0
    reply_audio_bytes: int = 0
    close_code: int | None = None
    identity: object = None

    @property
    def balanced(self) -> bool:
        return self.received_bytes == (self.sent_bytes + self.skipped_bytes
                                       + sum(self.dropped_bytes.values()))


class Lease(Protocol):
    """One upstream held for one conversation (see :class:`UpstreamLeaser`)."""

    #: base URL of the leased upstream
    url: str
    #: client frames received while the session waited for this lease, oldest first
    held_frames: list[bytes | str]

    async def release(self, *, failed: bool = False) -> None:
        """Give the upstream back; ``failed`` says it broke mid-session (health)."""
        ...


class UpstreamLeaser(Protocol):
    """Hands each session an upstream of its own, queueing it while all are busy."""

    async def acquire(self, session_id: str, client: ClientConnection) -> Lease:
        """Wait for a free upstream; may send ``queued`` events to ``client`` meanwhile.

        Raises:
            SessionLimitExceeded: the queue is full or the wait ran out.
            ClientGone: the client left while it waited.
        """
        ...


class _SessionLog(logging.LoggerAdapter[logging.Logger]):
    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        return f"[session {self.extra['session'] if self.extra else '?'}] {msg}", kwargs


class ProxySession:
    """Runs one conversation between a client connection and one upstream.

    Args:
        client: the client connection (see :func:`asgi_audio_proxy.connection.as_client`).
        config: the proxy's settings.
        http_client: the proxy's shared ``httpx.AsyncClient``.
        config_data: the caller's camelCase options (``assistantPrompt``, ``vadThreshold``...).
        upstream: an :class:`~asgi_audio_proxy.upstream.Upstream`; a MiniCPM-o adapter by default.
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
        self.log = _SessionLog(logger, {"session": self.id})
        self._client = client
        self._config = config
        self._config_data = config_data
        self._http_client = http_client
        self._upstream: Upstream | None = upstream
        self._leaser = leaser
        self._lease: Lease | None = None
        self._on_end = on_end
        self._state = SessionState.CONNECTING
        self.stats = SessionStats(self.id, identity=identity)
        self._buffer = ChunkBuffer(config.release_messages)
        self._router = ReplyRouter()
        max_messages = round(config.max_buffered_s * 16_000 * 2 / MESSAGE_BYTES)
        self._to_upstream: asyncio.Queue[bytes] = asyncio.Queue(max_messages)
        self._queued_bytes = 0  # released by the buffer, not yet handed to the upstream
        self._in_flight_bytes = 0  # handed to the upstream, not yet acknowledged
        self._send_lock = asyncio.Lock()
        self._audio_started = False

    @property
    def state(self) -> SessionState:
        return self._state

    @state.setter
    def state(self, new: SessionState) -> None:
        self.log.debug("state %s -> %s", self._state.value, new.value)
        self._state = new

    @property
    def _live_upstream(self) -> Upstream:
        if self._upstream is None:
            raise RuntimeError(f"no upstream in state {self._state.value}")
        return self._upstream

    async def run(self) -> SessionStats:
        """Run until the client or the upstream ends the conversation; never raises."""
        started = time.monotonic()
        failure: AudioProxyError | None = None
        client_left = False
        try:
            await self._serve()
        except* ClientGone as group:
            client_left = True
            self.stats.close_code = _first(group, ClientGone).code
        except* AudioProxyError as group:
            failure = _first(group, AudioProxyError)
        except* Exception as group:  # the one catch-all: anything else is our bug
            self.log.error("session failed", exc_info=group.exceptions[0])
            failure = AudioProxyError("internal error in the proxy")
        finally:
            await self._teardown(failure, client_left)
            self.log.info(
                "closed: code %s, %.1f s, received %d B, sent %d B, skipped %d B, dropped %s, "
                "%d replies, %d B reply audio", self.stats.close_code, time.monotonic() - started,
                self.stats.received_bytes, self.stats.sent_bytes, self.stats.skipped_bytes,
                dict(self.stats.dropped_bytes) or "nothing", self.stats.replies,
                self.stats.reply_audio_bytes)
            if self._on_end is not None:
                self._on_end(self.stats)
        return self.stats

    async def _serve(self) -> None:
        await self._client.accept()
        self.log.info("open: upstream %s, identity %s", self._config.upstream_url,
                      self.stats.identity)
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
        await upstream.connect(options)
        await self._send(_event(type="ready", session=self.id, upstream_version=upstream.version))
        self.state = SessionState.STREAMING
        for frame in self._lease.held_frames if self._lease else ():
            await (self._on_audio(frame) if isinstance(frame, bytes) else self._on_control(frame))
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._receive_from_client())
            tg.create_task(self._send_upstream())
            tg.create_task(self._read_acks())
            tg.create_task(self._pump_replies())

    async def _receive_from_client(self) -> None:
        while True:
            frame = await self._client.receive()
            if isinstance(frame, bytes):
                await self._on_audio(frame)
            else:
                await self._on_control(frame)

    async def _on_audio(self, frame: bytes) -> None:
        self.stats.received_bytes += len(frame)
        if len(frame) > self._config.max_message_bytes:
            self.stats.dropped_bytes["oversize"] += len(frame)
            raise MessageTooBig(f"audio frame of {len(frame)} bytes is over the limit of "
                                f"{self._config.max_message_bytes}")
        for message in self._buffer.feed(frame):
            self._audio_started = True
            self._queued_bytes += len(message)
            await self._to_upstream.put(message)  # full queue: back-pressure on the client

    async def _on_control(self, text: str) -> None:
        """A control frame; a bad one costs an error event, never the session."""
        try:
            control = _parse_control(text, self._config.max_text_bytes)
            kind = control.get("type")
            if kind == "stop":
                await self._stop_reply()
            elif kind == "config":
                await self._reconfigure({k: v for k, v in control.items() if k != "type"})
            else:
                raise BadClientPayload(f"unknown control type {kind!r}; expected 'stop' or 'config'")
        except ClientError as exc:
            self.log.warning("client sent a bad control message: %s", exc.message)
            await self._send(error_message(exc.kind, exc.message, exc.close_code))

    async def _stop_reply(self) -> None:
        cut = self._router.cut()
        if cut:  # a reply was playing: cut it here at once, the upstream's /stop is late
            self._live_upstream.stop()
            self.log.debug("reply stopped by the client")
            for message in cut:
                await self._send(message)

    async def _reconfigure(self, config_data: dict[str, Any]) -> None:
        if self._audio_started:
            raise ClientError("config must be sent before the first audio")
        try:
            options = self._config.client_options(config_data)
        except ValueError as exc:
            raise BadClientPayload(f"bad config: {exc}") from exc
        await self._live_upstream.set_options(options)
        await self._send(_event(type="config_applied"))

    async def _send_upstream(self) -> None:
        while True:
            message = await self._to_upstream.get()
            self._queued_bytes -= len(message)
            self._in_flight_bytes += len(message)
            await self._live_upstream.send_audio(message)

    async def _read_acks(self) -> None:
        async for nbytes, ack in self._live_upstream.acks():
            self._in_flight_bytes -= nbytes
            self.stats.acks[ack.reason if ack.reason is not None else "error"] += 1
            if ack.reason == "done":
                self.stats.sent_bytes += nbytes
            elif ack.reason == "skip":
                self.stats.skipped_bytes += nbytes
            else:
                self.stats.dropped_bytes["upstream_rejected"] += nbytes
                if ack.error is not None:
                    raise _ack_error(ack.error)

    async def _pump_replies(self) -> None:
        async for item in self._live_upstream.events():
            if isinstance(item, BodyClosed):
                messages = self._router.body_closed()
            else:
                messages = self._router.route(item)
            generation = self._router.generation
            for message in messages:
                if self._router.generation != generation:
                    break  # the client stopped this reply while we were sending it
                await self._send(message)

    async def _send(self, message: ClientMessage) -> None:
        async with self._send_lock:
            await self._client.send(message)

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
        self._account_leftovers()
        if failure is not None:
            self.log.warning("ending with %s: %s", type(failure).__name__, failure.message)
            self.stats.close_code = failure.close_code
            try:
                async with asyncio.timeout(self._config.close_timeout_s):
                    await self._send(error_message(failure.kind, failure.message,
                                                   failure.close_code))
            except (ClientGone, TimeoutError):
                pass  # the client cannot hear it; the log line above has it
        if not client_left:
            self.stats.close_code = self.stats.close_code or status.WS_1000_NORMAL_CLOSURE
            async with asyncio.timeout(self._config.close_timeout_s):
                await self._client.close(self.stats.close_code, failure.message if failure else "")
        self.state = SessionState.CLOSED

    def _account_leftovers(self) -> None:
        leftover = self._buffer.clear() + self._queued_bytes
        if leftover:
            self.stats.dropped_bytes["session_end"] += leftover
        if self._in_flight_bytes:
            self.stats.dropped_bytes["unacknowledged"] += self._in_flight_bytes
        self._queued_bytes = self._in_flight_bytes = 0


def _parse_control(text: str, max_bytes: int) -> dict[str, Any]:
    if len(text) > max_bytes:
        raise BadClientPayload(f"text frame of {len(text)} characters is over {max_bytes}")
    try:
        control = json.loads(text)
    except ValueError as exc:
        raise BadClientPayload(f"text frame is not JSON: {exc}") from exc
    if not isinstance(control, dict) or not isinstance(control.get("type"), str):
        raise BadClientPayload('a control message is a JSON object with a string "type"')
    return control


def _ack_error(text: str) -> UpstreamError:
    if "uid changed" in text.lower():
        return UpstreamError("another conversation took over the upstream (UID changed in stream)")
    return UpstreamProtocolError(f"the upstream rejected an audio message: {text}")


def _event(**fields: object) -> str:
    return json.dumps(fields, separators=(",", ":"))


def _first(group: BaseExceptionGroup[Any], kind: type[_E]) -> _E:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return _first(exc, kind)
        if isinstance(exc, kind):
            return exc
    raise LookupError(kind)
