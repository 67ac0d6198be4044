"""The MiniCPM-o-Demo gateway's ``/v1/realtime?mode=audio`` wire, as the gateway speaks it.

Owns: the reading of one client frame into what it asks for (``session.update``,
``input_audio_buffer.append``, ``session.close``) or the ``error`` event the gateway answers a
violation with (codes ``not_ready``, ``unknown_event``, ``missing_field``, ``invalid_payload``;
the socket stays open), and every server event as the gateway writes it: ``session.created``,
``response.output_audio.delta``, ``response.listen``, the queue events, ``session.go_away``,
``session.closed``, ``error``. Audio is base64 float32 little-endian mono, 16 kHz up, 24 kHz down.
Fields the gateway does not know are read past, as it does; a frame that is not JSON is not read
here: the socket closes with 1003. The client half of this wire is the ``minicpm-demo`` upstream
kind's (``asgi_audio_proxy.upstreams.minicpm_demo.wire``). Must not: do I/O or read a clock.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

__all__ = [
    "INPUT_RATE_HZ",
    "MIN_APPEND_SAMPLES",
    "OUTPUT_RATE_HZ",
    "Append",
    "ClientMessage",
    "Close",
    "CloseReason",
    "Update",
    "Violation",
    "audio_delta",
    "closed",
    "created",
    "decode_float32",
    "encode_float32",
    "error",
    "go_away",
    "listen",
    "parse_client_frame",
    "queue_done",
    "queue_update",
    "queued",
]

INPUT_RATE_HZ = 16_000
OUTPUT_RATE_HZ = 24_000
#: the shortest append the gateway takes: 250 ms
MIN_APPEND_SAMPLES = 4_000
#: ``session.closed`` reasons (the schema's enum)
CloseReason = Literal["stopped", "timeout", "context_full", "server_shutdown", "error"]


@dataclass(frozen=True, slots=True)
class Update:
    """``session.update``: the system prompt and the optional reference voices (base64 WAV)."""

    instructions: str
    ref_audio: str | None = None
    tts_ref_audio: str | None = None


@dataclass(frozen=True, slots=True)
class Append:
    """``input_audio_buffer.append``: float32 samples at 16 kHz, and whether to stop speaking."""

    samples: np.ndarray
    force_listen: bool = False


@dataclass(frozen=True, slots=True)
class Close:
    """``session.close``, with the client's reason (``user_stop`` by convention)."""

    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Violation:
    """A frame the gateway answers with an ``error`` event (``code``) and otherwise ignores."""

    code: Literal["not_ready", "unknown_event", "missing_field", "invalid_payload"]
    message: str


ClientMessage = Update | Append | Close | Violation


def parse_client_frame(message: dict[str, Any], *, is_created: bool) -> ClientMessage:
    """What one client event (already parsed JSON) asks; ``is_created``: the session is set up.

    Before ``session.created`` only ``session.update`` is taken (else ``not_ready``); after it,
    only appends and the close (a second update is an ``unknown_event``).
    """
    kind = message.get("type")
    if kind == "session.update":
        if is_created:
            return Violation("unknown_event", "session.update is taken once, before session.created")
        return _update(message)
    if kind in ("input_audio_buffer.append", "session.close"):
        if not is_created:
            return Violation("not_ready", f"{kind} before session.created")
        if kind == "session.close":
            reason = message.get("reason")
            return Close(reason if isinstance(reason, str) else None)
        return _append(message)
    return Violation("unknown_event", f"unknown event type {kind!r}")


def _update(message: dict[str, Any]) -> ClientMessage:
    session = message.get("session")
    if not isinstance(session, dict):
        return Violation("missing_field", "session.update without a session object")
    instructions = session.get("instructions")
    if not isinstance(instructions, str) or not instructions:
        return Violation("missing_field", "session.instructions is required")
    refs = [session.get(name) for name in ("ref_audio", "tts_ref_audio")]
    for name, ref in zip(("ref_audio", "tts_ref_audio"), refs, strict=True):
        if ref is not None and (not isinstance(ref, str) or _b64(ref) is None):
            return Violation("invalid_payload", f"session.{name} is not base64")
    return Update(instructions, *refs)


def _append(message: dict[str, Any]) -> ClientMessage:
    audio = message.get("audio")
    if not isinstance(audio, str) or not audio:
        return Violation("missing_field", "input_audio_buffer.append without audio")
    raw = _b64(audio)
    if raw is None:
        return Violation("invalid_payload", "audio base64 decode failed")
    if len(raw) % 4:
        return Violation("invalid_payload", f"audio of {len(raw)} bytes is not float32 samples")
    samples = decode_float32(raw)
    if len(samples) < MIN_APPEND_SAMPLES:
        return Violation("invalid_payload", f"audio of {len(samples)} samples is under the "
                                            f"minimum of {MIN_APPEND_SAMPLES}")
    force = message.get("force_listen", False)
    if not isinstance(force, bool):
        return Violation("invalid_payload", "force_listen is not a boolean")
    return Append(samples, force)


def _b64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def decode_float32(raw: bytes) -> np.ndarray:
    """Little-endian float32 bytes as samples."""
    return np.frombuffer(raw, dtype="<f4").astype(np.float32)


def encode_float32(samples: np.ndarray) -> str:
    """Samples as base64 little-endian float32."""
    return base64.b64encode(np.asarray(samples, dtype="<f4").tobytes()).decode("ascii")


# -- server events ------------------------------------------------------------------------------

def created(session_id: str, prompt_length: int) -> str:
    return _dump({"type": "session.created", "session_id": session_id, "prompt_length": prompt_length})


def audio_delta(text: str, samples: np.ndarray, end_of_turn: bool, kv_cache_length: int) -> str:
    return _dump({"type": "response.output_audio.delta", "text": text, "audio": encode_float32(samples),
                  "end_of_turn": end_of_turn, "kv_cache_length": kv_cache_length})


def listen(kv_cache_length: int) -> str:
    return _dump({"type": "response.listen", "kv_cache_length": kv_cache_length})


def queued(position: int, estimated_wait_s: float, ticket_id: str, queue_length: int) -> str:
    return _dump({"type": "session.queued", "position": position, "estimated_wait_s": estimated_wait_s,
                  "ticket_id": ticket_id, "queue_length": queue_length})


def queue_update(position: int, estimated_wait_s: float, queue_length: int) -> str:
    return _dump({"type": "session.queue_update", "position": position,
                  "estimated_wait_s": estimated_wait_s, "queue_length": queue_length})


def queue_done() -> str:
    return _dump({"type": "session.queue_done"})


def go_away(reason: str, time_left_ms: int) -> str:
    return _dump({"type": "session.go_away", "reason": reason, "time_left_ms": time_left_ms})


def closed(reason: CloseReason) -> str:
    return _dump({"type": "session.closed", "reason": reason})


def error(code: str, message: str, kind: Literal["client_error", "server_error"] = "client_error") -> str:
    return _dump({"type": "error", "error": {"code": code, "message": message, "type": kind}})


def _dump(event: dict[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":"))
