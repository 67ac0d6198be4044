"""vLLM-Omni's full-duplex Realtime wire as its client speaks it, encoded and decoded without I/O.

Owns: the URL the proxy dials (``/v1/realtime?duplex=1&autostart=0``), the
client events the Realtime wire does not have (the duplex ``session.update`` with its reference
voice and model-owned turns, ``barge_in``, ``playback.ack``, ``session.heartbeat``,
``session.event_ack``, ``session.resume``, ``session.close``), and the one parse of a server
event: its ``server_event_seq`` and what it means here. Reply events, errors and everything else
the two wires share are read by :func:`~asgi_audio_proxy.upstreams.realtime.wire.parse_server_event`
(GA names: vLLM-Omni emits ``response.output_audio.delta``); the duplex session events are read
here. Must not: import asyncio or a network library, or decide when to send anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ...config import UpstreamOptions
from ...errors import UpstreamProtocolError
from ..realtime.wire import ServerMessage, parse_server_event
from .settings import DuplexSettings

__all__ = [
    "INPUT_RATE_HZ",
    "OUTPUT_RATE_HZ",
    "Decision",
    "DuplexMessage",
    "DuplexSession",
    "Overlap",
    "SessionEnded",
    "SessionResumed",
    "barge_in",
    "duplex_url",
    "event_ack",
    "heartbeat",
    "instructions_update",
    "parse_duplex_event",
    "playback_ack",
    "session_close",
    "session_resume",
    "session_update",
]

#: the duplex wire's audio: PCM16 mono, 16 kHz in, 24 kHz out
INPUT_RATE_HZ = 16_000
OUTPUT_RATE_HZ = 24_000
_PATH = "/v1/realtime"
_SCHEMES = {"ws": "ws", "wss": "wss", "http": "ws", "https": "wss"}


def duplex_url(url: str, model: str | None = None) -> str:
    """The URL to dial for the server at ``url``: ``ws(s)://``, the duplex route (``/v1/realtime``
    when no path is given; ``/v1/duplex`` is kept), ``duplex=1`` and ``model`` unless the query
    already says, and always ``autostart=0``: with a model in the query the server would
    otherwise open a bare default session before reading the first event (no voice: refused),
    racing the ``session.update`` or ``session.resume`` every connection opens with.

    Raises:
        ValueError: not a ``ws``, ``wss``, ``http`` or ``https`` URL with a host.
    """
    parts = urlsplit(url)
    scheme = _SCHEMES.get(parts.scheme.lower())
    if scheme is None or not parts.hostname:
        raise ValueError(f"invalid url={url!r} for a vllm-duplex upstream: expected ws://, wss://, "
                         "http:// or https:// with a host")
    path = parts.path.rstrip("/") or _PATH
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.setdefault("duplex", "1")
    if model is not None:
        query.setdefault("model", model)
    query["autostart"] = "0"
    return urlunsplit((scheme, parts.netloc, path, urlencode(query), ""))


# -- client events ------------------------------------------------------------------------------

def session_update(options: UpstreamOptions, settings: DuplexSettings) -> str:
    """The ``session.update`` that opens a duplex session: model-owned turns (no server VAD),
    PCM16 at 16 kHz in and 24 kHz out (both spellings the server reads: the beta formats, and
    the GA ``audio`` format objects with their rates), playback history as acknowledged, and
    the conversation's part (its instructions and reference voice) as
    :meth:`.DuplexSettings.map_options` maps it. Only session fields the server's API reference
    lists are sent."""
    mapped = settings.map_options(options.conversation)
    return _dump({"type": "session.update", "session": {
        "model": settings.model,
        "modalities": ["audio", "text"],
        "instructions": mapped.get("instructions", ""),
        "input_audio_format": "pcm16",
        "output_audio_format": "pcm16",
        "audio": {"input": {"format": {"type": "audio/pcm", "rate": INPUT_RATE_HZ}},
                  "output": {"format": {"type": "audio/pcm", "rate": OUTPUT_RATE_HZ}}},
        "turn_detection": None,
        "ref_audio": mapped["ref_audio"],
        "overlap_policy": settings.overlap_policy,
        "playback_commit_policy": "ack_only",
        "extra_body": {"auto_response": True, "force_listen_count": 0},
    }})


def instructions_update(options: UpstreamOptions) -> str:
    """A later ``session.update``: only what a conversation may change (the voice may not)."""
    instructions = options.conversation.instructions
    return _dump({"type": "session.update", "session": {"instructions": instructions or ""}})


def barge_in() -> str:
    """``barge_in``: the user spoke over the reply; the server cancels it (reason ``barge_in``)."""
    return _dump({"type": "barge_in"})


def playback_ack(response_id: str | None, played_ms: int, *, truncate: bool) -> str:
    """``playback.ack``: the client played ``played_ms`` of the response; with ``truncate`` the
    rest was never heard, and the history keeps only what was."""
    event: dict[str, Any] = {"type": "playback.ack", "played_ms": max(0, played_ms),
                             "committed_ms": max(0, played_ms), "truncate": truncate}
    if response_id is not None:
        event["response_id"] = response_id
    return _dump(event)


def heartbeat() -> str:
    return _dump({"type": "session.heartbeat"})


def event_ack(seq: int) -> str:
    """``session.event_ack``: every server event up to ``seq`` arrived; the server trims its journal."""
    return _dump({"type": "session.event_ack", "server_event_seq": seq})


def session_resume(session_id: str, resume_token: str, last_seq: int) -> str:
    return _dump({"type": "session.resume", "session_id": session_id, "resume_token": resume_token,
                  "last_received_server_event_seq": last_seq})


def session_close() -> str:
    """``session.close``: answered ``session.closed`` with reason ``client_close``."""
    return _dump({"type": "session.close"})


# -- server events ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class DuplexSession:
    """``session.created`` (``is_created``) or ``session.updated``."""

    is_created: bool
    session_id: str | None
    model: str | None
    resume_token: str | None
    supports_resume: bool


@dataclass(frozen=True, slots=True)
class SessionResumed:
    """``session.resumed``: re-attached; the rotated token; the journal's replay follows."""

    resume_token: str | None


