"""vLLM-Omni's full-duplex Realtime wire, server side, as plain dicts: no I/O, no clock, no state.

Owns: the shape of every server event the simulated server sends (``realtime_duplex_api.md``,
"Message examples", and ``vllm_omni/engine/duplex/events.py``): the session object with its
capabilities and formats, the response events of one 1 s unit, their terminal events, the
playback ledger, and the error envelope with vLLM-Omni's codes and OpenAI's error classes.
``server_event_seq`` is stamped later, by the transport that sends them. Must not: decide when
an event is sent (``conversation.py`` does), or touch a socket.
"""

from __future__ import annotations

import uuid
from typing import Any

__all__ = [
    "CAPABILITIES",
    "ERROR_TYPES",
    "INPUT_RATE_HZ",
    "OUTPUT_RATE_HZ",
    "UNIT_MS",
    "error",
    "event",
    "new_event_id",
    "session_object",
]

#: the duplex wire: 16 kHz PCM16 in, 24 kHz PCM16 out, one model unit a second
INPUT_RATE_HZ = 16_000
OUTPUT_RATE_HZ = 24_000
UNIT_MS = 1_000
#: ``DuplexSessionConfig.idle_timeout_s`` when the client sets none
DEFAULT_IDLE_TIMEOUT_S = 300.0

#: what a MiniCPM-o 4.5 session advertises (``session.created`` example)
CAPABILITIES: dict[str, Any] = {
    "implementation_level": "model_native_duplex",
    "supports_input_append": True,
    "supports_barge_in": True,
    "supports_session_resume": True,
    "supports_session_lease": True,
    "supports_multi_session": True,
    "chunk_period_ms": UNIT_MS,
    "input_modes": ["append_audio_chunk"],
    "signal_sources": ["model_native", "client_event", "server_policy"],
    "target_barge_in_latency_ms": None,
}

#: OpenAI's error class for each code the simulator uses (``REALTIME_ERROR_TYPES_BY_CODE``)
ERROR_TYPES: dict[str, str] = {
    "bad_event": "invalid_request_error",
    "bad_audio": "invalid_request_error",
    "config_timeout": "invalid_request_error",
    "invalid_json": "invalid_request_error",
    "event_too_large": "invalid_request_error",
    "unknown_event": "invalid_request_error",
    "resource_exhausted": "rate_limit_error",
    "response_not_active": "invalid_request_error",
    "response_create_without_input": "invalid_request_error",
    "playback_item_not_found": "invalid_request_error",
    "unsupported_audio_format": "invalid_request_error",
    "ref_audio_required": "invalid_request_error",
    "ref_audio_update_unsupported": "invalid_request_error",
    "model_update_unsupported": "invalid_request_error",
    "invalid_session_config": "invalid_request_error",
    "invalid_event_ack": "invalid_request_error",
    "invalid_session_resume": "invalid_request_error",
    "session_resume_expired": "invalid_request_error",
    "invalid_resume_token": "invalid_request_error",
    "unsupported_session_resume": "invalid_request_error",
}


def new_event_id() -> str:
    return f"event_{uuid.uuid4().hex}"


def event(kind: str, **fields: Any) -> dict[str, Any]:
    """A server event: ``type``, a fresh ``event_id``, then ``fields`` in order."""
    return {"type": kind, "event_id": new_event_id(), **fields}


def error(code: str, message: str, *, client_event_id: object = None) -> dict[str, Any]:
    """The ``error`` envelope: ``{type, code, message[, event_id]}`` under ``error``."""
    body: dict[str, Any] = {"type": ERROR_TYPES.get(code, "invalid_request_error"), "code": code,
                            "message": message}
    if isinstance(client_event_id, str) and client_event_id:
        body["event_id"] = client_event_id
    return event("error", error=body)


def session_object(session_id: str, config: dict[str, Any], *, epoch: int, turn_id: int,
                   active_response_id: str | None, playback: dict[str, int]) -> dict[str, Any]:
    """The ``session`` object of ``session.created`` / ``.updated`` / ``.resumed``: the session
    in effect, as ``DuplexSessionConfig`` holds it (what the client set, the server's defaults
    for the rest: ``idle_timeout_s`` 300, ``playback_commit_policy`` ``commit_all_on_done``,
    the overlap thresholds; server VAD implies ``barge_in_on_speech``), with the server's own
    fields (the id is always the server's)."""
    modalities = config.get("modalities") or config.get("output_modalities") or ["audio", "text"]
    turn_detection = config.get("turn_detection")
    is_server_vad = isinstance(turn_detection, dict) and turn_detection.get("type") == "server_vad"
    return {
        "object": "realtime.session",
        "type": "realtime",
        "id": session_id,
        "model": config.get("model"),
        "state": "open",
        "turn_state": "responding" if active_response_id else "idle",
        "epoch": epoch,
        "turn_id": turn_id,
        "active_request_id": None,
        "active_response_id": active_response_id,
        "active_response_turn_id": turn_id if active_response_id else None,
        "modalities": modalities,
        "output_modalities": modalities,
        "instructions": config.get("instructions"),
        "voice": config.get("voice"),
        "response_format": "pcm16",
        "input_audio_format": "pcm16",
        "output_audio_format": "pcm16",
        "audio": {
            "input": {"format": {"type": "audio/pcm", "rate": INPUT_RATE_HZ},
                      "sample_rate_hz": INPUT_RATE_HZ},
            "output": {"format": {"type": "audio/pcm", "rate": OUTPUT_RATE_HZ}},
        },
        "temperature": config.get("temperature"),
        "max_tokens": config.get("max_tokens"),
        "speed": config.get("speed"),
        "idle_timeout_s": float(config.get("idle_timeout_s") or DEFAULT_IDLE_TIMEOUT_S),
        "overlap_policy": ("barge_in_on_speech" if is_server_vad
                           else config.get("overlap_policy") or "listen_only"),
        "overlap_short_ack_ms": config.get("overlap_short_ack_ms", 700),
        "overlap_barge_in_ms": config.get("overlap_barge_in_ms", 1200),
        "overlap_silence_rms": config.get("overlap_silence_rms", 0.003),
        "playback_commit_policy": config.get("playback_commit_policy") or "commit_all_on_done",
        "turn_detection": turn_detection,
        "input_audio_transcription": config.get("input_audio_transcription"),
        "tracing": config.get("tracing"),
        "extra_body": config.get("extra_body") or {},
        "playback": dict(playback),
        "capabilities": dict(CAPABILITIES),
    }
