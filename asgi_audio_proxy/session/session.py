"""``ProxySession``: one proxied conversation, from accept to the last close.

Owns: the session's state enum, its tasks in one ``TaskGroup`` (client receiver, upstream
adapter, client writer, watchdog, lease watch), the wiring of its parts (the client's way in,
:mod:`.inbound`; the reply path, :mod:`.replies`; the way to the client, :mod:`.channel`; the
upstream and its lease, :mod:`.link`), the one catch-all, and teardown on every path. It
speaks only neutral :mod:`~asgi_audio_proxy.events`: the client's wire is its dialect's, the
upstream's wire its adapter's. Must not: parse or build a wire format, act on a client event
or a reply itself (its parts do), or outlive its connection.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import uuid
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import httpx
from starlette import status

from ..config import MESSAGE_DURATION_S, ProxyConfig
from ..dialects.base import ClientDialect
from ..dialects.connection import ClientConnection
from ..dialects.native import NativeDialect
from ..errors import AudioProxyError, ClientError, ClientGone, IdleTimeout, ServerShutdown, UpstreamError
from ..events import (
    AudioOutcome,
    ClientEvent,
    Ready,
    ServerEvent,
    SpeechStarted,
    SpeechStopped,
    StopReason,
    UpstreamEvent,
)
from ..pacing import Pacer
from ..pool.lease import Lease, UpstreamLeaser
from ..upstreams.base import TurnOwner, UpstreamAdapter
from ..upstreams.kind import UpstreamKind
from .admit import ParameterCheck
from .channel import ClientChannel, EventObserver
from .inbound import ClientEnded, ClientInbound
from .link import UpstreamLink
from .rates import RateBridge
from .replies import ReplyPath
from .resumable import ResumableClient
from .stats import AudioLedger, SessionLog, SessionStats
from .voice import VoiceWatch
from .watch import watch_session

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
        dialect: the client's wire format (the native protocol by default).
        config_data: the caller's camelCase options (``assistantPrompt``, ``vadThreshold``...).
        leaser: hands out upstreams, one conversation each (a pool); required unless
            ``upstream`` is given.
        kind: the kind of model server leased upstreams are, for those whose lease does not
            name one (a mixed pool's does); its factory makes the conversation's adapter.
        upstream: an adapter ready to use instead of one from a kind (tests, custom wiring);
            with a ``leaser`` too, the lease is still taken and watched.
        on_end: called with the final :class:`SessionStats`.
        identity: who the client is (from admission); kept on the stats and in the logs.
        observer: told of every event received from the client and sent to it (metrics).
        admit: checks what the client says after the handshake (a call's ``customParameters``);
            a refusal ends the session with its close code.
        resume: ``client`` (or what it wraps) when it may be resumed after a cut: ``ready``
            then carries its first resume token.
    """

    def __init__(self, client: ClientConnection, config: ProxyConfig,
                 http_client: httpx.AsyncClient, *, dialect: ClientDialect | None = None,
                 config_data: Mapping[str, Any] | None = None,
                 leaser: UpstreamLeaser | None = None,
                 kind: UpstreamKind | None = None,
                 upstream: UpstreamAdapter | None = None,
                 on_end: Callable[[SessionStats], None] | None = None,
                 identity: object = None, observer: EventObserver | None = None,
                 admit: ParameterCheck | None = None,
                 resume: ResumableClient | None = None) -> None:
        if upstream is None and (leaser is None or kind is None):
            raise ValueError("a session needs an upstream adapter, or a leaser (a pool) and a kind")
        self.id = uuid.uuid4().hex[:12]
        self.log = SessionLog(logger, {"session": self.id})
        self.stats = SessionStats(self.id, identity=identity)
        self._client = client
        self._resume = resume
        self._config = config
        self._config_data = config_data
        self._dialect: ClientDialect = dialect or NativeDialect(config.max_text_bytes)
        self._on_end = on_end
        self._state = SessionState.CONNECTING
        # how far the client runs ahead of real time (a burst only moves when audio may go: the
        # kind's adapter paces its own sending)
        self._lead = Pacer(MESSAGE_DURATION_S, burst_s=0.0)
        self._ledger = AudioLedger(self.stats)
        self._observer = observer
        self._to_client = ClientChannel(client, self._dialect, config.max_pending_reply_bytes,
                                        self.stats, self.log, self._on_sent)
        self._link = UpstreamLink(self.id, client, self._to_client.send_now, config, http_client,
                                  self.log, leaser=leaser, kind=kind, upstream=upstream)
        rates = RateBridge()
        self._replies = ReplyPath(self._to_client, self._dialect, rates, self.stats, self.log)
        self._inbound = ClientInbound(client, config, self._dialect, self._live_upstream, self._lead,
                                      rates, self._to_client, self._replies, self._ledger, self.log,
                                      observer=observer, admit=admit, touch=self._touch)
        policy = config.voice.policy
        # the detector runs where speech cuts replies, or where the client wants speech events
        self._voice_wanted = policy == "voice" or (policy != "off" and self._dialect.wants_speech_events)
        self._voice: VoiceWatch | None = None
        self._shutdown = asyncio.Event()
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

    def stop_reply(self, reason: StopReason = "client") -> None:
        """Cut the reply being played at once, as the client's own stop does (an app-level call)."""
        if self._state is SessionState.STREAMING:
            self._inbound.stop_reply(reason)

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
        except* ClientEnded:
            self.log.debug("the client ended the conversation")
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
        await self._client.accept(self._dialect.subprotocol)
        self._lead.start(asyncio.get_running_loop().time())  # real time runs from the handshake
        self.log.info("open: identity %s, dialect %s", self.stats.identity, self._dialect.name)
        try:
            options = self._config.client_options(self._config_data)
        except ValueError as exc:
            raise ClientError(f"bad config: {exc}") from exc
        if self._voice_wanted:  # loading the detector's model takes tens of ms: off the loop
            self._voice = self._inbound.voice = await asyncio.to_thread(VoiceWatch, self._config.voice)
        upstream = await self._link.open(options)
        lease = self._link.lease
        self.log.debug("upstream %s, version %s", lease.url if lease else "given", upstream.version)
        if isinstance(upstream, TurnOwner) and upstream.owns_turns and self._voice is not None:
            self._quiet_voice()
        token = self._resume.issue(self.id) if self._resume is not None else None
        await self._to_client.send_now(Ready(self.id, upstream.version, token))
        self.state = SessionState.STREAMING
        for frame in self._link.held_frames:  # sent while it waited, in a queue or the upstream's
            await self._inbound.on_frame(frame)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._inbound.receive())
            tg.create_task(upstream.run(self._on_upstream))
            tg.create_task(self._to_client.write())
            tg.create_task(watch_session(self._config, self._shutdown, lambda: self._last_activity))
            if lease is not None:
                tg.create_task(self._watch_lease(lease))

    def _on_upstream(self, event: UpstreamEvent) -> None:
        """An upstream event, from the adapter's tasks: to the ledger, or on to the client."""
        if isinstance(event, AudioOutcome):
            self._ledger.outcome(event)
            return
        if isinstance(event, SpeechStarted | SpeechStopped):  # the model's own turns
            if self._voice_wanted:  # as the detector's would be: where the client wants them
                self._to_client.emit(event)
            return
        self._last_activity = asyncio.get_running_loop().time()
        self._replies.on_upstream(event)

    def _quiet_voice(self) -> None:
        """The upstream tells the client's turns: the detector tells none (under voice barge-in
        it still cuts replies the user speaks over; else it was there for them alone: it goes)."""
        if self._config.voice.policy == "voice" and self._voice is not None:
            self._voice.tells_speech = False
        else:
            self._voice = self._inbound.voice = None

    def _touch(self, now: float) -> None:
        """Audio came from the client at ``now`` (the watchdog's idle limit runs from it)."""
        self._last_activity = now

    def _on_sent(self, event: ClientEvent | ServerEvent) -> None:
        """An event left for the client: metrics, and the voice detector's echo reference."""
        if self._observer is not None:
            self._observer(event)
        if self._voice is not None and not isinstance(event, ClientEvent):
            self._voice.sent(event)

    async def _watch_lease(self, lease: Lease) -> None:
        """A lost lease means the upstream may be handed to someone else: end at once."""
        await lease.lost.wait()
        raise UpstreamError(f"the lease on {lease.url} was lost; the conversation cannot go on")

    def _live_upstream(self) -> UpstreamAdapter:
        if self._link.adapter is None:
            raise RuntimeError(f"no upstream in state {self._state.value}")
        return self._link.adapter

    async def _teardown(self, failure: AudioProxyError | None, client_left: bool) -> None:
        self.state = SessionState.CLOSING
        self._inbound.close()  # the voice detector leaves its batch: no decision comes after this
        self._replies.close()
        if self._resume is not None:
            self._resume.end()
            self.stats.resumes = self._resume.resumes
            self.stats.reply_audio_dropped_bytes += self._resume.dropped_reply_bytes
            if self._resume.expired:
                self.stats.end_reason = f"not resumed within {self._resume.grace_s:g} s of a cut"
        self._ledger.settle(await self._link.close_adapter())
        await self._link.release(failed=isinstance(failure, UpstreamError))
        if failure is not None:
            level = logging.INFO if isinstance(failure, IdleTimeout | ServerShutdown) else logging.WARNING
            self.log.log(level, "ending with %s: %s", type(failure).__name__, failure.message)
            self.stats.close_code = failure.close_code
        if not client_left:
            code = self.stats.close_code = self.stats.close_code or status.WS_1000_NORMAL_CLOSURE
            await self._to_client.goodbye(failure, code, self._config.close_timeout_s)
        if self._resume is not None:
            self._resume.release()
        self.state = SessionState.CLOSED


def _first(group: BaseExceptionGroup[Any], kind: type[_E]) -> _E:
    """The first exception an ``except*`` clause caught (its group holds only ``kind``)."""
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    assert isinstance(exc, kind)
    return exc
