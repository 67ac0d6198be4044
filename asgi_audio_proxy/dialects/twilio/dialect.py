"""The Twilio Media Streams dialect: a phone call's bidirectional stream (``<Connect><Stream>``).

Owns: reading Twilio's six messages (``connected``, ``start``, ``media``, ``dtmf``, ``mark``,
``stop``) into neutral events, and writing the only three Twilio takes back (``media``, ``mark``,
``clear``), each with exactly ``event``, ``streamSid`` and its own object, as JSON text frames,
none before ``start``. Audio is 8 kHz μ-law both ways; the session resamples to and from the
upstream's rate. Must not: await, touch a socket, read a clock, or send Twilio anything it has no
message for (queue positions, text, errors: the session logs those).

Twilio's stream as a state table, after ``h11``: each state lists the messages it accepts and
the state each one leads to. A message the table has no row for raises a ``ClientError`` and
leaves the state as it was, so one bad frame costs that frame, never the call.
"""

from __future__ import annotations

import base64
import enum
from collections.abc import Iterable
from typing import Any

from starlette.types import Scope

from ...audio.g711 import pcm16_to_ulaw, ulaw_to_pcm16
from ...config import CLIENT_OPTION_KEYS, ProxyConfig
from ...errors import ClientError
from ...events import (
    AudioIn,
    ClientEvent,
    Configure,
    DialectFrames,
    EndSession,
    Introduced,
    ReplyAudio,
    ReplyEnded,
    ReplyStarted,
    ServerEvent,
    StopReply,
)
from ..base import DialectFactory, Frame
from .messages import (
    TWILIO_RATE_HZ,
    TwilioCall,
    media_payload,
    options_from_parameters,
    outbound,
    parse_message,
    read_start,
    require_object,
    require_string,
)
from .playback import PlaybackCounts, ReplyPlayback, UnknownMark

__all__ = [
    "DEFAULT_PIECE_MS",
    "DEFAULT_PLAYBACK_LEAD_MS",
    "StreamState",
    "TwilioDialect",
    "twilio_dialect",
    "twilio_dialect_factory",
]

#: what Twilio has buffered is what a ``clear`` throws away and what a caller hears after a stop
#: is sent: two media pieces keep it short and still ride over a late packet
DEFAULT_PLAYBACK_LEAD_MS = 80.0
#: a media message's length when more reply audio is waiting (pipecat and Twilio's own samples
#: use 20-50 ms)
DEFAULT_PIECE_MS = 40
#: a DTMF key a caller can press
_DIGITS = frozenset("0123456789*#ABCD")


class StreamState(enum.Enum):
    """Where a Twilio stream is: waiting for ``start``, streaming, or stopped."""

    AWAITING_START = "awaiting_start"
    STREAMING = "streaming"
    STOPPED = "stopped"


#: each state's accepted messages and the state each leads to
_TRANSITIONS: dict[StreamState, dict[str, StreamState]] = {
    StreamState.AWAITING_START: {"connected": StreamState.AWAITING_START,
                                 "start": StreamState.STREAMING},
    StreamState.STREAMING: {"media": StreamState.STREAMING, "dtmf": StreamState.STREAMING,
                            "mark": StreamState.STREAMING, "stop": StreamState.STOPPED},
    StreamState.STOPPED: {},
}


