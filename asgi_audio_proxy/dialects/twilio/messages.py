"""Twilio Media Streams' wire: reading its messages' fields, writing the three it takes.

Owns: the JSON shape of every message, as Twilio's "Media Streams - WebSocket Messages" page
describes it: parsing a frame into a checked object, reading ``start`` into a
:class:`TwilioCall`, turning ``customParameters`` into conversation options, and building
``media``, ``mark`` and ``clear`` with exactly the fields Twilio accepts (it rejects unknown
ones). Must not: keep state or decide what a message means for the conversation (the dialect
does).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii
from typing import Any, Literal

from ...errors import BadClientPayload, ClientError
from ..base import Frame
from ..jsonwire import loads

#: a string as ``json.dumps`` writes it (ASCII, escaped), without the rest of the encoder
_json_string: Callable[[str], str] = encode_basestring_ascii

__all__ = [
    "INBOUND_EVENTS",
    "MEDIA_FORMAT",
    "TWILIO_RATE_HZ",
    "TwilioCall",
    "media_payload",
    "options_from_parameters",
    "outbound",
    "parse_message",
    "read_start",
    "require_object",
    "require_string",
]

#: Media Streams audio: μ-law, 8 kHz, mono, both ways
TWILIO_RATE_HZ = 8_000
#: the only format a bidirectional stream carries (``start.mediaFormat``)
MEDIA_FORMAT: Mapping[str, object] = {"encoding": "audio/x-mulaw", "sampleRate": TWILIO_RATE_HZ,
                                      "channels": 1}
#: what Twilio sends
INBOUND_EVENTS = frozenset({"connected", "start", "media", "dtmf", "mark", "stop"})
#: parameters that arrive as strings in TwiML but are numbers in the library's options
_NUMERIC_OPTIONS: dict[str, tuple[type[float] | type[int], str]] = {
    "vadThreshold": (float, "number"), "useAudioPrompt": (int, "whole number")}


@dataclass(frozen=True, slots=True)
class TwilioCall:
    """What ``start`` says about the call: its ids and the TwiML's ``<Parameter>`` values."""

    stream_sid: str
    call_sid: str
    account_sid: str
    custom_parameters: Mapping[str, str] = field(default_factory=dict)


def parse_message(frame: Frame) -> dict[str, Any]:
    """One frame from Twilio as a JSON object whose ``event`` is one Twilio sends.

    Raises:
        BadClientPayload: a binary frame, not JSON, not an object, no or an unknown ``event``.
    """
    if isinstance(frame, bytes):
        raise BadClientPayload("Twilio sends JSON text frames; got a binary frame of "
                               f"{len(frame)} bytes")
    try:
        message = loads(frame)
    except json.JSONDecodeError as exc:
        raise BadClientPayload(f"Twilio message is not JSON: {exc}") from exc
    if not isinstance(message, dict) or not isinstance(message.get("event"), str):
        raise BadClientPayload('a Twilio message is a JSON object with a string "event"')
    if message["event"] not in INBOUND_EVENTS:
        raise BadClientPayload(f"unknown Twilio event {message['event']!r}; expected one of "
                               f"{sorted(INBOUND_EVENTS)}")
    return message


def require_object(message: Mapping[str, Any], key: str, event: str) -> dict[str, Any]:
    """``message[key]``, which must be an object (``BadClientPayload`` if not)."""
    value = message.get(key)
    if not isinstance(value, dict):
        raise BadClientPayload(f"Twilio {event!r} message needs an object {key!r}")
    return value


def require_string(message: Mapping[str, Any], key: str, event: str) -> str:
    """``message[key]``, which must be a non-empty string (``BadClientPayload`` if not)."""
    value = message.get(key)
    if not isinstance(value, str) or not value:
        raise BadClientPayload(f"Twilio {event!r} message needs a non-empty string {key!r}")
    return value


def read_start(message: Mapping[str, Any]) -> TwilioCall:
    """The call a ``start`` message opens.

    Raises:
        BadClientPayload: a field missing or of the wrong type.
        ClientError: a media format other than 8 kHz mono μ-law.
    """
    start = require_object(message, "start", "start")
    sid = require_string(start, "streamSid", "start")
    if message.get("streamSid", sid) != sid:
        raise BadClientPayload(f"Twilio 'start' names two streams: {message['streamSid']!r} and {sid!r}")
    media_format = start.get("mediaFormat", MEDIA_FORMAT)
    # Twilio writes most numbers as strings; compare as text so both spellings pass
    if not isinstance(media_format, dict) or any(
            str(media_format.get(key)) != str(value) for key, value in MEDIA_FORMAT.items()):
        raise ClientError(f"Twilio stream format {media_format!r} is not supported; a "
                          f"bidirectional stream carries {dict(MEDIA_FORMAT)}")
    parameters = start.get("customParameters") or {}
    if not isinstance(parameters, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in parameters.items()):
        raise BadClientPayload("Twilio 'start.customParameters' must be an object of strings")
    call_sid, account_sid = start.get("callSid", ""), start.get("accountSid", "")
    if not isinstance(call_sid, str) or not isinstance(account_sid, str):
        raise BadClientPayload("Twilio 'start.callSid' and 'start.accountSid' must be strings")
    return TwilioCall(stream_sid=sid, call_sid=call_sid, account_sid=account_sid,
                      custom_parameters=dict(parameters))


def media_payload(message: Mapping[str, Any]) -> bytes:
    """The μ-law bytes of a ``media`` message from the caller's track.

    Raises:
        BadClientPayload: no payload, or not base64.
        ClientError: another track's audio (a unidirectional ``<Start><Stream>``).
    """
    media = require_object(message, "media", "media")
    track = media.get("track", "inbound")
    if track not in ("inbound", "inbound_track"):
        raise ClientError(f"Twilio media of track {track!r}: only the caller's (inbound) audio "
                          "is taken; use <Connect><Stream>")
    payload = media.get("payload")
    if not isinstance(payload, str):
        raise BadClientPayload("Twilio 'media' message needs a string 'payload'")
    try:
        return base64.b64decode(payload, validate=True)
    except binascii.Error as exc:
        raise BadClientPayload(f"Twilio 'media.payload' is not base64: {exc}") from exc


def options_from_parameters(parameters: Mapping[str, str], names: frozenset[str]) -> dict[str, Any]:
    """The ``customParameters`` named in ``names``, as the library's option types.

    Raises:
        BadClientPayload: a numeric option that does not read as a number.
    """
    options: dict[str, Any] = {}
    for name in sorted(names & parameters.keys()):
        if name not in _NUMERIC_OPTIONS:
            options[name] = parameters[name]
            continue
        convert, kind = _NUMERIC_OPTIONS[name]
        try:
            options[name] = convert(parameters[name])
        except ValueError as exc:
            raise BadClientPayload(f"Twilio parameter {name}={parameters[name]!r} is not "
                                   f"a {kind}") from exc
    return options


def outbound(event: Literal["media", "mark", "clear"], stream_sid: str,
             body: Mapping[str, str] | None = None) -> str:
    """A message to Twilio: ``event``, ``streamSid`` and, for media and mark, its one object.

    Written out around its strings rather than built as a dict for ``json.dumps``: the same
    bytes as ``json.dumps(message, separators=(",", ":"))`` (the strings escaped as it escapes
    them), in a little over half the CPU.
    """
    head = f'{{"event":"{event}","streamSid":{_json_string(stream_sid)}'
    if body is None:
        return head + "}"
    fields = ",".join(f"{_json_string(key)}:{_json_string(value)}" for key, value in body.items())
    return f'{head},"{event}":{{{fields}}}}}'
