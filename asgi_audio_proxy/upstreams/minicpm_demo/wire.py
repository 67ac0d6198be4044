"""The MiniCPM-o-Demo gateway's ``/v1/realtime?mode=audio`` wire as its client speaks it, without I/O.

Owns: :data:`EVENT_NAMES`, the one table from what an event means to its name on the wire (the
published names; the gateway's planned rename, ``session.init``, ``input.append``,
``response.output.delta``..., is a change of this table); the three client events, each exactly
as the protocol's schema allows (no field it does not list): ``session.update`` (``instructions``
and the reference voices), ``input_audio_buffer.append`` (PCM16 made base64 float32, with
``force_listen`` only when set), ``session.close``; the one parse of a server event into what it
means here; and what a ``session.closed`` or an ``error`` ends the conversation with. Unknown
events and extra fields are read past. Must not: import asyncio or a network library, or decide
when to send anything.

    session.update / .created                 SessionCreated
    response.output_audio.delta               Speech (text, PCM16 at 24 kHz, end_of_turn)
    response.listen                           Listening
    session.queued / .queue_update / .done    QueueState
    session.go_away                           GoingAway
    session.closed                            Closed: stopped, timeout, context_full, ...
    error                                     GatewayError: busy codes end the attempt
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ...audio.wav import AudioFormatError, b64decode_strict
from ...errors import (
    AudioProxyError,
    ContextFull,
    UpstreamBusy,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamSessionLimit,
    UpstreamUnavailable,
)

__all__ = [
    "BUSY_CODES",
    "EVENT_NAMES",
    "INPUT_RATE_HZ",
    "OUTPUT_RATE_HZ",
    "Closed",
    "GatewayError",
    "GoingAway",
    "Ignored",
    "Listening",
    "QueueState",
    "ServerMessage",
    "SessionCreated",
    "Speech",
    "append_audio",
    "close_session",
    "ending_for",
    "error_for",
    "float32_to_pcm16",
    "parse_server_event",
    "pcm16_to_float32",
    "session_update",
]

#: what each event means -> its name on the wire; the only place the names are written
EVENT_NAMES: Mapping[str, str] = {
    # client -> gateway
    "configure": "session.update",
    "append": "input_audio_buffer.append",
    "close": "session.close",
    # gateway -> client
    "created": "session.created",
    "speech": "response.output_audio.delta",
    "listening": "response.listen",
    "queued": "session.queued",
    "queue_update": "session.queue_update",
    "queue_done": "session.queue_done",
    "going_away": "session.go_away",
    "closed": "session.closed",
    "error": "error",
}
_MEANING = {name: meaning for meaning, name in EVENT_NAMES.items()}
INPUT_RATE_HZ = 16_000
OUTPUT_RATE_HZ = 24_000
#: ``error`` codes after which the gateway closes with 1013: no worker for us now
BUSY_CODES = frozenset({"queue_full", "worker_busy", "worker_connect_failed", "service_unavailable"})
#: the ``session`` fields of a ``session.update`` the schema lists for an audio conversation
_SESSION_FIELDS = ("instructions", "ref_audio", "tts_ref_audio")


# -- client events ------------------------------------------------------------------------------

def session_update(session: Mapping[str, Any]) -> str:
    """``session.update`` with ``session``'s fields (``instructions``, and ``ref_audio`` and
    ``tts_ref_audio`` when set, as :meth:`.DemoSettings.map_options` makes them): those the schema
    lists, and no other."""
    fields = {key: session[key] for key in _SESSION_FIELDS if session.get(key) is not None}
    if not fields.get("instructions"):
        raise ValueError("a session.update needs instructions (the schema requires them)")
    return _dump({"type": EVENT_NAMES["configure"], "session": fields})


def append_audio(pcm: bytes, *, force_listen: bool = False) -> str:
    """``input_audio_buffer.append`` of ``pcm`` (PCM16 at 16 kHz) as base64 float32."""
    event: dict[str, Any] = {"type": EVENT_NAMES["append"], "audio": pcm16_to_float32(pcm)}
    if force_listen:
        event["force_listen"] = True
    return _dump(event)


def close_session(reason: str = "user_stop") -> str:
    """``session.close``: the conversation is over (the gateway answers ``session.closed``)."""
    return _dump({"type": EVENT_NAMES["close"], "reason": reason})


def pcm16_to_float32(pcm: bytes) -> str:
    """PCM16 little-endian as base64 float32 little-endian in [-1, 1)."""
    samples = np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], "<i2").astype("<f4") / np.float32(32768.0)
    return base64.b64encode(samples.astype("<f4").tobytes()).decode("ascii")


def float32_to_pcm16(raw: bytes) -> bytes:
    """Float32 little-endian samples as PCM16, clipped to full scale.

    Raises:
        AudioFormatError: not a whole number of float32 samples.
    """
    if len(raw) % 4:
        raise AudioFormatError(f"{len(raw)} bytes are not float32 samples")
    samples = np.nan_to_num(np.frombuffer(raw, "<f4"), nan=0.0, posinf=1.0, neginf=-1.0)
    pcm: bytes = np.clip(np.rint(samples * 32768.0), -32768, 32767).astype("<i2").tobytes()
    return pcm


# -- server events ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SessionCreated:
    """``session.created``: the gateway's id for the conversation, and its prompt's length."""

    session_id: str
    prompt_length: int | None


@dataclass(frozen=True, slots=True)
class Speech:
    """``response.output_audio.delta``: the model speaks: text, PCM16 at 24 kHz, end of its turn."""

    text: str
    pcm: bytes
    end_of_turn: bool
    kv_cache_length: int | None


@dataclass(frozen=True, slots=True)
class Listening:
    """``response.listen``: the model listens (anything of a reply still playing should stop)."""

    kv_cache_length: int | None


@dataclass(frozen=True, slots=True)
class QueueState:
    """The gateway's queue: ``queued`` (with a place), ``update``, or ``done`` (a worker is ours)."""

    stage: Literal["queued", "update", "done"]
    position: int | None = None
    eta_s: float | None = None