class TwilioDialect:
    """One Twilio Media Stream, sans I/O (see :class:`~asgi_audio_proxy.dialects.base.ClientDialect`).

    Args:
        stop_digits: DTMF keys that stop the reply being played (``StopReply("dtmf")``); other
            keys are counted and otherwise ignored.
        piece_ms: media message length when more reply audio is waiting (20..60).
        playback_lead_ms: how far ahead of real time the session may send reply audio.
        option_parameters: ``customParameters`` names passed on as conversation options (they
            keep the library's spelling: ``assistantPrompt``...); the session decides which of
            them a client may set.
    """

    name = "twilio"
    subprotocol: str | None = None
    output_rate_hz = TWILIO_RATE_HZ

    def __init__(self, *, stop_digits: Iterable[str] = (), piece_ms: int = DEFAULT_PIECE_MS,
                 playback_lead_ms: float = DEFAULT_PLAYBACK_LEAD_MS,
                 option_parameters: Iterable[str] = CLIENT_OPTION_KEYS) -> None:
        self.stop_digits = frozenset(stop_digits)
        if not self.stop_digits <= _DIGITS:
            raise ValueError(f"invalid stop_digits={sorted(self.stop_digits)!r}: expected keys of "
                             f"{''.join(sorted(_DIGITS))}")
        self.option_parameters = frozenset(option_parameters)
        if not self.option_parameters <= CLIENT_OPTION_KEYS:
            raise ValueError(f"invalid option_parameters={sorted(self.option_parameters)!r}: "
                             f"expected a subset of {sorted(CLIENT_OPTION_KEYS)}")
        self.playback_lead_ms: float | None = playback_lead_ms
        self.wants_speech_events = False  # Twilio has no such message: a cut sends clear
        self.binary_pcm_rate_hz: int | None = None  # audio comes in JSON media messages
        self.state = StreamState.AWAITING_START
        #: set by ``start``
        self.call: TwilioCall | None = None
        self.playback = ReplyPlayback(rate_hz=TWILIO_RATE_HZ, piece_ms=piece_ms)
        #: DTMF keys pressed that stop nothing (the app may read them)
        self.other_digits = 0
        self._odd_byte = b""  # a reply's PCM16 sample split across two events
        self._is_replying = False  # a reply has started on the wire and not ended

    # -- Twilio -> proxy ----------------------------------------------------------------------

    def receive(self, frame: Frame) -> list[ClientEvent]:
        """Read one Twilio message.

        Raises:
            BadClientPayload: a binary frame, not JSON, not an object with a known ``event``, a
                field missing or of the wrong type, undecodable audio.
            ClientError: a message out of order (``media`` before ``start``, anything after
                ``stop``), another stream's ``streamSid``, a format other than 8 kHz μ-law, a mark
                never sent.
        """
        message = parse_message(frame)
        event = message["event"]
        following = _TRANSITIONS[self.state].get(event)
        if following is None:
            raise ClientError(f"Twilio {event!r} message while the stream is "
                              f"{self.state.value}; expected one of {sorted(_TRANSITIONS[self.state])}")
        if self.call is not None:
            sid = require_string(message, "streamSid", event)
            if sid != self.call.stream_sid:
                raise ClientError(f"Twilio {event!r} message for stream {sid!r}; this connection "
                                  f"carries {self.call.stream_sid!r}")
        match event:
            case "start":
                events = self._on_start(message)
            case "media":
                events = self._on_media(message, frame)
            case "dtmf":
                events = self._on_dtmf(message)
            case "mark":
                events = self._on_mark(message)
            case "stop":
                events = [EndSession()]
            case _:  # connected: the protocol's name and version, nothing to act on
                events = []
        self.state = following
        return events

    def _on_start(self, message: dict[str, Any]) -> list[ClientEvent]:
        self.call = read_start(message)
        options = options_from_parameters(self.call.custom_parameters, self.option_parameters)
        introduced: list[ClientEvent] = [Introduced(dict(self.call.custom_parameters))]
        return [*introduced, Configure(options, acknowledge=False)] if options else introduced

    def _on_media(self, message: dict[str, Any], frame: Frame) -> list[ClientEvent]:
        ulaw = media_payload(message)
        if not ulaw:
            return []
        # Twilio's messages are ASCII JSON: characters are bytes, no encoding needed to count them
        return [AudioIn(ulaw_to_pcm16(ulaw), TWILIO_RATE_HZ, len(frame))]

    def _on_dtmf(self, message: dict[str, Any]) -> list[ClientEvent]:
        digit = require_string(require_object(message, "dtmf", "dtmf"), "digit", "dtmf")
        if digit in self.stop_digits:
            if self._is_replying or not self.playback.pending_ms:
                return [StopReply("dtmf")]  # the session cuts a reply still going out (clear)
            # the reply went out whole, but Twilio still plays what it holds (a lead's worth, or
            # seconds of pieces sent in a burst after a stall): the key stops that too
            self.playback.clear()
            return [StopReply("dtmf"), DialectFrames((outbound("clear", self._stream_sid),))]
        self.other_digits += 1
        return []

    def _on_mark(self, message: dict[str, Any]) -> list[ClientEvent]:
        try:
            self.playback.echoed(require_string(require_object(message, "mark", "mark"), "name", "mark"))
        except UnknownMark as exc:
            raise ClientError(f"Twilio echoed a mark: {exc}") from exc
        return []

    # -- proxy -> Twilio ----------------------------------------------------------------------

    def send(self, event: ServerEvent) -> list[Frame]:
        """The frames Twilio gets for ``event``: media and marks for reply audio, ``clear`` for a
        stopped reply, and nothing at all for the events Twilio has no message for."""
        if isinstance(event, DialectFrames):
            return list(event.frames)
        if isinstance(event, ReplyStarted):
            self.playback.start_reply()
            self._odd_byte = b""
            self._is_replying = True
        elif isinstance(event, ReplyAudio):
            return self._reply_audio(event)
        elif isinstance(event, ReplyEnded):
            self._odd_byte = b""
            self._is_replying = False
            if event.reason == "stopped":
                self.playback.clear()
                if self.state is not StreamState.STREAMING:
                    return []
                return [outbound("clear", self._stream_sid)]
            if self.state is StreamState.STREAMING:
                return self._pieces(self.playback.finish())
            self.playback.clear()  # the stream is gone: what was waiting is counted as dropped
        return []

    def _reply_audio(self, event: ReplyAudio) -> list[Frame]:
        if event.rate_hz != TWILIO_RATE_HZ:
            raise ValueError(f"reply audio at {event.rate_hz} Hz; the Twilio dialect takes "
                             f"{TWILIO_RATE_HZ} Hz (output_rate_hz)")
        pcm = self._odd_byte + event.pcm
        cut = len(pcm) - len(pcm) % 2
        pcm, self._odd_byte = pcm[:cut], pcm[cut:]
        if self.state is not StreamState.STREAMING:
            self.playback.drop(len(pcm) // 2)  # no stream to play it on: counted, not sent
            return []
        return self._pieces(self.playback.feed(pcm16_to_ulaw(pcm)))

    def _pieces(self, pieces: list[tuple[bytes, str]]) -> list[Frame]:
        frames: list[Frame] = []
        for audio, mark in pieces:
            payload = base64.b64encode(audio).decode("ascii")
            frames.append(outbound("media", self._stream_sid, {"payload": payload}))
            frames.append(outbound("mark", self._stream_sid, {"name": mark}))
        return frames

    @property
    def _stream_sid(self) -> str:
        if self.call is None:
            raise RuntimeError("nothing goes to Twilio before 'start'")
        return self.call.stream_sid

    @property
    def counts(self) -> PlaybackCounts:
        """Reply audio sent, heard, cleared, pending and dropped on this call so far."""
        return self.playback.counts


def twilio_dialect_factory(*, stop_digits: Iterable[str] = (), piece_ms: int = DEFAULT_PIECE_MS,
                           playback_lead_ms: float = DEFAULT_PLAYBACK_LEAD_MS,
                           option_parameters: Iterable[str] = CLIENT_OPTION_KEYS) -> DialectFactory:
    """A :data:`~asgi_audio_proxy.dialects.base.DialectFactory` for Twilio streams with these
    settings (see :class:`TwilioDialect`), e.g. ``twilio_dialect_factory(stop_digits="*")``.

    Raises:
        ValueError: a setting out of range (checked now, not on the first call).
    """
    digits, names = frozenset(stop_digits), frozenset(option_parameters)

    def factory(scope: Scope, config: ProxyConfig) -> TwilioDialect:
        return TwilioDialect(stop_digits=digits, piece_ms=piece_ms,
                             playback_lead_ms=playback_lead_ms, option_parameters=names)

    TwilioDialect(stop_digits=digits, piece_ms=piece_ms, playback_lead_ms=playback_lead_ms,
                  option_parameters=names)  # the settings are checked now, not on the first call
    return factory


def twilio_dialect(scope: Scope, config: ProxyConfig) -> TwilioDialect:
    """The default Twilio dialect factory: no DTMF key stops a reply, 40 ms media pieces."""
    return TwilioDialect()
