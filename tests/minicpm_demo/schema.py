"""The MiniCPM-o-Demo realtime protocol's message schema, as ``jsonschema`` checks it.

Written from ``docs/realtime-protocol-schema.json`` of OpenBMB/MiniCPM-o-Demo (draft-07): the same
events, required fields, types, enums and ``additionalProperties: false`` on every object, so a
field the gateway does not list fails. :func:`check_client` checks what a client sent (the
adapter's frames, as the simulator recorded them); :func:`check_server` what the simulator sent.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema

__all__ = ["check_client", "check_server"]

_B64 = {"type": "string", "pattern": "^[A-Za-z0-9+/]+=*$"}
_COUNT = {"type": "integer", "minimum": 0}


def _event(kind: str, required: list[str], **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": ["type", *required], "additionalProperties": False,
            "properties": {"type": {"const": kind}, **properties}}


CLIENT_EVENTS = [
    _event("session.update", ["session"], session={
        "type": "object", "required": ["instructions"], "additionalProperties": False,
        "properties": {"instructions": {"type": "string", "minLength": 1},
                       "max_slice_nums": {"type": "integer", "minimum": 1, "maximum": 9},
                       "ref_audio": _B64, "tts_ref_audio": _B64}}),
    _event("input_audio_buffer.append", ["audio"], audio=_B64,
           video_frames={"type": "array", "items": _B64, "maxItems": 4},
           force_listen={"type": "boolean"},
           max_slice_nums={"type": "integer", "minimum": 1, "maximum": 9}),
    _event("session.close", [], reason={"type": "string"}),
]
_ERROR = {"type": "object", "required": ["code", "message", "type"], "additionalProperties": False,
          "properties": {"code": {"enum": ["not_ready", "unknown_event", "missing_field", "invalid_payload",
                                           "service_unavailable", "queue_full", "worker_busy",
                                           "worker_connect_failed", "inference_error"]},
                         "message": {"type": "string"},
                         "type": {"enum": ["client_error", "server_error"]}}}
SERVER_EVENTS = [
    _event("session.created", ["session_id"], session_id={"type": "string"}, prompt_length=_COUNT),
    _event("response.output_audio.delta", ["text", "audio", "end_of_turn", "kv_cache_length"],
           text={"type": "string"}, audio=_B64, end_of_turn={"type": "boolean"}, kv_cache_length=_COUNT,
           source={"type": "string"}),
    _event("response.listen", [], kv_cache_length=_COUNT),
    _event("session.go_away", ["reason"], reason={"type": "string"}, time_left_ms=_COUNT),
    _event("session.closed", ["reason"],
           reason={"enum": ["stopped", "timeout", "context_full", "server_shutdown", "error"]}),
    _event("session.queued", ["position"], position={"type": "integer", "minimum": 1},
           estimated_wait_s={"type": "number", "minimum": 0}, ticket_id={"type": "string"},
           queue_length=_COUNT),
    _event("session.queue_update", ["position"], position={"type": "integer", "minimum": 1},
           estimated_wait_s={"type": "number", "minimum": 0}, queue_length=_COUNT),
    _event("session.queue_done", []),
    _event("error", ["error"], error=_ERROR),
]
_CLIENT = {"oneOf": CLIENT_EVENTS}
_SERVER = {"oneOf": SERVER_EVENTS}


def check_client(frame: str) -> dict[str, Any]:
    """A client text frame, parsed; raises ``jsonschema.ValidationError`` if the schema refuses it."""
    event: dict[str, Any] = json.loads(frame)
    jsonschema.validate(event, _CLIENT)
    return event


def check_server(frame: str) -> dict[str, Any]:
    """A server text frame, parsed; raises ``jsonschema.ValidationError`` if the schema refuses it."""
    event: dict[str, Any] = json.loads(frame)
    jsonschema.validate(event, _SERVER)
    return event