@dataclass(frozen=True, slots=True)
class SessionEnded:
    """The server ended the session or this socket's part in it: ``session.closed``,
    ``.expired``, ``.replaced`` or ``.resync_required``, and why."""

    type: str
    reason: str | None


@dataclass(frozen=True, slots=True)
class Decision:
    """``response.listen`` (``speak`` false) or ``response.speak``: what the model chose."""

    speak: bool
    response_id: str | None


@dataclass(frozen=True, slots=True)
class Overlap:
    """``overlap.decision``: what the server did with input that overlapped a response:
    ``drop`` (a short remark, not a turn), ``listen`` (speech kept for the next turn) or
    ``barge_in`` (speech that cut the response)."""

    action: str
    reason: str | None

    @property
    def is_speech(self) -> bool:
        """The user spoke, and it counts as a turn."""
        return self.action in ("listen", "barge_in")


DuplexMessage = DuplexSession | SessionResumed | SessionEnded | Decision | Overlap | ServerMessage
_ENDINGS = frozenset({"session.closed", "session.expired", "session.replaced", "session.resync_required"})


def parse_duplex_event(frame: str) -> tuple[int | None, DuplexMessage]:
    """One server event: its ``server_event_seq`` (``None`` when it has none) and its meaning.

    Raises:
        UpstreamProtocolError: not a JSON object with a string ``type`` (and as
            :func:`~asgi_audio_proxy.upstreams.realtime.wire.parse_server_event`).
    """
    try:
        event = json.loads(frame)
    except ValueError as exc:
        raise UpstreamProtocolError(f"a server event that is not JSON: {frame[:120]!r}") from exc
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        raise UpstreamProtocolError(f"a server event without a type: {frame[:120]!r}")
    seq = event.get("server_event_seq")
    seq = seq if type(seq) is int else None
    kind = event["type"]
    if kind in ("session.created", "session.updated"):
        session = _object(event.get("session"))
        capabilities = _object(session.get("capabilities"))
        return seq, DuplexSession(kind == "session.created", _string(session.get("id")),
                                  _string(session.get("model")), _string(event.get("resume_token")),
                                  capabilities.get("supports_session_resume") is True)
    if kind == "session.resumed":
        return seq, SessionResumed(_string(event.get("resume_token")))
    if kind in _ENDINGS:
        return seq, SessionEnded(kind, _string(event.get("reason")))
    if kind in ("response.listen", "response.speak"):
        return seq, Decision(kind == "response.speak", _string(event.get("response_id")))
    if kind == "overlap.decision":
        return seq, Overlap(_string(event.get("action")) or "", _string(event.get("reason")))
    return seq, parse_server_event(frame, beta=False)


def _object(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _string(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _dump(event: dict[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":"))
