"""A server that speaks the OpenAI Realtime protocol: the proxy as its client.

``AudioProxy(config, upstream_factory=realtime_upstream(RealtimeSettings(...)))`` fronts any
such server (vLLM-Omni, huggingface/speech-to-speech, LocalAI, speaches with ``beta=True``,
another asgi-audio-proxy's ``/v1/realtime``, the OpenAI API itself). Its parts: the settings,
the handshake and the wire (pure), the reply tracker, the send queue, the turn detector and
the later session updates (pure), the transport (the connection) and the adapter (the seam).
"""

from __future__ import annotations

from .adapter import APPEND_MAX_S, RealtimeAdapter, realtime_upstream
from .handshake import DEFAULT_PATH, handshake_headers, websocket_url
from .replies import Cut, Playout, ReplyTracker
from .sendqueue import Outgoing, SendQueue
from .settings import RealtimeSettings, TurnDetection
from .transport import MAX_EVENT_BYTES, RealtimeTransport, Transport
from .turns import TurnDetector
from .updates import SessionUpdates
from .wire import (
    BUSY_CODES,
    OUTPUT_RATE_HZ,
    Ignored,
    ReplyPart,
    ResponseDone,
    ServerError,
    ServerMessage,
    SessionInfo,
    SpeechActivity,
    append_audio,
    cancel_response,
    clear_audio,
    commit_audio,
    create_response,
    error_for,
    parse_server_event,
    session_update,
    truncate_item,
)

__all__ = [
    "APPEND_MAX_S",
    "BUSY_CODES",
    "DEFAULT_PATH",
    "MAX_EVENT_BYTES",
    "OUTPUT_RATE_HZ",
    "Cut",
    "Ignored",
    "Outgoing",
    "Playout",
    "RealtimeAdapter",
    "RealtimeSettings",
    "RealtimeTransport",
    "ReplyPart",
    "ReplyTracker",
    "ResponseDone",
    "SendQueue",
    "ServerError",
    "ServerMessage",
    "SessionInfo",
    "SessionUpdates",
    "SpeechActivity",
    "Transport",
    "TurnDetection",
    "TurnDetector",
    "append_audio",
    "cancel_response",
    "clear_audio",
    "commit_audio",
    "create_response",
    "error_for",
    "handshake_headers",
    "parse_server_event",
    "realtime_upstream",
    "session_update",
    "truncate_item",
    "websocket_url",
]