@dataclass(frozen=True, slots=True)
class GoingAway:
    """``session.go_away``: the gateway will close the conversation in ``time_left_ms``."""

    reason: str
    time_left_ms: int | None


@dataclass(frozen=True, slots=True)
class Closed:
    """``session.closed``: the conversation is over, for ``reason``."""

    reason: str


@dataclass(frozen=True, slots=True)
class GatewayError:
    """An ``error`` event: its ``code``, ``message`` and ``type`` (client_error, server_error)."""

    code: str
    message: str
    type: str


@dataclass(frozen=True, slots=True)
class Ignored:
    """An event the proxy has no use for."""

    type: str


ServerMessage = (SessionCreated | Speech | Listening | QueueState | GoingAway | Closed | GatewayError
                 | Ignored)
_QUEUE_STAGES: Mapping[str, Literal["queued", "update", "done"]] = {
    "queued": "queued", "queue_update": "update", "queue_done": "done"}


def parse_server_event(frame: str | bytes) -> ServerMessage:
    """Read one server event.

    Raises:
        UpstreamProtocolError: not a JSON object with a string ``type``, or speech whose audio is
            not base64 float32.
    """
    try:
        event = json.loads(frame)
    except (ValueError, UnicodeDecodeError) as exc:
        raise UpstreamProtocolError(f"a gateway event that is not JSON: {_clip(frame)}") from exc
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        raise UpstreamProtocolError(f"a gateway event without a type: {_clip(frame)}")
    meaning = _MEANING.get(event["type"])
    if meaning == "speech":
        return Speech(_string(event.get("text")), _audio(event), event.get("end_of_turn") is True,
                      _whole(event.get("kv_cache_length")))
    if meaning == "listening":
        return Listening(_whole(event.get("kv_cache_length")))
    if meaning == "created":
        return SessionCreated(_string(event.get("session_id")), _whole(event.get("prompt_length")))
    if meaning is not None and meaning in _QUEUE_STAGES:
        eta = event.get("estimated_wait_s")
        return QueueState(_QUEUE_STAGES[meaning], _whole(event.get("position")),
                          float(eta) if isinstance(eta, int | float) and not isinstance(eta, bool) else None)
    if meaning == "going_away":
        return GoingAway(_string(event.get("reason")), _whole(event.get("time_left_ms")))
    if meaning == "closed":
        return Closed(_string(event.get("reason")) or "error")
    if meaning == "error":
        error = event.get("error")
        if isinstance(error, dict):
            return GatewayError(_string(error.get("code")), _string(error.get("message")),
                                _string(error.get("type")))
        return GatewayError("", _string(error), "server_error")  # an older gateway's bare string
    return Ignored(event["type"])


def ending_for(closed: Closed) -> AudioProxyError:
    """What a ``session.closed`` the proxy did not ask for ends the conversation with.

    ``timeout`` is the gateway's cap on a conversation's length, ``context_full`` its context
    filled up: limits of this conversation, not failures of the gateway (1013). ``stopped``
    unasked, ``server_shutdown`` and ``error`` end it as an upstream failure.
    """
    if closed.reason == "timeout":
        return UpstreamSessionLimit("the model server ended the conversation at its time limit")
    if closed.reason == "context_full":
        return ContextFull("the model's context is full: the conversation cannot go on")
    if closed.reason == "server_shutdown":
        return UpstreamUnavailable("the model server is shutting down")
    if closed.reason == "stopped":
        return UpstreamUnavailable("the model server closed the conversation")
    return UpstreamError(f"the model server ended the conversation: {closed.reason}")


def error_for(error: GatewayError) -> UpstreamError | None:
    """The error an ``error`` event ends the conversation with, or ``None`` when it goes on.

    A busy code (no worker, a full queue) is :class:`~asgi_audio_proxy.errors.UpstreamBusy`: the
    gateway closes with 1013 next. The others (a request of ours refused, an inference error the
    gateway recovers from) leave the conversation intact.
    """
    if error.code in BUSY_CODES:
        return UpstreamBusy(f"the gateway is full: {error.code}: {error.message}")
    return None


def _audio(event: dict[str, Any]) -> bytes:
    audio = event.get("audio")
    if not isinstance(audio, str):
        raise UpstreamProtocolError(f"{event['type']} without audio: {_clip(repr(event))}")
    try:
        return float32_to_pcm16(b64decode_strict(audio))
    except AudioFormatError as exc:
        raise UpstreamProtocolError(f"{event['type']} whose audio is not base64 float32: {exc}") from exc


def _string(value: object) -> str:
    return value if isinstance(value, str) else ""


def _whole(value: object) -> int | None:
    return value if type(value) is int else None


def _dump(event: dict[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":"))


def _clip(value: object, limit: int = 120) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"
