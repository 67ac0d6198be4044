"""The native protocol's client half: what the proxy sends, decoded; what a client sends, encoded.

Owns: turning each frame a native client receives into its typed message (:mod:`.native_messages`:
binary frames are reply audio, text frames the README's events), the controls a client sends
(:func:`encode_control`, the inverse of :func:`~.native.parse_control`), and
:class:`NativeClient`, a small view of one connection built from what it received: session id,
place in the queue, the reply in progress and each finished reply's audio, the errors. It is
the other side of :mod:`.native`, sans-I/O as that side is; the command-line client, the
benchmarks and the tests read the proxy through it. Must not: await, touch a socket, read a
clock, or enforce an order of messages (the session decides it; a recorded session pins it).

Strict on purpose: the README lists every message the proxy sends and says nothing of clients
skipping others, so an unknown ``type``, a missing, extra or mistyped field, or audio that is not
PCM16 is a :class:`~.native_messages.BadProxyMessage` naming the frame, never a message
silently dropped.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, get_args

from ..audio.wav import CLIENT_SAMPLE_RATE_HZ
from ..events import ReplyEndReason, pcm_duration_ms
from .native import Control, StopControl
from .native_messages import (
    AudioMessage,
    BadProxyMessage,
    ConfigAppliedMessage,
    ErrorMessage,
    ProxyMessage,
    QueuedMessage,
    ReadyMessage,
    ResumedMessage,
    SpeechStartedMessage,
    SpeechStoppedMessage,
    TextMessage,
    TurnEndMessage,
    UnknownProxyMessage,
)

# the messages are named here too: a client imports the whole client half from one module
__all__ = [
    "AudioMessage",
    "BadProxyMessage",
    "ConfigAppliedMessage",
    "ErrorMessage",
    "FinishedReply",
    "NativeClient",
    "ProxyMessage",
    "QueuedMessage",
    "ReadyMessage",
    "ResumedMessage",
    "SpeechStartedMessage",
    "SpeechStoppedMessage",
    "TextMessage",
    "TurnEndMessage",
    "UnknownProxyMessage",
    "decode_message",
    "encode_control",
]

_REASONS: frozenset[str] = frozenset(get_args(ReplyEndReason))


# -- decoding -----------------------------------------------------------------------------------

def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError("a string")
    return value


def _count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise TypeError("a whole number, 0 or more")
    return value


def _position(value: object) -> int:
    position = _count(value)
    if position < 1:
        raise TypeError("a whole number, 1 or more")
    return position


def _seconds(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < float("inf"):
        raise TypeError("a finite number of seconds, 0 or more")
    return float(value)


def _close_code(value: object) -> int:
    code = _count(value)
    if code not in range(1000, 5000):
        raise TypeError("a WebSocket close code (1000-4999)")
    return code


def _reason(value: object) -> str:
    if value not in _REASONS:
        raise TypeError(f"one of {sorted(_REASONS)}")
    return str(value)


_Field = tuple[str, Callable[[object], Any]]
#: each event type: the message it becomes, and its wire fields in the message's field order
#: fields an event may leave out (the message then holds None)
_OPTIONAL: frozenset[tuple[str, str]] = frozenset({("ready", "resume_token")})
_EVENTS: dict[str, tuple[Callable[..., ProxyMessage], tuple[_Field, ...]]] = {
    "ready": (ReadyMessage, (("session", _text), ("upstream_version", _text),
                             ("resume_token", _text))),
    "resumed": (ResumedMessage, (("session", _text), ("resume_token", _text))),
    "queued": (QueuedMessage, (("position", _position), ("eta_s", _seconds))),
    "text": (TextMessage, (("content", _text),)),
    "turn_end": (TurnEndMessage, (("reason", _reason),)),
    "config_applied": (ConfigAppliedMessage, ()),
    "speech_started": (SpeechStartedMessage, (("audio_start_ms", _count),)),
    "speech_stopped": (SpeechStoppedMessage, (("audio_end_ms", _count),)),
    "error": (ErrorMessage, (("error", _text), ("code", _close_code), ("message", _text))),
}


def decode_message(frame: str | bytes) -> ProxyMessage:
    """Decode one frame the proxy sent to a native client.

    Args:
        frame: a WebSocket message as received: ``bytes`` (binary) or ``str`` (text).

    Returns:
        The message it carries.

    Raises:
        UnknownProxyMessage: a JSON event of a type the protocol does not have.
        BadProxyMessage: anything else that is not a message: empty or odd-length audio, text
            that is not a JSON object with a string ``type``, a field missing, extra or of the
            wrong type or value.
    """
    if isinstance(frame, bytes | bytearray | memoryview):
        pcm = bytes(frame)
        if not pcm or len(pcm) % 2:
            raise BadProxyMessage("reply audio must be whole PCM16 samples, at least one", pcm)
        return AudioMessage(pcm)
    try:
        event = json.loads(frame)
    except ValueError as exc:
        raise BadProxyMessage("a text frame is not JSON", frame) from exc
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        raise BadProxyMessage('an event is a JSON object with a string "type"', frame)
    kind = event.pop("type")
    known = _EVENTS.get(kind)
    if known is None:
        raise UnknownProxyMessage(kind, frame)
    make, fields = known
    names = [name for name, _ in fields]
    required = {name for name in names if (kind, name) not in _OPTIONAL}
    if not required <= set(event) <= set(names):
        missing, extra = sorted(required - set(event)), sorted(set(event) - set(names))
        raise BadProxyMessage(f"{kind!r} has fields {names}; missing {missing}, extra {extra}", frame)
    values = []
    for name, check in fields:
        try:
            values.append(check(event[name]) if name in event else None)
        except TypeError as exc:
            raise BadProxyMessage(f"{kind!r} field {name!r} must be {exc}", frame) from exc
    return make(*values)


def encode_control(control: Control) -> str:
    """The text frame a native client sends for ``control`` (what
    :func:`~asgi_audio_proxy.dialects.native.parse_control` reads back).

    Raises:
        ValueError: a config whose options name a ``type`` (the message's own key).
    """
    if isinstance(control, StopControl):
        return json.dumps({"type": "stop"})
    if "type" in control.config_data:
        raise ValueError("config options cannot include 'type'")
    return json.dumps({"type": "config", **control.config_data})


# -- the connection as a client sees it ----------------------------------------------------------

@dataclass(frozen=True, slots=True)
class FinishedReply:
    """One reply, as received: its text, its audio in bytes, and how it ended."""

    text: str
    audio_bytes: int
    reason: ReplyEndReason

    @property
    def audio_ms(self) -> float:
        return pcm_duration_ms(self.audio_bytes, CLIENT_SAMPLE_RATE_HZ)


@dataclass(slots=True)
class NativeClient:
    """What one native connection has received, message by message.

    Feed it every frame the proxy sends (:meth:`receive`); it decodes the frame, remembers what
    it says and returns the message. A reply is in progress from its first text or audio to its
    ``turn_end``.

    Attributes:
        session_id: from ``ready``; ``None`` before it.
        resume_token: from ``ready``, then from each ``resumed``: what a reconnect after a
            cut sends as ``?resume=``; ``None`` where the proxy keeps no session for one.
        upstream_version: from ``ready``.
        queue_position: the last ``queued`` position while waiting; ``None`` once ready.
        reply_in_progress: a reply's text or audio came and its ``turn_end`` has not.
        reply_text: the reply in progress's text so far.
        reply_audio_bytes: the reply in progress's audio so far, in bytes.
        replies: each finished reply, in order.
        errors: each ``error`` received, in order.
    """

    session_id: str | None = None
    upstream_version: str | None = None
    resume_token: str | None = None
    queue_position: int | None = None
    reply_in_progress: bool = False
    reply_audio_bytes: int = 0
    replies: list[FinishedReply] = field(default_factory=list)
    errors: list[ErrorMessage] = field(default_factory=list)
    _text: list[str] = field(default_factory=list)

    @property
    def is_ready(self) -> bool:
        """Whether ``ready`` has come (audio may flow)."""
        return self.session_id is not None

    @property
    def reply_text(self) -> str:
        return "".join(self._text)

    def receive(self, frame: str | bytes) -> ProxyMessage:
        """Decode ``frame`` (see :func:`decode_message`) and take in what it says.

        Raises:
            BadProxyMessage: the frame is not a message; nothing is changed.
        """
        message = decode_message(frame)
        match message:
            case ReadyMessage(session_id=session_id, upstream_version=version, resume_token=token):
                self.session_id, self.upstream_version, self.queue_position = session_id, version, None
                self.resume_token = token
            case ResumedMessage(resume_token=token):
                self.resume_token = token
            case QueuedMessage(position=position):
                self.queue_position = position
            case TextMessage(text=text):
                self.reply_in_progress = True
                self._text.append(text)
            case AudioMessage(pcm=pcm):
                self.reply_in_progress = True
                self.reply_audio_bytes += len(pcm)
            case TurnEndMessage(reason=reason):
                self.replies.append(FinishedReply(self.reply_text, self.reply_audio_bytes, reason))
                self.reply_in_progress, self.reply_audio_bytes, self._text = False, 0, []
            case ErrorMessage():
                self.errors.append(message)
        return message
