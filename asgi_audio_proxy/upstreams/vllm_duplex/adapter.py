"""The vLLM-Omni duplex adapter: the upstream seam over MiniCPM-o 4.5 served full duplex.

Owns: one conversation as a duplex client: the session update with the reference voice and its
``session.created``; client audio appended as it comes, and silence while the client sends none
but the model needs input (a reply plays, or the turn's end must be heard: it speaks only as 1 s
units of input arrive); the model's own turns (its replies through :class:`.DuplexPlayback`); a
stop as ``response.cancel``, a voice barge-in as ``barge_in``, each with ``playback.ack`` at what
the client heard; the user's turns as the model takes them (:class:`.ModelTurns`: speech
started when the server hears it, stopped when the model speaks), emitted as the neutral speech
events, so the session's own detector tells none (:attr:`DuplexAdapter.owns_turns`);
``session.heartbeat``, ``session.event_ack`` and the silence as :class:`.DuplexUpkeep` owes them;
a dropped socket resumed with
``session.resume`` on a new one (the journal's replay read past what already came); and
``session.close`` on every way out. Decisions are the pure parts'; the tasks here move events.
Must not: know the client, or let a library exception out (the transport translates them).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

import httpx

from ...config import ProxyConfig, UpstreamOptions
from ...errors import (
    UpstreamError,
    UpstreamProtocolError,
    UpstreamSessionLimit,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from ...events import AudioOutcome
from ..base import Emit, UpstreamFactory
from ..realtime.sendqueue import SendQueue
from ..realtime.wire import ReplyPart, ResponseDone, ServerError, clear_audio, commit_audio, error_for
from ..realtime.writer import QueueWriter
from .link import DuplexLink
from .playback import DuplexPlayback
from .settings import DuplexSettings
from .turns import ModelTurns
from .upkeep import DuplexUpkeep
from .wire import (
    INPUT_RATE_HZ,
    Decision,
    DuplexSession,
    Overlap,
    SessionEnded,
    instructions_update,
    session_close,
    session_update,
)

__all__ = ["APPEND_MAX_S", "TICK_S", "DuplexAdapter", "duplex_upstream"]

logger = logging.getLogger("asgi_audio_proxy.upstream")
#: how often the adapter looks at the clock: silence owed, acks due, heartbeats
TICK_S = 0.1
#: audio queued while the socket is busy goes out joined, up to this much per append
APPEND_MAX_S = 1.0


class DuplexAdapter:
    """One conversation with a vLLM-Omni duplex server.

    Args:
        url: the leased server (``ws(s)://host:port/v1/realtime``, or ``http(s)://host:port``).
        settings: the kind's settings (model, voice, heartbeat, timeouts).
        config: the proxy's settings: ``max_buffered_s`` bounds the audio queued here.
        log: a session-tagged logger.
        link: the connection and its resume (a :class:`.DuplexLink` to ``url`` by default).
    """

    def __init__(self, url: str, settings: DuplexSettings, config: ProxyConfig | None = None,
                 log: logging.LoggerAdapter[logging.Logger] | None = None, *,
                 link: DuplexLink | None = None) -> None:
        self._settings = settings
        self._log = log or logging.LoggerAdapter(logger, {})
        self._link = link or DuplexLink(url, settings, self._log)
        max_buffered_s = (config or ProxyConfig()).max_buffered_s
        self._queue = SendQueue(max_audio_bytes=round(max_buffered_s * INPUT_RATE_HZ) * 2,
                                max_append_bytes=round(APPEND_MAX_S * INPUT_RATE_HZ) * 2)
        self._writer = QueueWriter(self._queue)
        self._playback = DuplexPlayback()
        self._turns = ModelTurns(INPUT_RATE_HZ)
        self._version = settings.model
        self._upkeep = DuplexUpkeep(settings)
        self._warned: set[str] = set()
        self._is_closed = False

    @property
    def version(self) -> str:
        """The model the server says it runs."""
        return self._version

    @property
    def input_rate_hz(self) -> int:
        return INPUT_RATE_HZ

    @property
    def reconfigurable(self) -> bool:
        """No: the server ignores instructions sent once its session has started."""
        return False

    @property
    def owns_turns(self) -> bool:
        """The model decides when the user's turn ends: this adapter emits ``SpeechStarted`` and
        ``SpeechStopped``, and the session's detector must not tell them again."""
        return True

    async def connect(self, options: UpstreamOptions) -> None:
        """Open the session: the update with the voice, then ``session.created`` and ``.updated``.

        Raises:
            UpstreamBusy: the server is full (``resource_exhausted``, HTTP 503 or 429, close 1013).
            UpstreamProtocolError: the server refused the session (``ref_audio_required``...).
            UpstreamTimeout, UpstreamUnavailable.
        """
        await self._link.open()
        await self._link.send(session_update(options, self._settings))
        timeout_s = self._settings.connect_timeout_s
        try:
            async with asyncio.timeout(timeout_s):
                while not self._settled(await self._link.receive()):
                    pass
        except TimeoutError as exc:
            raise UpstreamTimeout(f"the upstream did not answer the session update within "
                                  f"{timeout_s} s") from exc
        self._log.debug("duplex session %s ready: model %s", self._link.session_id, self._version)

    async def configure(self, options: UpstreamOptions) -> None:
        self._queue.put(instructions_update(options))
        self._writer.has_output.set()

    async def send_audio(self, pcm: bytes) -> None:
        await self._writer.room()  # back-pressure: the session stops reading the client
        self._upkeep.heard(len(pcm), asyncio.get_running_loop().time())
        self._queue.put_audio(pcm)
        self._turns.heard(len(pcm))
        self._writer.has_output.set()

    async def commit(self) -> None:
        """Manual turns: the utterance is over; the model decides whether and what to answer."""
        self._queue.put(commit_audio())
        self._writer.has_output.set()

    def clear(self) -> int:
        dropped = self._queue.clear_audio()
        self._turns.forget()
        self._queue.put(clear_audio())
        self._writer.has_output.set()
        return dropped

    def stop(self, resend_from_ms: float | None = None) -> bool:
        """Cut the reply: ``barge_in`` when the client's voice did (``resend_from_ms`` given: the
        server has heard every byte of it already), else ``response.cancel``; then
        ``playback.ack`` at what the client heard."""
        now = asyncio.get_running_loop().time()
        was_playing, messages = self._playback.cut(now, by_voice=resend_from_ms is not None)
        if was_playing and resend_from_ms is not None:
            self._turns.interrupted(resend_from_ms)
        for message in messages:
            self._queue.put_urgent(message)
        if messages:
            self._writer.has_output.set()
        return was_playing

    async def run(self, emit: Emit) -> None:
        """Move audio and replies; a dropped socket is resumed, and the tasks start again on it."""
        while True:
            dropped: UpstreamUnavailable | None = None
            try:
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(self._send_upstream(emit))
                    tg.create_task(self._receive_upstream(emit))
                    tg.create_task(self._tick())
            except* UpstreamUnavailable as group:
                dropped = next(e for e in group.exceptions if isinstance(e, UpstreamUnavailable))
            if dropped is None:  # pragma: no cover - the tasks only end by raising
                return
            if self._writer.in_flight_bytes:  # lost with the socket: the model never heard it
                emit(AudioOutcome(self._writer.in_flight_bytes, "skipped", "connection_lost"))
                self._writer.in_flight_bytes = 0
            await self._link.resume(dropped)

    def leftover(self) -> Mapping[str, int]:
        left = {"session_end": self._queue.drain_audio(), "unacknowledged": self._writer.in_flight_bytes}
        self._writer.in_flight_bytes = 0
        return {reason: nbytes for reason, nbytes in left.items() if nbytes}

    async def aclose(self) -> None:
        """What was played of the last reply, ``session.close`` and its answer (under
        ``close_timeout_s``), then the socket; idempotent."""
        if self._is_closed:
            return
        self._is_closed = True
        if self._link.is_open:
            try:
                async with asyncio.timeout(self._settings.close_timeout_s):
                    for ack in self._playback.settle(asyncio.get_running_loop().time()):
                        await self._link.send(ack)
                    await self._link.send(session_close())
                    while not isinstance(self._link.parse(await self._link.receive()), SessionEnded):
                        pass
            except (TimeoutError, UpstreamError) as exc:
                self._log.debug("the session close was not answered: %s", exc)
        await self._link.aclose()

    def _settled(self, frame: str) -> bool:
        """One event while connecting: ``True`` once the session is open and updated."""
        message = self._link.parse(frame)
        if isinstance(message, DuplexSession):
            self._version = message.model or self._version
            return not message.is_created
        if isinstance(message, ServerError):
            failure = error_for(message)
            if failure is not None:
                raise failure
            raise UpstreamProtocolError(f"the upstream refused the session: {message.code or '(no code)'}: "
                                        f"{message.message}")
        if isinstance(message, SessionEnded):
            raise UpstreamUnavailable(f"the upstream ended the session as it opened: {message.type}")
        return False

    async def _send_upstream(self, emit: Emit) -> None:
        await self._writer.run(self._link.send, emit)

    async def _receive_upstream(self, emit: Emit) -> None:
        loop = asyncio.get_running_loop()
        while True:
            message = self._link.parse(await self._link.receive())
            if message is None:
                continue  # replayed, and already read before the drop
            for turn in self._turns.route(message):  # a turn's end goes before the reply to it
                emit(turn)
            if isinstance(message, ReplyPart | ResponseDone):
                for event in self._playback.route(message, loop.time()):
                    emit(event)
            elif isinstance(message, ServerError):
                self._on_error(message)
            elif isinstance(message, SessionEnded):
                said = f"the upstream ended the session: {message.type} ({message.reason or 'no reason'})"
                if message.type == "session.replaced":  # another socket took it: not ours to resume
                    raise UpstreamError(said)
                raise UpstreamSessionLimit(said)  # this conversation is over, the server is fine
            elif isinstance(message, Decision | Overlap):
                self._log.debug("the model or the server decided: %s", message)

    async def _tick(self) -> None:
        """Silence owed, playback acks, event acks and heartbeats, on the loop's clock."""
        loop = asyncio.get_running_loop()
        self._upkeep.start(loop.time())
        while True:
            await asyncio.sleep(TICK_S)
            now = loop.time()
            silence = self._upkeep.silence_due(now, is_reply_busy=self._playback.is_busy)
            if silence is not None:
                self._queue.put(silence)
            urgent = self._playback.acks_due(now) + self._upkeep.urgent_due(now, self._link.last_seq)
            for message in urgent:
                self._queue.put_urgent(message)
            if self._queue:
                self._writer.has_output.set()

    def _on_error(self, error: ServerError) -> None:
        failure = error_for(error)
        if failure is not None:
            raise failure
        code = error.code or error.type
        level = logging.DEBUG if code in self._warned else logging.WARNING
        self._warned.add(code)
        self._log.log(level, "duplex session %s refused a request: %s %s: %s", self._link.session_id,
                      error.type, code, error.message)


def duplex_upstream(settings: DuplexSettings) -> UpstreamFactory:
    """An :data:`~asgi_audio_proxy.upstreams.base.UpstreamFactory` for vLLM-Omni duplex servers."""

    def factory(url: str, config: ProxyConfig, http_client: httpx.AsyncClient,
                log: logging.LoggerAdapter[logging.Logger]) -> DuplexAdapter:
        return DuplexAdapter(url, settings, config, log)

    return factory

