"""The Realtime wire: client events parsed, server events built, ids minted, errors shaped.

Owns: the two protocol shapes (GA, and the beta names mapped onto it), the per-connection id
source (``event_id`` on every server event, item and response ids), the one JSON parse of a
client frame, and :class:`RealtimeRequestError` with the ``error`` event it becomes.
Must not: decide what an event means (the dialect does), await, or read a clock.
"""

from __future__ import annotations

import json
import secrets
from collections import deque
from collections.abc import Mapping
from typing import Any, Literal

from ...errors import BadClientPayload
from ..jsonwire import loads

__all__ = [
    "CLIENT_EVENT_TYPES",
    "IdSource",
    "Protocol",
    "RaisedErrors",
    "RealtimeRequestError",
    "dump",
    "error_payload",
    "parse_client_event",
    "wire_name",
]

#: ``ga``: the current protocol; ``beta``: the ``OpenAI-Beta: realtime=v1`` names and shapes
Protocol = Literal["ga", "beta"]

#: every client event of the protocol (both shapes use the same client event names)
CLIENT_EVENT_TYPES = (
    "session.update",
    "input_audio_buffer.append",
    "input_audio_buffer.commit",
    "input_audio_buffer.clear",
    "conversation.item.create",
    "conversation.item.truncate",
    "conversation.item.delete",
    "conversation.item.retrieve",
    "response.create",
    "response.cancel",
    "output_audio_buffer.clear",
)

#: GA server event names that the beta protocol spells differently (``None``: beta has none)
_BETA_NAMES: dict[str, str | None] = {
    "conversation.item.added": "conversation.item.created",
    "conversation.item.done": None,
    "response.output_audio.delta": "response.audio.delta",
    "response.output_audio.done": "response.audio.done",
    "response.output_audio_transcript.delta": "response.audio_transcript.delta",
    "response.output_audio_transcript.done": "response.audio_transcript.done",
    "response.output_text.delta": "response.text.delta",
    "response.output_text.done": "response.text.done",
}


def wire_name(ga_type: str, protocol: Protocol) -> str | None:
    """The name of server event ``ga_type`` in ``protocol`` (``None``: not sent there)."""
    return _BETA_NAMES.get(ga_type, ga_type) if protocol == "beta" else ga_type


class IdSource:
    """Ids for one connection: a random prefix (unique across connections) and a counter.

    The real API's ids look like ``event_`` plus 21 characters; clients only compare them.
    """

    def __init__(self) -> None:
        self._prefix = secrets.token_hex(5)
        self._count = 0

    def new(self, kind: str) -> str:
        """A fresh id: ``event_…``, ``item_…``, ``resp_…``, ``sess_…``, ``conv_…``."""
        self._count += 1
        return f"{kind}_{self._prefix}{self._count:07d}"


class RealtimeRequestError(BadClientPayload):
    """A client event the Realtime API would answer with an ``error`` event.

    The socket stays open (the real API never closes it for a bad request). The fields become
    the ``error`` object: ``type`` (``invalid_request_error``), ``code``, ``message``,
    ``param`` (the offending field) and ``event_id`` (the client event's own id, if it gave one).

    Args:
        message: the ``error.message``.
        code: the ``error.code`` (the real API's where it has one).
        param: the ``error.param``.
        event_id: the offending client event's ``event_id``.
    """

    kind = "invalid_request_error"

    def __init__(self, message: str, *, code: str | None = "invalid_value", param: str | None = None,
                 event_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.param = param
        self.event_id = event_id


class RaisedErrors:
    """The last few errors :meth:`receive` raised, so the ``ErrorEvent`` the session hands back
    for one (it carries only kind, message and close code) becomes the full ``error`` object."""

    def __init__(self, size: int = 8) -> None:
        self._raised: deque[RealtimeRequestError] = deque(maxlen=size)

    def note(self, exc: RealtimeRequestError) -> None:
        """Remember an error on its way to the session."""
        self._raised.append(exc)

    def take(self, message: str) -> dict[str, Any] | None:
        """The ``error`` object of the raised error with this message (``None``: not one of ours)."""
        for exc in self._raised:
            if exc.message == message:
                self._raised.remove(exc)
                return error_payload(exc.message, code=exc.code, param=exc.param, event_id=exc.event_id)
        return None


def parse_client_event(frame: str | bytes, max_chars: int) -> dict[str, Any]:
    """Read one client frame into a JSON object with a known string ``type``.

    Raises:
        RealtimeRequestError: a binary frame, a frame over ``max_chars``, not JSON, not an
            object, no string ``type``, or a type the protocol does not have.
    """
    if isinstance(frame, bytes):
        raise RealtimeRequestError("Binary frames are not part of the Realtime protocol: send "
                                   "audio in input_audio_buffer.append events.", code="invalid_type")
    if len(frame) > max_chars:
        raise RealtimeRequestError(f"Event of {len(frame)} characters is over this server's limit "
                                   f"of {max_chars}: send audio in smaller appends.",
                                   code="message_too_large")
    try:
        event = loads(frame)
    except ValueError as exc:
        raise RealtimeRequestError(f"Invalid JSON: {exc}.", code="invalid_json") from exc
    if not isinstance(event, dict):
        raise RealtimeRequestError("An event must be a JSON object.", code="invalid_type")
    event_id = event.get("event_id")
    event_id = event_id if isinstance(event_id, str) else None
    kind = event.get("type")
    if not isinstance(kind, str):
        raise RealtimeRequestError("Missing required parameter: 'type'.", param="type",
                                   code="missing_required_parameter", event_id=event_id)
    if kind not in CLIENT_EVENT_TYPES:
        supported = ", ".join(f"'{name}'" for name in CLIENT_EVENT_TYPES)
        raise RealtimeRequestError(f"Invalid value: '{kind[:64]}'. Supported values are: {supported}.",
                                   param="type", event_id=event_id)
    return event


def error_payload(message: str, *, error_type: str = "invalid_request_error", code: str | None = None,
                  param: str | None = None, event_id: str | None = None) -> dict[str, Any]:
    """The ``error`` object of an ``error`` server event."""
    return {"type": error_type, "code": code, "message": message, "param": param, "event_id": event_id}


def dump(event: Mapping[str, Any]) -> str:
    """One server event as its text frame (compact JSON, as the real API sends)."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)
