"""``ProxySession``: one proxied conversation, from accept to the last close.

Owns: the session's state enum, its tasks in one ``TaskGroup`` (client receiver, upstream
adapter, client writer, watchdog, lease watch), resampling between the dialect's rates and the
upstream's (once each way), limits, the audio ledger, the one catch-all, and teardown on every
path. It speaks only neutral :mod:`~asgi_audio_proxy.events`: the client's wire is its dialect's,
the upstream's wire its adapter's. Must not: parse or build a wire format, or outlive its
connection.
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

from ..audio.wav import CLIENT_SAMPLE_RATE_HZ
from ..config import MESSAGE_DURATION_S, ProxyConfig, UpstreamOptions
from ..dialects.base import ClientDialect, Frame
from ..dialects.connection import ClientConnection
from ..dialects.native import NativeDialect
from ..errors import (
    AudioProxyError,
    BadClientPayload,
    ClientError,
    ClientGone,
    IdleTimeout,
    MessageTooBig,
    ServerShutdown,
    UpstreamBusy,
    UpstreamError,
    UpstreamTimeout,
)
from ..events import (
    AudioIn,
    AudioOutcome,
    ClearInput,
    ClientEvent,
    CommitInput,
    ConfigApplied,
    Configure,
    DialectFrames,
    EndSession,
    ErrorEvent,
    Introduced,
    Ready,
    ReplyAudio,
    ReplyEnded,
    ReplyStarted,
    ServerEvent,
    StopReason,
    StopReply,
    UpstreamEvent,
)
from ..pacing import Pacer, RateLimit
from ..pool.lease import Lease, UpstreamLeaser
from ..upstreams.base import UpstreamAdapter
from ..upstreams.kind import UpstreamKind
from ..vad.bargein import CutReply
from .admit import ParameterCheck, admit_parameters
from .channel import ClientChannel, EventObserver
from .rates import RateBridge
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


class _ClientEnded(Exception):
    """The client ended the conversation in its dialect's words (a call's ``stop``)."""


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
    """

    def __init__(self, client: ClientConnection, config: ProxyConfig,
                 http_client: httpx.AsyncClient, *, dialect: ClientDialect | None = None,
                 config_data: Mapping[str, Any] | None = None,
                 leaser: UpstreamLeaser | None = None,
                 kind: UpstreamKind | None = None,
                 upstream: UpstreamAdapter | None = None,
                 on_end: Callable[[SessionStats], None] | None = None,
                 identity: object = None, observer: EventObserver | None = None,
                 admit: ParameterCheck | None = None) -> None:
        if upstream is None and (leaser is None or kind is None):
            raise ValueError("a session needs an upstream adapter, or a leaser (a pool) and a kind")
        self.id = uuid.uuid4().hex[:12]
        self.log = SessionLog(logger, {"session": self.id})
        self.stats = SessionStats(self.id, identity=identity)
        self._client = client
        self._config = config
        self._config_data = config_data
        self._http_client = http_client
        self._dialect: ClientDialect = dialect or NativeDialect(config.max_text_bytes)
        self._leaser = leaser
        self._kind = kind
        self._upstream = upstream
        self._lease: Lease | None = None
        self._on_end = on_end
        self._state = SessionState.CONNECTING
        # how far the client runs ahead of real time (a burst only moves when audio may go: the
        # kind's adapter paces its own sending)
        self._lead = Pacer(MESSAGE_DURATION_S, burst_s=0.0)
        self._text_rate = RateLimit(config.max_text_frames_per_s)
        self._ledger = AudioLedger(self.stats)
        self._observer = observer
        self._admit = admit
        self._to_client = ClientChannel(client, self._dialect, config.max_pending_reply_bytes,
                                        self.stats, self.log, self._on_sent)
        policy = config.voice.policy
        # the detector runs where speech cuts replies, or where the client wants speech events
        self._voice_wanted = policy == "voice" or (policy != "off" and self._dialect.wants_speech_events)
        self._voice: VoiceWatch | None = None
        self._shutdown = asyncio.Event()
        self._rates = RateBridge()
        self._reply_playing = False
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
            self._stop_reply(reason)

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
        except* _ClientEnded:
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
            self._voice = await asyncio.to_thread(VoiceWatch, self._config.voice)
        upstream = await self._open_upstream(options)
        self.log.debug("upstream %s, version %s", self._lease.url if self._lease else "given",
                       upstream.version)
        await self._to_client.send_now(Ready(self.id, upstream.version))
        self.state = SessionState.STREAMING
        for frame in self._lease.held_frames if self._lease else ():
            await self._on_frame(frame)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._receive_from_client())
            tg.create_task(upstream.run(self._on_upstream))
            tg.create_task(self._to_client.write())
            tg.create_task(watch_session(self._config, self._shutdown, lambda: self._last_activity))
            if self._lease is not None:
                tg.create_task(self._watch_lease(self._lease))

    async def _open_upstream(self, options: UpstreamOptions) -> UpstreamAdapter:
        """Lease a server and open the conversation on it; a server that refuses it as full
        sends the session back to the head of the queue (``queued``), with what it held."""
        held: list[bytes | str] = []
        again, given = False, self._upstream is not None
        while True:
            if self._leaser is not None:
                self._lease = await self._leaser.acquire(self.id, self._client, self._to_client.send_now,
                                                         again=again)
                self._lease.held_frames = held + self._lease.held_frames
            if self._upstream is None:
                assert self._lease is not None  # an upstream, or a leaser and a kind: see __init__
                kind = self._lease.kind or self._kind
                assert kind is not None
                self._upstream = kind.factory(self._lease.url, self._config, self._http_client, self.log)
            deadline_s = 3 * self._config.connect_timeout_s  # its calls, each under its own
            try:
                async with asyncio.timeout(deadline_s):
                    await self._upstream.connect(options)
                return self._upstream
            except TimeoutError as exc:  # ours, not a library's: the adapter translates those
                raise UpstreamTimeout(f"the upstream did not open the conversation within "
                                      f"{deadline_s:g} s") from exc
            except UpstreamBusy as busy:
                if self._lease is None or given:
                    raise
                self.log.info("upstream %s is full (%s); waiting again", self._lease.url, busy.message)
                upstream, self._upstream, lease, self._lease = self._upstream, None, self._lease, None
                held, again = lease.held_frames, True
                await upstream.aclose()
                await lease.release(busy=True)

    async def _receive_from_client(self) -> None:
        receive, upstream = self._client.receive, self._live_upstream
        max_bytes, pcm_rate = self._config.max_message_bytes, self._dialect.binary_pcm_rate_hz
        while True:
            frame = await receive()
            if pcm_rate is not None and type(frame) is bytes and len(frame) <= max_bytes:
                # the hot path, 50 frames a second: bare PCM, no event made unless observed
                if self._observer is not None:
                    self._observer(AudioIn(frame, pcm_rate, len(frame)))
                await self._on_audio(frame, pcm_rate, upstream)
            else:
                await self._on_frame(frame)

    async def _on_frame(self, frame: Frame) -> None:
        if isinstance(frame, bytes) and len(frame) > self._config.max_message_bytes:
            self._ledger.received(len(frame))
            self._ledger.dropped("oversize", len(frame))
            raise MessageTooBig(f"audio frame of {len(frame)} bytes is over the limit of "
                                f"{self._config.max_message_bytes}")
        try:
            events = self._dialect.receive(frame)
        except ClientError as exc:
            self._bad_frame(exc)
            return
        await self._on_events(events)

    def _bad_frame(self, exc: ClientError) -> None:
        """A frame the dialect could not take costs an error event, never the session."""
        self._check_control_rate()
        self.log.warning("client sent a bad message: %s", exc.message)
        self._to_client.emit(ErrorEvent(exc.kind, exc.message, exc.close_code))

    async def _on_events(self, events: list[ClientEvent]) -> None:
        if events and not any(isinstance(event, AudioIn) for event in events):
            self._check_control_rate()  # controls are rare; bookkeeping frames (echoed marks) free
        for event in events:
            await self._on_client_event(event)

    def _check_control_rate(self) -> None:
        if not self._text_rate.allow(asyncio.get_running_loop().time()):
            raise ClientError(f"more than {self._config.max_text_frames_per_s:g} control "
                              "messages per second")

    async def _on_client_event(self, event: ClientEvent) -> None:
        upstream = self._live_upstream
        if self._observer is not None:
            self._observer(event)
        match event:
            case AudioIn(pcm=pcm, rate_hz=rate_hz):
                await self._on_audio(pcm, rate_hz, upstream)
            case StopReply(reason=reason):
                self._stop_reply(reason)
            case Configure(options=options, acknowledge=acknowledge):
                try:
                    await self._reconfigure(options, upstream)
                except ClientError as exc:
                    self.log.warning("client sent a bad config: %s", exc.message)
                    self._to_client.emit(ErrorEvent(exc.kind, exc.message, exc.close_code))
                    return
                if acknowledge:
                    self._to_client.emit(ConfigApplied())
            case CommitInput():
                await upstream.commit()
            case ClearInput():
                self._ledger.dropped("cleared", upstream.clear())
            case DialectFrames():
                self._to_client.emit(event)
            case EndSession():
                raise _ClientEnded
            case Introduced(parameters=parameters) if self._admit is not None:
                self.stats.identity = await admit_parameters(parameters, self.stats.identity,
                                                             self._admit)
                self.log.info("admitted: identity %s", self.stats.identity)

    async def _on_audio(self, pcm: bytes, rate_hz: int, upstream: UpstreamAdapter) -> None:
        now = asyncio.get_running_loop().time()
        rate = upstream.input_rate_hz
        if rate_hz != rate:
            pcm = self._rates.to_upstream(pcm, rate_hz, rate)
        self._ledger.received(len(pcm))
        self._last_activity = now
        self._lead.received(len(pcm) * CLIENT_SAMPLE_RATE_HZ // rate, now)
        lead_s = self._lead.lead_s(now)
        if lead_s > self._config.max_lead_s:
            self._ledger.dropped("too_fast", len(pcm))
            raise ClientError(f"audio is arriving {lead_s:.1f} s ahead of real time (the limit is "
                              f"{self._config.max_lead_s} s): stream at real-time pace")
        if self._voice is not None:
            self._hear(self._voice, pcm, rate)
        await upstream.send_audio(pcm)  # a full buffer: back-pressure on the client

    def _hear(self, voice: VoiceWatch, pcm: bytes, rate_hz: int) -> None:
        for heard in voice.heard(pcm, rate_hz):
            if isinstance(heard, CutReply):  # voice barge-in: the user spoke over the reply
                self._stop_reply("voice", resend_from_ms=heard.audio_start_ms)
            else:
                self._to_client.emit(heard)

    def _stop_reply(self, reason: StopReason, resend_from_ms: float | None = None) -> None:
        ending = ReplyEnded("stopped", stopped_by=reason)
        if not self._live_upstream.stop(resend_from_ms):
            # the model has finished it, but a paced client may still be playing its queued audio
            if self._to_client.cut_queued_reply(ending):
                self.log.debug("queued reply stopped (%s)", reason)
            return  # else nothing plays: nothing to stop, and a /stop now would kill the next one
        self._to_client.drop_audio()
        self._rates.drop_reply()
        self._reply_playing = False
        self.stats.replies += 1
        self.log.debug("reply stopped (%s)", reason)
        self._to_client.emit(ending)

    async def _reconfigure(self, config_data: Mapping[str, Any], upstream: UpstreamAdapter) -> None:
        if self.stats.received_bytes:
            raise ClientError("config must be sent before the first audio")
        try:
            options = self._config.client_options(config_data)
        except ValueError as exc:
            raise BadClientPayload(f"bad config: {exc}") from exc
        await upstream.configure(options)

    def _on_upstream(self, event: UpstreamEvent) -> None:
        """An upstream event, from the adapter's tasks: to the ledger, or on to the client."""
        if isinstance(event, AudioOutcome):
            self._ledger.outcome(event)
            return
        self._last_activity = asyncio.get_running_loop().time()
        if isinstance(event, ReplyStarted):
            self._reply_playing = True
        elif isinstance(event, ReplyAudio):
            self._emit_audio(self._rates.reply(event, self._dialect.output_rate_hz))
            return
        elif isinstance(event, ReplyEnded):
            self._emit_audio(self._rates.end_reply())
            self._reply_playing = False
            self.stats.replies += 1
        self._to_client.emit(event)

    def _emit_audio(self, pieces: list[ReplyAudio]) -> None:
        for audio in pieces:
            self.stats.reply_audio_bytes += len(audio.pcm)
            self._to_client.emit(audio)

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

    @property
    def _live_upstream(self) -> UpstreamAdapter:
        if self._upstream is None:
            raise RuntimeError(f"no upstream in state {self._state.value}")
        return self._upstream

    async def _teardown(self, failure: AudioProxyError | None, client_left: bool) -> None:
        self.state = SessionState.CLOSING
        if self._reply_playing:  # cut by the end: it still counts as a reply the client had
            self.stats.replies += 1
        if self._upstream is not None:
            await self._upstream.aclose()
            self._ledger.settle(self._upstream.leftover())
        if self._lease is not None:
            await self._lease.release(failed=isinstance(failure, UpstreamError))
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
