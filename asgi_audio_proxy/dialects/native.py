"""The native dialect: binary PCM16 16 kHz both ways, small JSON events (the README's protocol).

Owns: the wire of the proxy's own protocol, byte for byte: binary frames are audio; text frames
are controls (``{"type": "stop"}``, ``{"type": "config", ...}``), size-checked, and any other
text is a ``BadClientPayload``; events go out as compact JSON (``type`` first) and reply audio
as binary frames. Must not: await, touch a socket, or act on a control (the session does).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from starlette.types import Scope

from ..audio.wav import CLIENT_SAMPLE_RATE_HZ
from ..config import ProxyConfig
from ..errors import BadClientPayload, ClientError
from ..events import (
    AudioIn,
    ClientEvent,
    ConfigApplied,
    ConfigKept,
    Configure,
    DialectFrames,
    ErrorEvent,
    Queued,
    Ready,
    ReplyAudio,
    ReplyEnded,
    ReplyText,
    ServerEvent,
    SpeechStarted,
    SpeechStopped,
    StopReply,
)
from .base import Frame

__all__ = ["ConfigControl", "Control", "NativeDialect", "StopControl", "native_dialect", "parse_control"]

#: the error a ``config`` after the first audio gets when the upstream takes options at connect only
_LATE_CONFIG = "config must be sent before the first audio"


@dataclass(frozen=True, slots=True)
class StopControl:
    """Stop the reply being played."""


@dataclass(frozen=True, slots=True)
class ConfigControl:
    """Conversation options (camelCase keys): before the first audio, or at any time when the
    upstream takes them mid-conversation."""

    config_data: dict[str, Any]


Control = StopControl | ConfigControl


def parse_control(text: str, max_chars: int) -> Control:
    """Read one control message.

    Raises:
        BadClientPayload: too long, not JSON, not an object with a string ``type``, or a type
            other than ``stop`` and ``config``.
    """
    if len(text) > max_chars:
        raise BadClientPayload(f"text frame of {len(text)} characters is over {max_chars}")
    try:
        control = json.loads(text)
    except ValueError as exc:
        raise BadClientPayload(f"text frame is not JSON: {exc}") from exc
    if not isinstance(control, dict) or not isinstance(control.get("type"), str):
        raise BadClientPayload('a control message is a JSON object with a string "type"')
    kind = control.pop("type")
    if kind == "stop":
        return StopControl()
    if kind == "config":
        return ConfigControl(control)
    raise BadClientPayload(f"unknown control type {kind!r}; expected 'stop' or 'config'")


def _json(payload: dict[str, object]) -> str:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


class NativeDialect:
    """The proxy's own protocol (see the README's "The client protocol").

    Args:
        max_text_bytes: the largest control message, in characters.
    """

    name = "native"
    subprotocol: str | None = None
    output_rate_hz = CLIENT_SAMPLE_RATE_HZ
    playback_lead_ms: float | None = None
    wants_speech_events = False  # only under voice barge-in, where the detector runs anyway
    binary_pcm_rate_hz: int | None = CLIENT_SAMPLE_RATE_HZ  # the session reads audio frames itself

    def __init__(self, max_text_bytes: int) -> None:
        self._max_text = max_text_bytes

    text_audio_ratio = 0.0  # text frames are events; audio is binary
    numbers_events = False  # a resume cannot say what it read last: what a cut lost is lost

    def is_event(self, frame: Frame, event_id: str) -> bool:
        return False

    def resumed(self, session_id: str, token: str) -> list[Frame]:
        """The answer to a resume: the same session, and the token for the next one."""
        return [_json({"type": "resumed", "session": session_id, "resume_token": token})]

    def resume_failed(self, message: str) -> list[Frame]:
        """A refused resume: ``error`` ``resume_failed`` (then close 1008)."""
        return self.send(ErrorEvent("resume_failed", message, 1008, fatal=True))

    def silence(self, duration_s: float) -> Frame:
        """What stands for the client's audio while it is away."""
        return bytes(2 * round(duration_s * CLIENT_SAMPLE_RATE_HZ))

    def receive(self, frame: Frame) -> list[ClientEvent]:
        if isinstance(frame, bytes):
            return [AudioIn(frame, CLIENT_SAMPLE_RATE_HZ, len(frame))]
        control = parse_control(frame, self._max_text)
        if isinstance(control, StopControl):
            return [StopReply("client")]
        return [Configure(control.config_data)]

    def send(self, event: ServerEvent) -> list[Frame]:
        match event:
            case ReplyAudio(pcm=pcm):
                return [pcm] if pcm else []
            case ReplyText(text=text):
                return [_json({"type": "text", "content": text})]
            case ReplyEnded(reason=reason):
                return [_json({"type": "turn_end", "reason": reason})]
            case Ready(session_id=session_id, upstream_version=version, resume_token=token):
                ready: dict[str, object] = {"type": "ready", "session": session_id,
                                            "upstream_version": version}
                if token is not None:
                    ready["resume_token"] = token
                return [_json(ready)]
            case Queued(position=position, eta_s=eta_s):
                return [_json({"type": "queued", "position": position, "eta_s": round(eta_s, 1)})]
            case ConfigApplied():
                return [_json({"type": "config_applied"})]
            case ConfigKept():  # the protocol's answer to a config its upstream cannot take now
                late = ClientError(_LATE_CONFIG)
                return [_json({"type": "error", "error": late.kind, "code": late.close_code,
                               "message": late.message})]
            case SpeechStarted(audio_start_ms=ms):
                return [_json({"type": "speech_started", "audio_start_ms": ms})]
            case SpeechStopped(audio_end_ms=ms):
                return [_json({"type": "speech_stopped", "audio_end_ms": ms})]
            case ErrorEvent(kind=kind, message=message, code=code):
                return [_json({"type": "error", "error": kind, "code": code, "message": message})]
            case DialectFrames(frames=frames):
                return list(frames)
        return []  # ReplyStarted: the first text or audio says it


def native_dialect(scope: Scope, config: ProxyConfig) -> NativeDialect:
    """The :data:`~asgi_audio_proxy.dialects.base.DialectFactory` of the native protocol."""
    return NativeDialect(config.max_text_bytes)
