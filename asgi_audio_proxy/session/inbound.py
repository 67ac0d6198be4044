"""The client's way in: its frames read, checked against the limits, and acted on.

Owns: the receiver loop (bare PCM frames on the hot path, every other frame through the
dialect), the limits on what comes in (frame size, control rate, audio ahead of real time), the
first of the two resamplings (client rate to the upstream's), the voice detector's hearing of
client audio, and what each client event does (audio, stop, configure, commit, clear, the
dialect's own answers, end, introduction), options after the first audio going to an upstream
that takes them then and kept as they are otherwise (``ConfigKept``). A bad frame costs one
error event, never the session. The voice detector's decisions come from its loop's batch, off
the receiver's path; a failure acting on one (a client too slow for its speech event) is raised
by the receiver at the next frame, so it ends the session as its own would. Must not: write to
the client other than by queueing events, or catch what ends the session (the session's one
catch-all does).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from ..audio.wav import CLIENT_SAMPLE_RATE_HZ
from ..config import ProxyConfig
from ..dialects.base import ClientDialect, Frame
from ..dialects.connection import ClientConnection
from ..errors import AudioProxyError, BadClientPayload, ClientError, MessageTooBig
from ..events import (
    AudioIn,
    ClearInput,
    ClientEvent,
    CommitInput,
    ConfigApplied,
    ConfigKept,
    Configure,
    DialectFrames,
    EndSession,
    ErrorEvent,
    Introduced,
    StopReason,
    StopReply,
)
from ..pacing import Pacer, RateLimit
from ..upstreams.base import UpstreamAdapter, takes_options_mid_call
from ..vad.bargein import CutReply
from ..vad.batch import FrameBatcher
from .admit import ParameterCheck, admit_parameters
from .channel import ClientChannel, EventObserver
from .rates import RateBridge
from .replies import ReplyPath
from .stats import AudioLedger, SessionStats
from .voice import Heard, VoiceWatch

__all__ = ["ClientEnded", "ClientInbound"]

_KEPT_REASON = "this upstream takes options when the conversation opens only"


class ClientEnded(Exception):
    """The client ended the conversation in its dialect's words (a call's ``stop``)."""


class ClientInbound:
    """What one session's client sends, on its way to the upstream.

    Args:
        client: the connection.
        config: the proxy's settings (the limits).
        dialect: the client's wire format.
        upstream: the session's live adapter (raises before it is open).
        lead: how far the client runs ahead of real time (started by the session).
        rates: the session's resamplers (client audio's is used here).
        to_client: where answers (errors, acknowledgements) are queued.
        replies: the reply path, which a stop goes through.
        ledger: where every byte of client audio is counted.
        log: the session's logger.
        observer: told of every event received from the client (metrics).
        admit: the post-handshake hook, run on the client's introduction.
        touch: told the loop's time whenever audio arrives (the idle limit).
    """

    def __init__(self, client: ClientConnection, config: ProxyConfig, dialect: ClientDialect,
                 upstream: Callable[[], UpstreamAdapter], lead: Pacer, rates: RateBridge,
                 to_client: ClientChannel,
                 replies: ReplyPath, ledger: AudioLedger, log: logging.LoggerAdapter[logging.Logger], *,
                 observer: EventObserver | None, admit: ParameterCheck | None,
                 touch: Callable[[float], None]) -> None:
        self._client = client
        self._config = config
        self._dialect = dialect
        self._upstream = upstream
        self._lead = lead
        self._rates = rates
        self._to_client = to_client
        self._replies = replies
        self._ledger = ledger
        self._stats: SessionStats = ledger.stats
        self._log = log
        self._observer = observer
        self._admit = admit
        self._touch = touch
        self._text_rate = RateLimit(config.max_text_frames_per_s)
        self._voice: VoiceWatch | None = None
        self._voice_cuts = config.voice.policy == "voice"  # speech cuts replies whatever the client says
        self._voice_failure: AudioProxyError | None = None
        self._clock: Callable[[], float] | None = None  # the loop's: asyncio.get_running_loop()
        # costs a getpid() system call each time, and audio comes 50 times a second

    @property
    def voice(self) -> VoiceWatch | None:
        """The voice detector, once the session has loaded it (off the loop)."""
        return self._voice

    @voice.setter
    def voice(self, watch: VoiceWatch | None) -> None:
        """Set on the loop, before any audio: a Silero detector joins the loop's batch."""
        if self._voice is not None and self._voice is not watch:
            self._voice.close()
        self._voice = watch
        if watch is not None and watch.is_batchable:
            watch.batch_with(FrameBatcher.for_running_loop(), self._act_on)

    def close(self) -> None:
        """The session is ending: the voice detector leaves its batch (nothing heard after this)."""
        if self._voice is not None:
            self._voice.close()

    async def receive(self) -> None:
        """The receiver task: reads the client until it leaves (``ClientGone``) or breaks a limit."""
        receive, upstream = self._client.receive, self._upstream()
        max_bytes, pcm_rate = self._config.max_message_bytes, self._dialect.binary_pcm_rate_hz
        while True:
            frame = await receive()
            if self._voice_failure is not None:
                raise self._voice_failure
            if pcm_rate is not None and type(frame) is bytes and len(frame) <= max_bytes:
                # the hot path, 50 frames a second: bare PCM, no event made unless observed
                if self._observer is not None:
                    self._observer(AudioIn(frame, pcm_rate, len(frame)))
                await self._on_audio(frame, pcm_rate, upstream)
            else:
                await self.on_frame(frame)

    async def on_frame(self, frame: Frame) -> None:
        """One frame the client sent (or the lease held for it while it waited)."""
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
        if events and not any(isinstance(event, AudioIn) for event in events):
            self._check_control_rate()  # controls are rare; bookkeeping frames (echoed marks) free
        for event in events:
            await self._on_client_event(event)

    def stop_reply(self, reason: StopReason, resend_from_ms: float | None = None) -> None:
        """Cut the reply being played, at once."""
        self._replies.stop(self._upstream(), reason, resend_from_ms)

    def _bad_frame(self, exc: ClientError) -> None:
        """A frame the dialect could not take costs an error event, never the session."""
        self._check_control_rate()
        self._log.warning("client sent a bad message: %s", exc.message)
        self._to_client.emit(ErrorEvent(exc.kind, exc.message, exc.close_code))

    def _check_control_rate(self) -> None:
        if not self._text_rate.allow(self._now()):
            raise ClientError(f"more than {self._config.max_text_frames_per_s:g} control "
                              "messages per second")

    async def _on_client_event(self, event: ClientEvent) -> None:
        upstream = self._upstream()
        if self._observer is not None:
            self._observer(event)
        match event:
            case AudioIn(pcm=pcm, rate_hz=rate_hz):
                await self._on_audio(pcm, rate_hz, upstream)
            case StopReply(reason=reason):
                self.stop_reply(reason)
            case Configure(options=options, acknowledge=acknowledge):
                if self._stats.received_bytes and not takes_options_mid_call(upstream):
                    self._keep_options(options, acknowledge)
                    return
                try:
                    await self._reconfigure(options, upstream)
                except ClientError as exc:
                    self._log.warning("client sent a bad config: %s", exc.message)
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
                raise ClientEnded
            case Introduced(parameters=parameters) if self._admit is not None:
                self._stats.identity = await admit_parameters(parameters, self._stats.identity,
                                                              self._admit)
                self._log.info("admitted: identity %s", self._stats.identity)

    async def _on_audio(self, pcm: bytes, rate_hz: int, upstream: UpstreamAdapter) -> None:
        now = self._now()
        rate = upstream.input_rate_hz
        if rate_hz != rate:
            pcm = self._rates.to_upstream(pcm, rate_hz, rate)
        self._ledger.received(len(pcm))
        self._touch(now)
        self._lead.received(len(pcm) * CLIENT_SAMPLE_RATE_HZ // rate, now)
        lead_s = self._lead.lead_s(now)
        if lead_s > self._config.max_lead_s:
            self._ledger.dropped("too_fast", len(pcm))
            raise ClientError(f"audio is arriving {lead_s:.1f} s ahead of real time (the limit is "
                              f"{self._config.max_lead_s} s): stream at real-time pace")
        if (voice := self._voice) is not None:
            if not self._voice_cuts:  # a client that asks for cuts itself may change its mind
                voice.cuts_replies = getattr(self._dialect, "wants_speech_cuts", False) is True
            self._act(voice.heard(pcm, rate))
        await upstream.send_audio(pcm)  # a full buffer: back-pressure on the client

    def _now(self) -> float:
        clock = self._clock
        if clock is None:
            clock = self._clock = asyncio.get_running_loop().time
        return clock()

    def _act(self, heard: list[Heard]) -> None:
        for event in heard:
            if isinstance(event, CutReply):  # voice barge-in: the user spoke over the reply
                self.stop_reply("voice", resend_from_ms=event.audio_start_ms)
            else:
                self._to_client.emit(event)

    def _act_on(self, heard: list[Heard]) -> None:
        """The batch's decisions, in a loop callback: what they raise is the receiver's to raise."""
        if self._voice_failure is not None:
            return
        try:
            self._act(heard)
        except AudioProxyError as exc:
            self._voice_failure = exc

    def _keep_options(self, config_data: Mapping[str, Any], acknowledge: bool) -> None:
        """Options after the first audio, which this upstream takes only at connect: none applied."""
        self._log.info("options %s asked for after the first audio are not applied: %s",
                       sorted(config_data), _KEPT_REASON)
        if acknowledge:
            self._to_client.emit(ConfigKept(_KEPT_REASON))

    async def _reconfigure(self, config_data: Mapping[str, Any], upstream: UpstreamAdapter) -> None:
        try:
            options = self._config.client_options(config_data)
        except ValueError as exc:
            raise BadClientPayload(f"bad config: {exc}") from exc
        await upstream.configure(options)
