"""The Realtime adapter: the upstream seam over a server that speaks the OpenAI Realtime protocol.

Owns: one conversation as a Realtime client: the session update and its answer at connect and
later (a later one awaited, a refusal the client's error), client audio appended as it comes
(each byte ``sent`` once its append is on the socket: the protocol acknowledges nothing), manual
turns (commit and ``response.create``), turns ended by the proxy's own detector when the
server's VAD is off, replies through :class:`.ReplyTracker`, a stop as ``response.cancel`` plus
``conversation.item.truncate`` at what the client heard, and which server errors end the
conversation. Decisions are the pure parts' (:mod:`.wire`, :mod:`.replies`, :mod:`.sendqueue`,
:mod:`.turns`); the two tasks here only move events.
Must not: know the client, or let a library exception out (the transport translates them).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

import httpx

from ...config import ProxyConfig, UpstreamOptions
from ...errors import BadClientPayload, UpstreamError, UpstreamProtocolError, UpstreamTimeout
from ...vad.batch import FrameBatcher
from ..base import Emit, UpstreamFactory
from .replies import ReplyTracker
from .sendqueue import SendQueue
from .settings import RealtimeSettings
from .transport import RealtimeTransport, Transport
from .turns import TurnDetector
from .updates import SessionUpdates
from .wire import (
    Ignored,
    ReplyPart,
    ResponseDone,
    ServerError,
    SessionInfo,
    clear_audio,
    commit_audio,
    create_response,
    error_for,
    parse_server_event,
    session_update,
)
from .writer import QueueWriter

__all__ = ["APPEND_MAX_S", "RealtimeAdapter", "realtime_upstream"]

logger = logging.getLogger("asgi_audio_proxy.upstream")
#: audio queued while the socket is busy goes out joined, up to this much per append
APPEND_MAX_S = 1.0


class RealtimeAdapter:
    """One conversation with a Realtime server.

    Args:
        url: the leased server (``ws(s)://``, or ``http(s)://`` with ``/v1/realtime`` by default).
        settings: the kind's settings (key, model, beta, rate, turn detection, voice, timeouts).
        config: the proxy's settings: ``max_buffered_s`` bounds the audio queued here, and
            ``barge_in`` tunes the detector that ends turns under ``turn_detection="proxy"``.
        log: a session-tagged logger.
        transport: the connection (a :class:`.RealtimeTransport` to ``url`` by default).

    Raises:
        ValueError: ``url`` is not a URL a Realtime server is reached by.
    """

    def __init__(self, url: str, settings: RealtimeSettings, config: ProxyConfig | None = None,
                 log: logging.LoggerAdapter[logging.Logger] | None = None, *,
                 transport: Transport | None = None) -> None:
        self._settings = settings
        self._config = config or ProxyConfig()
        self._log = log or logging.LoggerAdapter(logger, {})
        self._transport = transport or RealtimeTransport(url, settings, self._log)
        rate = settings.input_rate_hz
        self._queue = SendQueue(max_audio_bytes=round(self._config.max_buffered_s * rate) * 2,
                                max_append_bytes=round(APPEND_MAX_S * rate) * 2)
        self._writer = QueueWriter(self._queue)
        self._replies = ReplyTracker()
        self._turns: TurnDetector | None = None
        self._version = settings.model or "unknown"
        self._server_session: str | None = None
        self._warned: set[str] = set()
        self._updates = SessionUpdates()  # sent after connect, each awaiting its answer
        self._answers: dict[str, asyncio.Future[ServerError | None]] = {}
        self._voice: str | None = None  # the voice the server has, as the proxy last sent it
        self._is_open = self._is_closed = False

    @property
    def version(self) -> str:
        """The model the server says it runs (``session.model``), else the one asked for."""
        return self._version

    @property
    def input_rate_hz(self) -> int:
        return self._settings.input_rate_hz

    @property
    def reconfigurable(self) -> bool:
        """A Realtime server takes a ``session.update`` at any time in the conversation."""
        return True

    async def connect(self, options: UpstreamOptions) -> None:
        """Open the connection, send the session update, and wait for ``session.updated``.

        Raises:
            UpstreamBusy: refused for capacity (HTTP 503 or 429, or a busy ``error`` code).
            UpstreamProtocolError: the server answered the session update with an error.
            UpstreamTimeout, UpstreamUnavailable.
        """
        await self._transport.open()
        self._is_open = True
        await self._transport.send(session_update(options, self._settings))
        self._voice = self._settings.map_options(options.conversation).get("voice")
        timeout_s = self._settings.connect_timeout_s
        try:
            async with asyncio.timeout(timeout_s):
                while not self._settled(await self._transport.receive()):
                    pass
        except TimeoutError as exc:
            raise UpstreamTimeout(f"the upstream did not answer the session update within "
                                  f"{timeout_s} s") from exc
        if self._settings.turn_detection == "proxy" and self._turns is None:
            # once the server took the session (a full one costs no load); off the loop: loading
            # the detector's model takes tens of ms, and no audio flows before connect returns
            self._turns = await asyncio.to_thread(TurnDetector, self._config.voice,
                                                  self._settings.input_rate_hz)
            if self._turns.is_batchable:  # judged in the loop's batch, off the loop
                self._turns.batch_with(FrameBatcher.for_running_loop(), self._end_turn)
        self._log.debug("upstream session %s ready: model %s", self._server_session, self._version)

    async def configure(self, options: UpstreamOptions) -> None:
        """Send a session update (at any time, the first audio's before or after), in order with
        the audio, and wait for the server's answer (``connect_timeout_s`` at most).

        Raises:
            BadClientPayload: the server refused it (an ``error`` naming it): the options the
                conversation had stay, and it goes on.
            UpstreamTimeout: no answer in time.
        """
        event_id = self._updates.sent()
        answer = self._answers[event_id] = asyncio.get_running_loop().create_future()
        self._queue.put(session_update(options, self._settings, event_id, self._voice))
        self._writer.has_output.set()
        timeout_s = self._settings.connect_timeout_s
        try:
            async with asyncio.timeout(timeout_s):
                refused = await answer
        except TimeoutError as exc:
            raise UpstreamTimeout(f"the upstream did not answer a session update within "
                                  f"{timeout_s} s") from exc
        finally:
            self._updates.forget(event_id)
            del self._answers[event_id]
        if refused is None:
            self._voice = self._settings.map_options(options.conversation).get("voice", self._voice)
        else:
            self._log.info("upstream session %s refused a session update: %s", self._server_session,
                           refused.code or refused.type)
            raise BadClientPayload(f"the upstream refused these options: {refused.message}")

    async def send_audio(self, pcm: bytes) -> None:
        await self._writer.room()  # back-pressure: the session stops reading the client
        self._queue.put_audio(pcm)
        if self._turns is not None and self._turns.heard(pcm):
            self._end_turn()
        self._writer.has_output.set()

    async def commit(self) -> None:
        """The client ended its turn: commit the audio so far and ask for the reply."""
        if self._turns is not None:
            self._turns.forget()
        self._queue.put(commit_audio())
        self._queue.put(create_response())
        self._writer.has_output.set()

    def clear(self) -> int:
        dropped = self._queue.clear_audio()
        if self._turns is not None:
            self._turns.forget()
        self._queue.put(clear_audio())
        self._writer.has_output.set()
        return dropped

    def stop(self, resend_from_ms: float | None = None) -> bool:
        """Cancel the reply and truncate it where the client is (see :mod:`.replies`).

        ``resend_from_ms`` needs nothing here: the server has had every byte of the user's
        audio, the interruption included, as it came.
        """
        cut = self._replies.cut(asyncio.get_running_loop().time())
        for message in cut.messages:
            self._queue.put_urgent(message)
        if cut.messages:
            self._writer.has_output.set()
        if cut.was_playing and self._turns is not None:
            self._turns.cut()
        return cut.was_playing

    async def run(self, emit: Emit) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._send_upstream(emit))
            tg.create_task(self._receive_upstream(emit))

    def leftover(self) -> Mapping[str, int]:
        left = {"session_end": self._queue.drain_audio(), "unacknowledged": self._writer.in_flight_bytes}
        self._writer.in_flight_bytes = 0
        return {reason: nbytes for reason, nbytes in left.items() if nbytes}

    async def aclose(self) -> None:
        """Cancel a reply still coming (best effort, under ``close_timeout_s``), then close."""
        if self._is_closed:
            return
        self._is_closed = True
        if self._turns is not None:
            self._turns.close()
        cut = self._replies.cut(asyncio.get_running_loop().time())
        if cut.was_playing and self._is_open:
            try:
                async with asyncio.timeout(self._settings.close_timeout_s):
                    for message in cut.messages:
                        await self._transport.send(message)
            except (TimeoutError, UpstreamError) as exc:
                self._log.debug("the last cancel did not reach the upstream: %s", exc)
        await self._transport.aclose()

    def _settled(self, frame: str) -> bool:
        """One event while connecting: ``True`` once the session update is answered."""
        message = parse_server_event(frame, beta=self._settings.beta)
        if isinstance(message, SessionInfo):
            self._on_session(message)
            return not message.is_created
        if isinstance(message, ServerError):
            failure = error_for(message)
            if failure is not None:
                raise failure
            raise UpstreamProtocolError(f"the upstream refused the session update: {message.type} "
                                        f"{message.code or '(no code)'}: {message.message}")
        self._log.debug("upstream event before the session was ready: %s", _name(message))
        return False

    def _on_session(self, info: SessionInfo) -> None:
        self._version = info.model or self._version
        self._server_session = info.session_id or self._server_session

    def _end_turn(self) -> None:
        """Commit a turn the proxy's detector ended, once no response is in progress."""
        if self._turns is None or self._replies.is_busy or not self._turns.take_turn():
            return
        self._log.debug("end of speech: committing the turn")
        self._queue.put(commit_audio())
        self._queue.put(create_response())
        self._writer.has_output.set()

    async def _send_upstream(self, emit: Emit) -> None:
        await self._writer.run(self._transport.send, emit)

    async def _receive_upstream(self, emit: Emit) -> None:
        loop = asyncio.get_running_loop()
        beta = self._settings.beta
        while True:
            message = parse_server_event(await self._transport.receive(), beta=beta)
            if isinstance(message, ReplyPart | ResponseDone):
                for event in self._replies.route(message, loop.time()):
                    emit(event)
                    if self._turns is not None:
                        self._turns.replied(event)
                if isinstance(message, ResponseDone):
                    self._end_turn()  # one that ended while the response was in progress
            elif isinstance(message, ServerError):
                self._on_error(message)
            elif isinstance(message, SessionInfo):
                self._on_session(message)
                self._answer(self._updates.answered_by(message), None)
            elif not (isinstance(message, Ignored) and message.known):
                self._log.debug("upstream event: %s", _name(message))

    def _answer(self, event_id: str | None, refused: ServerError | None) -> bool:
        """The server answered the session update ``event_id`` (``refused``: with an error)."""
        answer = self._answers.get(event_id) if event_id is not None else None
        if answer is not None and not answer.done():
            answer.set_result(refused)
        return event_id is not None

    def _on_error(self, error: ServerError) -> None:
        failure = error_for(error)
        if failure is not None:
            raise failure
        if self._answer(self._updates.answered_by(error), error):
            return
        # the conversation goes on: said once at WARNING per code, then at DEBUG
        code = error.code or error.type
        level = logging.DEBUG if code in self._warned else logging.WARNING
        self._warned.add(code)
        self._log.log(level, "upstream session %s refused a request: %s %s: %s (param %s)",
                      self._server_session, error.type, code, error.message, error.param)


def _name(message: object) -> str:
    return message.type if isinstance(message, Ignored) else type(message).__name__


def realtime_upstream(settings: RealtimeSettings) -> UpstreamFactory:
    """An :data:`~asgi_audio_proxy.upstreams.base.UpstreamFactory` for Realtime servers, with
    ``settings`` for all of them: ``AudioProxy(config, upstream_factory=realtime_upstream(...))``.

    The factory raises ``ValueError`` for a leased URL that is not ``ws``, ``wss``, ``http`` or
    ``https`` with a host.
    """

    def factory(url: str, config: ProxyConfig, http_client: httpx.AsyncClient,
                log: logging.LoggerAdapter[logging.Logger]) -> RealtimeAdapter:
        return RealtimeAdapter(url, settings, config, log)

    return factory
