"""The ``minicpm-demo`` adapter: the upstream seam over a MiniCPM-o-Demo gateway's audio duplex.

Owns: one conversation as a client of ``/v1/realtime?mode=audio``: the queue phase at connect (a
gateway that queues the conversation keeps it, its place held: each ``session.queued`` and
``queue_update`` goes to the session's report as an :class:`~asgi_audio_proxy.events.UpstreamQueued`,
which its client hears as the proxy's own ``queued``, until ``session.queue_done``, for
``max_queue_wait_s`` at most; a full queue or no worker at all is ``UpstreamBusy``), the session
update (the conversation's options as :meth:`.DemoSettings.map_options` maps them) and its
answer, client audio sent as whole float32 appends at the model's pace with silence while the
client says nothing (:mod:`.appends`), replies through :class:`.ReplyTracker`, a stop as
``force_listen`` on the next append, the gateway's ends (``session.closed``: its time limit, a
full context, a shutdown) and errors, and ``session.close`` on the way out (a conversation still
queued is only closed: the gateway reads nothing while it queues, and drops the place of a
client gone). Decisions are the pure parts'; the two tasks here only move events. Must not: know
the client, or let a library exception out (the transport translates them).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

import httpx

from ...config import ProxyConfig, UpstreamOptions
from ...errors import SessionLimitExceeded, UpstreamError, UpstreamProtocolError, UpstreamTimeout
from ...events import AudioOutcome, UpstreamQueued
from ..base import Emit, QueueReport, UpstreamFactory
from ..realtime.settings import RealtimeSettings
from ..realtime.transport import RealtimeTransport, Transport
from .appends import AppendBuffer
from .handshake import gateway_url
from .replies import ReplyTracker
from .settings import DemoSettings
from .wire import (
    INPUT_RATE_HZ,
    Closed,
    GatewayError,
    GoingAway,
    Listening,
    QueueState,
    ServerMessage,
    SessionCreated,
    Speech,
    append_audio,
    close_session,
    ending_for,
    error_for,
    parse_server_event,
    session_update,
)

__all__ = ["DemoAdapter", "minicpm_demo_upstream"]

logger = logging.getLogger("asgi_audio_proxy.upstream")
#: what the gateway runs; it names no model or version of its own
VERSION = "minicpm-o-4.5-demo"


class DemoAdapter:
    """One conversation with a MiniCPM-o-Demo gateway.

    Args:
        url: the leased gateway (see :func:`.handshake.gateway_url` for the forms taken).
        settings: the kind's settings.
        config: the proxy's settings: ``max_buffered_s`` bounds the audio queued here.
        log: a session-tagged logger; its ``session`` id goes to the gateway as ``session_id``.
        transport: the connection (one to ``url`` by default).

    Raises:
        ValueError: ``url`` is not a URL a gateway is reached by.
    """

    def __init__(self, url: str, settings: DemoSettings, config: ProxyConfig | None = None,
                 log: logging.LoggerAdapter[logging.Logger] | None = None, *,
                 transport: Transport | None = None) -> None:
        self._settings = settings
        self._config = config or ProxyConfig()
        self._log = log or logging.LoggerAdapter(logger, {})
        session = (self._log.extra or {}).get("session")
        self.url = gateway_url(url, session if isinstance(session, str) else None)
        self._transport = transport or RealtimeTransport(
            self.url, RealtimeSettings(connect_timeout_s=settings.connect_timeout_s,
                                       close_timeout_s=settings.close_timeout_s), self._log)
        unit = settings.append_samples * 2
        self._appends = AppendBuffer(unit, settings.append_s, settings.silence_after_s,
                                     round(self._config.max_buffered_s * INPUT_RATE_HZ) * 2)
        self._fed = asyncio.Event()  # set when client audio came (an append may be due)
        self._has_room = asyncio.Event()  # set when the sender took audio out of a full buffer
        self._replies = ReplyTracker()
        self._gateway_session: str | None = None
        self._report: QueueReport | None = None
        self._place: UpstreamQueued | None = None  # while the gateway queues the conversation
        self._in_flight_bytes = 0
        self._warned: set[str] = set()
        self._is_created = self._is_ended = self._is_closed = False

    @property
    def version(self) -> str:
        return VERSION

    @property
    def input_rate_hz(self) -> int:
        return INPUT_RATE_HZ

    @property
    def reconfigurable(self) -> bool:
        """No: the gateway takes a conversation's options once, at connect."""
        return False

    @property
    def gateway_session(self) -> str | None:
        """The gateway's id for the conversation (from ``session.created``)."""
        return self._gateway_session

    def report_queue(self, report: QueueReport) -> None:
        """Call ``report`` with each place the gateway gives the conversation while it connects."""
        self._report = report

    async def connect(self, options: UpstreamOptions) -> None:
        """Open the connection, wait out the queue phase, send the session update, and wait for
        ``session.created``.

        Raises:
            UpstreamBusy: the gateway has no worker for the conversation, nor room in its queue.
            SessionLimitExceeded: the gateway queued it, and no worker was its within
                ``max_queue_wait_s``.
            UpstreamProtocolError: the gateway refused the session update.
            UpstreamTimeout, UpstreamUnavailable.
        """
        await self._transport.open()
        await self._wait_for_worker()
        await self._transport.send(session_update(self._settings.map_options(options.conversation)))
        timeout_s = self._settings.connect_timeout_s
        try:
            async with asyncio.timeout(timeout_s):
                while not self._created(parse_server_event(await self._transport.receive())):
                    pass
        except TimeoutError as exc:
            raise UpstreamTimeout(f"the gateway did not answer the session update within "
                                  f"{timeout_s} s") from exc
        self._appends.start(asyncio.get_running_loop().time())
        self._log.debug("gateway session %s ready", self._gateway_session)

    async def _wait_for_worker(self) -> None:
        """The queue phase: a gateway with a free worker says ``queue_done`` at once, one that
        says nothing for ``queue_grace_s`` is let be; one that queues the conversation is waited
        for, each place reported, up to ``max_queue_wait_s``."""
        limit_s = self._config.max_queue_wait_s
        try:
            async with asyncio.timeout(self._settings.queue_grace_s) as wait:
                while True:
                    message = parse_server_event(await self._transport.receive())
                    if isinstance(message, QueueState) and message.stage == "done":
                        break
                    if isinstance(message, QueueState):
                        if self._place is None:  # queued: the grace becomes the queue's bound
                            wait.reschedule(asyncio.get_running_loop().time() + limit_s)
                        await self._queued(message)
                    else:
                        self._fail_on(message)
        except TimeoutError as exc:
            if self._place is not None:
                raise SessionLimitExceeded(f"the gateway gave the conversation no worker within "
                                           f"{limit_s:g} s; try again later") from exc
            self._log.debug("no queue events from the gateway; sending the session update")
        if self._place is not None:
            self._log.info("the gateway gave the conversation a worker")
            self._place = None

    async def _queued(self, state: QueueState) -> None:
        """One place in the gateway's queue (an update without one keeps the last)."""
        last = self._place or UpstreamQueued(1, 0.0)
        self._place = UpstreamQueued(state.position if state.position is not None else last.position,
                                     state.eta_s if state.eta_s is not None else last.eta_s)
        if self._report is None:
            self._log.info("the gateway queued the conversation at position %d (about %.1f s)",
                           self._place.position, self._place.eta_s)
        else:
            await self._report(self._place)

    async def configure(self, options: UpstreamOptions) -> None:
        """The gateway takes its options once, at connect: later ones are logged and let be."""
        self._warn("configure", "the gateway takes a conversation's options once; an update after "
                                "it started is not sent")

    async def send_audio(self, pcm: bytes) -> None:
        while not self._appends.has_room:  # back-pressure: the session stops reading the client
            self._has_room.clear()
            await self._has_room.wait()
        self._appends.feed(pcm, asyncio.get_running_loop().time())
        self._fed.set()

    async def commit(self) -> None:
        """Nothing to send: the model ends turns itself, on what it hears."""
        self._log.debug("commit: the gateway's model takes turns by itself")

    def clear(self) -> int:
        return self._appends.clear()

    def stop(self, resend_from_ms: float | None = None) -> bool:
        """Drop the rest of the reply and ask the model to listen (``force_listen`` on the next
        append). ``resend_from_ms`` needs nothing: the model hears every byte as it comes."""
        was_speaking = self._replies.cut()
        if was_speaking:
            self._appends.force_listen()
        return was_speaking

    async def run(self, emit: Emit) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._send_upstream(emit))
            tg.create_task(self._receive_upstream(emit))

    def leftover(self) -> Mapping[str, int]:
        left = {"session_end": self._appends.clear(), "unacknowledged": self._in_flight_bytes}
        self._in_flight_bytes = 0
        return {reason: nbytes for reason, nbytes in left.items() if nbytes}

    async def aclose(self) -> None:
        """Send ``session.close`` and wait for ``session.closed`` (best effort, under
        ``close_timeout_s``), then close; idempotent. A conversation never created (still
        queued, or refused) is only closed: the gateway reads nothing before it."""
        if self._is_closed:
            return
        self._is_closed = True
        if self._is_created and not self._is_ended:
            try:
                async with asyncio.timeout(self._settings.close_timeout_s):
                    await self._transport.send(close_session())
                    while not isinstance(parse_server_event(await self._transport.receive()), Closed):
                        pass
            except (TimeoutError, UpstreamError) as exc:
                self._log.debug("the gateway did not confirm the close: %s", exc)
        await self._transport.aclose()

    def _created(self, message: ServerMessage) -> bool:
        """One event while the session update is answered: ``True`` once it is."""
        if isinstance(message, SessionCreated):
            self._gateway_session = message.session_id or None
            self._is_created = True
            return True
        if isinstance(message, GatewayError) and error_for(message) is None:
            raise UpstreamProtocolError(f"the gateway refused the session update: {message.code}: "
                                        f"{message.message}")
        self._fail_on(message)
        return False

    def _fail_on(self, message: ServerMessage) -> None:
        if isinstance(message, Closed):
            self._is_ended = True
            raise ending_for(message)
        if isinstance(message, GatewayError):
            failure = error_for(message)
            if failure is not None:
                raise failure
            self._warn(message.code, f"the gateway refused a request: {message.code}: {message.message}")
        elif not isinstance(message, QueueState):
            self._log.debug("gateway event while connecting: %s", type(message).__name__)

    async def _send_upstream(self, emit: Emit) -> None:
        loop = asyncio.get_running_loop()
        while True:
            outgoing = self._appends.take(loop.time())
            if outgoing is None:
                self._fed.clear()
                wait_s = self._appends.due_at() - loop.time()
                try:
                    async with asyncio.timeout(max(0.0, wait_s)):
                        await self._fed.wait()
                except TimeoutError:
                    pass  # the append is due: silence fills what the client did not say
                continue
            self._has_room.set()
            self._in_flight_bytes = outgoing.client_bytes
            await self._transport.send(append_audio(outgoing.pcm, force_listen=outgoing.force_listen))
            self._in_flight_bytes = 0
            if outgoing.client_bytes:
                emit(AudioOutcome(outgoing.client_bytes, "sent", "append"))

    async def _receive_upstream(self, emit: Emit) -> None:
        while True:
            message = parse_server_event(await self._transport.receive())
            if isinstance(message, Speech | Listening):
                for event in self._replies.route(message):
                    emit(event)
            elif isinstance(message, GoingAway):
                self._log.info("the gateway ends the conversation in %s ms: %s",
                               message.time_left_ms, message.reason)
            else:
                self._fail_on(message)

    def _warn(self, code: str, text: str) -> None:
        """Said once at WARNING per code, then at DEBUG."""
        level = logging.DEBUG if code in self._warned else logging.WARNING
        self._warned.add(code)
        self._log.log(level, "gateway session %s: %s", self._gateway_session, text)


def minicpm_demo_upstream(settings: DemoSettings | None = None) -> UpstreamFactory:
    """An :data:`~asgi_audio_proxy.upstreams.base.UpstreamFactory` for MiniCPM-o-Demo gateways.

    The factory raises ``ValueError`` for a leased URL a gateway is not reached by.
    """
    chosen = settings or DemoSettings()

    def factory(url: str, config: ProxyConfig, http_client: httpx.AsyncClient,
                log: logging.LoggerAdapter[logging.Logger]) -> DemoAdapter:
        return DemoAdapter(url, chosen, config, log)

    return factory
