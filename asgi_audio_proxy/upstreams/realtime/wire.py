"""The OpenAI Realtime protocol as its client speaks it, encoded and decoded without I/O.

Owns: the client events the proxy sends, in the GA or the beta shape (``session.update`` with
what the conversation asked for, ``input_audio_buffer.append`` / ``.commit`` / ``.clear``,
``response.create`` / ``.cancel``, ``conversation.item.truncate``); the one parse of a server
event into what it means here (a piece of a reply as a neutral event with its ids, a response's
end, the session's answer, speech seen by the server's VAD, an error, or nothing); and which
errors end a conversation. Unknown events and extra fields are read past, as the protocol's own
clients do. Must not: import asyncio or a network library, or decide when to send anything.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from ...audio.wav import AudioFormatError, b64decode_strict
from ...config import UpstreamOptions
from ...errors import UpstreamBusy, UpstreamError, UpstreamProtocolError
from ...events import ReplyAudio, ReplyEnded, ReplyStarted, ReplyText
from .settings import RealtimeSettings

__all__ = [
    "BUSY_CODES",
    "OUTPUT_RATE_HZ",
    "Ignored",
    "ReplyPart",
    "ResponseDone",
    "ServerError",
    "ServerMessage",
    "SessionInfo",
    "SpeechActivity",
    "append_audio",
    "cancel_response",
    "clear_audio",
    "commit_audio",
    "create_response",
    "error_for",
    "parse_server_event",
    "session_update",
    "truncate_item",
]

#: the protocol's output audio: PCM16 mono at 24 kHz (a delta may name another rate)
OUTPUT_RATE_HZ = 24_000
#: ``error`` codes that mean "this server is full for now": the pool should try again later
BUSY_CODES = frozenset({"resource_exhausted", "session_limit_reached", "rate_limit_exceeded"})
#: ``error`` codes after which the server ends the session (or the key is no good): not a request of
#: ours that failed, so the conversation cannot go on
FATAL_CODES = frozenset({"session_expired", "invalid_api_key", "insufficient_quota",
                         "account_deactivated", "billing_hard_limit_reached"})
#: the server events whose GA and beta names differ, and what each means here
_NAMES = {
    "audio": ("response.output_audio.delta", "response.audio.delta"),
    "transcript": ("response.output_audio_transcript.delta", "response.audio_transcript.delta"),
    "text": ("response.output_text.delta", "response.text.delta"),
}
#: a rate a delta names is believed only within this range (anything else is a typo or garbage)
_RATE_RANGE_HZ = (8_000, 48_000)


# -- client events ------------------------------------------------------------------------------

def session_update(options: UpstreamOptions, settings: RealtimeSettings, event_id: str | None = None,
                   voice_in_effect: str | None = None) -> str:
    """The ``session.update`` that opens a conversation or changes its options.

    The conversation's part (``instructions``, ``voice``) is what
    :meth:`~.settings.RealtimeSettings.map_options` maps its neutral options to; audio is PCM16
    both ways (at ``input_rate_hz`` in, 24 kHz out). Turn detection:
    the server's VAD, made to create the reply but never to cut one (barge-in is the proxy's:
    its policy decides, and a cut comes as ``response.cancel``), or none (``proxy``).
    ``event_id``: the id a server's ``error`` about this update names it by. ``voice_in_effect``:
    the voice the server already has, not sent again (a Realtime server refuses a voice change
    once it has spoken, so a later update carries a voice only when it changes).
    """
    if settings.turn_detection == "server":
        turns: dict[str, Any] | None = {"type": "server_vad", "create_response": True,
                                        "interrupt_response": False}
    else:
        turns = None
    mapped = settings.map_options(options.conversation)
    if voice_in_effect is not None and mapped.get("voice") == voice_in_effect:
        del mapped["voice"]
    session: dict[str, Any]
    if settings.beta:
        session = {"modalities": ["text", "audio"], "instructions": mapped.get("instructions", ""),
                   "input_audio_format": "pcm16", "output_audio_format": "pcm16",
                   "turn_detection": turns}
        if "voice" in mapped:
            session["voice"] = mapped["voice"]
    else:
        output: dict[str, Any] = {"format": {"type": "audio/pcm", "rate": OUTPUT_RATE_HZ}}
        if "voice" in mapped:
            output["voice"] = mapped["voice"]
        session = {"type": "realtime", "output_modalities": ["audio"],
                   "instructions": mapped.get("instructions", ""),
                   "audio": {"input": {"format": {"type": "audio/pcm", "rate": settings.input_rate_hz},
                                       "turn_detection": turns},
                             "output": output}}
    update: dict[str, Any] = {"type": "session.update", "session": session}
    if event_id is not None:
        update["event_id"] = event_id
    return _dump(update)


def append_audio(pcm: bytes) -> str:
    """``input_audio_buffer.append`` with ``pcm`` (PCM16 at the server's input rate), base64."""
    return _dump({"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode("ascii")})


def commit_audio() -> str:
    """``input_audio_buffer.commit``: the audio appended so far is the user's turn."""
    return _dump({"type": "input_audio_buffer.commit"})


def clear_audio() -> str:
    """``input_audio_buffer.clear``: forget the audio appended since the last commit."""
    return _dump({"type": "input_audio_buffer.clear"})


def create_response() -> str:
    """``response.create`` with the session's own settings."""
    return _dump({"type": "response.create"})


def cancel_response(response_id: str | None) -> str:
    """``response.cancel``, of ``response_id`` when it is known (else the active one)."""
    event: dict[str, Any] = {"type": "response.cancel"}
    if response_id is not None:
        event["response_id"] = response_id
    return _dump(event)


def truncate_item(item_id: str, audio_end_ms: int) -> str:
    """``conversation.item.truncate``: the assistant's ``item_id`` was heard up to ``audio_end_ms``."""
    return _dump({"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0,
                  "audio_end_ms": max(0, audio_end_ms)})


# -- server events ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SessionInfo:
    """``session.created`` (``is_created``) or ``session.updated``: the effective session."""

    is_created: bool
    model: str | None
    session_id: str | None


@dataclass(frozen=True, slots=True)
class ReplyPart:
    """A piece of a response: the neutral event it stands for, and the ids it came with."""

    event: ReplyStarted | ReplyText | ReplyAudio
    response_id: str | None = None
    item_id: str | None = None


@dataclass(frozen=True, slots=True)
class ResponseDone:
    """``response.done``: ``status`` (``completed``, ``cancelled``, ``failed``, ``incomplete``) and
    why (``status_details.reason``, or its error's code)."""

    response_id: str | None
    status: str
    reason: str | None = None

    def ending(self) -> ReplyEnded:
        """What the end means to the session when the proxy did not ask for it: the server's
        VAD heard the user over it (a voice stop), or the reply was cut short upstream."""
        if self.status == "completed":
            return ReplyEnded("complete")
        if self.status == "cancelled" and self.reason == "turn_detected":
            return ReplyEnded("stopped", stopped_by="voice")
        return ReplyEnded("interrupted")


@dataclass(frozen=True, slots=True)
class SpeechActivity:
    """The server's VAD heard the user start (``started``) or stop, ``audio_ms`` into its input."""

    started: bool
    audio_ms: int | None
    item_id: str | None


@dataclass(frozen=True, slots=True)
class ServerError:
    """An ``error`` event: ``type`` (``invalid_request_error``, ``server_error``...), ``code``,
    ``message``, and the offending field and client event, when the server names them."""

    type: str
    code: str | None
    message: str
    param: str | None = None
    event_id: str | None = None


@dataclass(frozen=True, slots=True)
class Ignored:
    """An event the proxy has no use for (``known``: one of the protocol's own)."""

    type: str
    known: bool


ServerMessage = SessionInfo | ReplyPart | ResponseDone | SpeechActivity | ServerError | Ignored

#: the protocol's events that carry nothing the proxy needs (both spellings)
_KNOWN = frozenset({
    "conversation.created", "conversation.item.added", "conversation.item.created",
    "conversation.item.done", "conversation.item.retrieved", "conversation.item.truncated",
    "conversation.item.deleted", "input_audio_buffer.committed", "input_audio_buffer.cleared",
    "input_audio_buffer.timeout_triggered", "output_audio_buffer.started",
    "output_audio_buffer.stopped", "output_audio_buffer.cleared", "rate_limits.updated",
    "response.output_item.added", "response.output_item.done", "response.content_part.added",
    "response.content_part.done", "response.output_audio.done", "response.audio.done",
    "response.output_audio_transcript.done", "response.audio_transcript.done",
    "response.output_text.done", "response.text.done",
})


def parse_server_event(frame: str | bytes, *, beta: bool) -> ServerMessage:
    """Read one server event; ``beta`` picks which spelling of the reply events counts (a server
    that sends both must not have its audio played twice).

    Raises:
        UpstreamProtocolError: not a JSON object with a string ``type``, or a reply event whose
            ``delta`` is not a string (audio: not base64).
    """
    try:
        event = json.loads(frame)
    except (ValueError, UnicodeDecodeError) as exc:
        raise UpstreamProtocolError(f"a server event that is not JSON: {_clip(frame)}") from exc
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        raise UpstreamProtocolError(f"a server event without a type: {_clip(frame)}")
    kind: str = event["type"]
    side = 1 if beta else 0
    if kind in ("session.created", "session.updated"):
        session = _object(event.get("session"))
        return SessionInfo(kind == "session.created", _string(session.get("model")),
                           _string(session.get("id")))
    if kind == "response.created":
        response = _object(event.get("response"))
        return ReplyPart(ReplyStarted(), _string(response.get("id")) or _string(event.get("response_id")))
    if kind == _NAMES["audio"][side]:
        return ReplyPart(ReplyAudio(_audio(event), _rate(event)), *_ids(event))
    if kind in (_NAMES["transcript"][side], _NAMES["text"][side]):
        return ReplyPart(ReplyText(_delta(event)), *_ids(event))
    if kind == "response.done":
        response = _object(event.get("response"))
        details = _object(response.get("status_details"))
        reason = _string(details.get("reason")) or _string(_object(details.get("error")).get("code"))
        return ResponseDone(_string(response.get("id")) or _string(event.get("response_id")),
                            _string(response.get("status")) or "completed", reason)
    if kind in ("input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped"):
        started = kind.endswith("started")
        ms = event.get("audio_start_ms" if started else "audio_end_ms")
        return SpeechActivity(started, ms if type(ms) is int else None, _string(event.get("item_id")))
    if kind == "error":
        error = _object(event.get("error"))
        return ServerError(_string(error.get("type")) or "server_error", _string(error.get("code")),
                           _string(error.get("message")) or "(no message)",
                           _string(error.get("param")), _string(error.get("event_id")))
    return Ignored(kind, kind in _KNOWN or kind in _NAMES["audio"] + _NAMES["transcript"] + _NAMES["text"])


def error_for(error: ServerError) -> UpstreamError | None:
    """The error an ``error`` event ends the conversation with, or ``None`` when it can go on.

    A busy code is :class:`~asgi_audio_proxy.errors.UpstreamBusy`. A ``server_error``, or a code
    after which the server ends the session, is an ``UpstreamError``. Anything else is a request
    of ours that the server refused (a cancel with no response active, a commit of an empty
    buffer, a truncate it does not implement): the conversation is intact.
    """
    said = f"{error.type} {error.code or '(no code)'}: {error.message}"
    if error.code in BUSY_CODES:
        return UpstreamBusy(f"the upstream is full: {said}")
    if error.type == "server_error" or error.code in FATAL_CODES:
        return UpstreamError(f"the upstream failed: {said}")
    return None


def _ids(event: dict[str, Any]) -> tuple[str | None, str | None]:
    return _string(event.get("response_id")), _string(event.get("item_id"))


def _delta(event: dict[str, Any]) -> str:
    delta = event.get("delta")
    if not isinstance(delta, str):
        raise UpstreamProtocolError(f"{event['type']} without a string delta: {_clip(repr(event))}")
    return delta


def _audio(event: dict[str, Any]) -> bytes:
    try:
        return b64decode_strict(_delta(event))
    except AudioFormatError as exc:
        raise UpstreamProtocolError(f"{event['type']} whose audio is not base64: {exc}") from exc


def _rate(event: dict[str, Any]) -> int:
    rate = event.get("sample_rate_hz")  # vLLM-Omni names it; the protocol itself is 24 kHz only
    low, high = _RATE_RANGE_HZ
    return rate if type(rate) is int and low <= rate <= high else OUTPUT_RATE_HZ


def _object(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _string(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _dump(event: dict[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":"))


def _clip(value: object, limit: int = 120) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"

