"""What the proxy says to a native client, as typed messages: the native protocol's client half's vocabulary.

Owns: one frozen dataclass per message of the README's "Proxy → client" table (binary reply
audio and the JSON events ``ready``, ``queued``, ``text``, ``turn_end``, ``config_applied``,
``speech_started``, ``speech_stopped``, ``error``), :data:`ProxyMessage`, their union, and
:class:`BadProxyMessage`, raised for a frame that is none of them. Decoding lives in
:mod:`.native_client`. Must not: do I/O or know the wire's JSON.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..audio.wav import CLIENT_SAMPLE_RATE_HZ
from ..events import ReplyEndReason, pcm_duration_ms

__all__ = [
    "AudioMessage",
    "BadProxyMessage",
    "ConfigAppliedMessage",
    "ErrorMessage",
    "ProxyMessage",
    "QueuedMessage",
    "ReadyMessage",
    "ResumedMessage",
    "SpeechStartedMessage",
    "SpeechStoppedMessage",
    "TextMessage",
    "TurnEndMessage",
    "UnknownProxyMessage",
]

#: how much of an offending frame an error quotes (a text frame may be long)
_QUOTED_CHARS = 200


class BadProxyMessage(ValueError):
    """A frame from the proxy that is not a message of the native protocol.

    Attributes:
        frame: the frame, text or binary (quoted in part by ``str()``).
        problem: what is wrong with it.
    """

    def __init__(self, problem: str, frame: str | bytes) -> None:
        super().__init__(problem, frame)
        self.problem = problem
        self.frame = frame

    def __str__(self) -> str:
        if isinstance(self.frame, bytes):
            return f"{self.problem}: binary frame of {len(self.frame)} bytes"
        quoted = self.frame[:_QUOTED_CHARS] + ("..." if len(self.frame) > _QUOTED_CHARS else "")
        return f"{self.problem}: {quoted!r}"


class UnknownProxyMessage(BadProxyMessage):
    """A well-formed JSON event whose ``type`` the native protocol does not have.

    Attributes:
        kind: that ``type``.
    """

    def __init__(self, kind: str, frame: str) -> None:
        super().__init__(f"unknown message type {kind!r}", frame)
        self.kind = kind


@dataclass(frozen=True, slots=True)
class ReadyMessage:
    """``ready``: the upstream is ready, audio may flow."""

    session_id: str
    upstream_version: str
    resume_token: str | None = None  # where the proxy holds a cut session for a resume


@dataclass(frozen=True, slots=True)
class ResumedMessage:
    """``resumed``: a reconnect with ``?resume=<token>`` took the session back; the next
    resume needs ``resume_token``."""

    session_id: str
    resume_token: str


@dataclass(frozen=True, slots=True)
class QueuedMessage:
    """``queued``: every upstream is busy; the client waits at ``position`` (1 = next)."""

    position: int
    eta_s: float


@dataclass(frozen=True, slots=True)
class TextMessage:
    """``text``: the next piece of the reply's text."""

    text: str


@dataclass(frozen=True, slots=True)
class AudioMessage:
    """A binary frame: the next piece of reply audio, PCM16 mono at 16 kHz."""

    pcm: bytes

    @property
    def duration_ms(self) -> float:
        return pcm_duration_ms(len(self.pcm), CLIENT_SAMPLE_RATE_HZ)


@dataclass(frozen=True, slots=True)
class TurnEndMessage:
    """``turn_end``: the reply is over, for ``reason``."""

    reason: ReplyEndReason


@dataclass(frozen=True, slots=True)
class ConfigAppliedMessage:
    """``config_applied``: the client's ``config`` was applied."""


@dataclass(frozen=True, slots=True)
class SpeechStartedMessage:
    """``speech_started``: the proxy heard the user start speaking, ``audio_start_ms`` into the
    audio the client sent."""

    audio_start_ms: int


@dataclass(frozen=True, slots=True)
class SpeechStoppedMessage:
    """``speech_stopped``: the user stopped speaking, ``audio_end_ms`` into its audio."""

    audio_end_ms: int


@dataclass(frozen=True, slots=True)
class ErrorMessage:
    """``error``: what went wrong (``kind``: ``bad_payload``, ``upstream_error``...); ``code`` is the
    close code that follows unless the error cost only the message that caused it."""

    kind: str
    code: int
    message: str


ProxyMessage = (ReadyMessage | ResumedMessage | QueuedMessage | TextMessage | AudioMessage | TurnEndMessage
                | ConfigAppliedMessage | SpeechStartedMessage | SpeechStoppedMessage | ErrorMessage)
