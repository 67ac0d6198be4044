"""Neutral conversation events: what a session, its dialect and its upstream say to each other.

Owns: the frozen event dataclasses passed between the client dialect, the session, the outbox,
the pool, the metrics and the upstream adapter, in both directions. No wire format lives here:
a dialect turns client frames into :data:`ClientEvent` values and :data:`ServerEvent` values into
frames; an upstream adapter turns :data:`UpstreamEvent` values out of the model server's wire.
Must not: do I/O, import a network library, or know any dialect or upstream.

    client frames --dialect.receive--> ClientEvent --session--> upstream adapter
    upstream adapter --UpstreamEvent--> session --ServerEvent--> outbox --dialect.send--> frames

Audio is always PCM16 little-endian mono; every audio event carries its sample rate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "AudioIn",
    "AudioOutcome",
    "ClearInput",
    "ClientEvent",
    "CommitInput",
    "ConfigApplied",
    "ConfigKept",
    "Configure",
    "DialectFrames",
    "EndSession",
    "ErrorEvent",
    "Introduced",
    "Queued",
    "Ready",
    "ReplyAudio",
    "ReplyEndReason",
    "ReplyEnded",
    "ReplyStarted",
    "ReplyText",
    "ServerEvent",
    "SpeechStarted",
    "SpeechStopped",
    "StopReason",
    "StopReply",
    "UpstreamEvent",
    "UpstreamQueued",
    "pcm_duration_ms",
]

#: why a reply ended: the model finished it, a stop cut it, or the upstream ended it early
ReplyEndReason = Literal["complete", "stopped", "interrupted"]
#: who stopped a reply: the client's own message, its voice (barge-in), or a key press (DTMF)
StopReason = Literal["client", "voice", "dtmf"]


def pcm_duration_ms(nbytes: int, rate_hz: int) -> float:
    """How long ``nbytes`` of PCM16 mono at ``rate_hz`` plays, in milliseconds."""
    return nbytes / 2 / rate_hz * 1000.0


# -- client -> session ------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class AudioIn:
    """Client audio, decoded by the dialect: PCM16 mono at ``rate_hz``.

    ``wire_bytes`` is the size of the frame it came in (limits are checked on it).
    """

    pcm: bytes
    rate_hz: int
    wire_bytes: int = 0


@dataclass(frozen=True, slots=True)
class StopReply:
    """Stop the reply being played, at once (the client pressed stop, spoke, or keyed DTMF)."""

    reason: StopReason = "client"


@dataclass(frozen=True, slots=True)
class Configure:
    """Conversation options, in the library's option names (``assistantPrompt``, ``vadThreshold``,
    ``voiceClonePrompt``, ``useAudioPrompt``, ``audioFormat``; see ``ProxyConfig``).

    ``acknowledge``: the dialect wants a :class:`ConfigApplied` back once they are applied, or
    a :class:`ConfigKept` when they come after the first audio and the upstream cannot take them then.
    """

    options: Mapping[str, Any]
    acknowledge: bool = True


@dataclass(frozen=True, slots=True)
class EndSession:
    """The client ended the conversation in its own words (a phone call's ``stop``): the
    session ends cleanly, as if the socket had closed normally."""


@dataclass(frozen=True, slots=True)
class Introduced:
    """The client said who it is after the handshake (a phone call's ``customParameters``, which
    arrive in its first message): the proxy's ``admit`` hook may check them."""

    parameters: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class CommitInput:
    """Manual turns: the client says its utterance is complete; the upstream should reply now."""


@dataclass(frozen=True, slots=True)
class ClearInput:
    """Manual turns: forget the audio of the utterance not yet committed."""


# -- upstream -> session ----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ReplyStarted:
    """The upstream began a reply (its first audio or text is next)."""


@dataclass(frozen=True, slots=True)
class ReplyText:
    """The next piece of the reply's text (the transcript of its audio)."""

    text: str


@dataclass(frozen=True, slots=True)
class ReplyAudio:
    """The next piece of reply audio: PCM16 mono at ``rate_hz``."""

    pcm: bytes
    rate_hz: int

    @property
    def duration_ms(self) -> float:
        return pcm_duration_ms(len(self.pcm), self.rate_hz)


@dataclass(frozen=True, slots=True)
class ReplyEnded:
    """The reply is over, for ``reason``; a stopped one says who stopped it (``stopped_by``)."""

    reason: ReplyEndReason
    stopped_by: StopReason | None = None


@dataclass(frozen=True, slots=True)
class AudioOutcome:
    """What the upstream did with ``nbytes`` of the audio it was given (for the ledger).

    ``outcome``: ``sent`` (the model heard it), ``skipped`` (the upstream ignored it, e.g. while
    it replied), ``rejected`` (an error acknowledgement), or ``resent`` (audio skipped before,
    heard on a second try: it moves from skipped to sent). ``detail`` is the upstream's word for
    it (kept in the stats' acknowledgement counts).
    """

    nbytes: int
    outcome: Literal["sent", "skipped", "rejected", "resent"]
    detail: str = ""


@dataclass(frozen=True, slots=True)
class UpstreamQueued:
    """While connecting: the model server queued the conversation behind others' (it has a queue
    of its own), at ``position`` (1 = next), a worker expected in about ``eta_s``. The session
    tells its client as :class:`Queued`; the conversation keeps its place meanwhile."""

    position: int
    eta_s: float


# -- session -> client ------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Queued:
    """Every upstream is busy: the client waits at ``position`` (1 = next), about ``eta_s``."""

    position: int
    eta_s: float


@dataclass(frozen=True, slots=True)
class Ready:
    """The upstream is ready: audio may flow."""

    session_id: str
    upstream_version: str
    resume_token: str | None = None  # the client may take the session back with it after a cut


@dataclass(frozen=True, slots=True)
class ConfigApplied:
    """A :class:`Configure` the dialect asked to be acknowledged was applied."""


@dataclass(frozen=True, slots=True)
class ConfigKept:
    """A :class:`Configure` the dialect asked to be acknowledged came after the first audio, and
    the upstream takes options only when the conversation opens: none was applied, and the ones
    in effect stay (``reason`` says why, for the dialect's log)."""

    reason: str


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """The client started speaking, ``audio_start_ms`` into its audio (milliseconds of client
    audio since the session started): the proxy's voice detector heard it, or, from an upstream
    whose model owns the turns, the model took it as the user's turn (then it also emits the
    :class:`SpeechStopped` that ends the turn, before the reply to it starts)."""

    audio_start_ms: int


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    """The client stopped speaking, ``audio_end_ms`` into its audio."""

    audio_end_ms: int


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    """Something went wrong. ``kind`` is the error's name (``bad_payload``, ``upstream_error``...),
    ``code`` the WebSocket close code that goes with it, ``fatal`` whether a close follows."""

    kind: str
    message: str
    code: int
    fatal: bool = False


@dataclass(frozen=True, slots=True)
class DialectFrames:
    """Frames a dialect answers its client with by itself (e.g. an acknowledgement of a message
    only that dialect has), passed through the outbox in order and never dropped."""

    frames: tuple[str | bytes, ...] = field(default=())


#: what an upstream adapter emits (speech events only from one whose model owns the turns)
UpstreamEvent = (ReplyStarted | ReplyText | ReplyAudio | ReplyEnded | AudioOutcome | SpeechStarted
                 | SpeechStopped)

ServerEvent = (Queued | Ready | ConfigApplied | ConfigKept | ReplyStarted | ReplyText | ReplyAudio
               | ReplyEnded | SpeechStarted | SpeechStopped | ErrorEvent | DialectFrames)

#: what a dialect makes of a client frame (``DialectFrames``: its own answer, sent as is)
ClientEvent = (AudioIn | StopReply | Configure | CommitInput | ClearInput | EndSession | Introduced
               | DialectFrames)
