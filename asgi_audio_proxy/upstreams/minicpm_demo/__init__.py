"""The MiniCPM-o-Demo gateway (``gateway.py`` of OpenBMB/MiniCPM-o-Demo) at ``/v1/realtime?mode=audio``.

``AudioProxy(config, kind=minicpm_demo_kind(slots=2))`` fronts such gateways. Its parts: the
settings, the handshake URL, the wire and its name table, the append buffer and the reply
tracker (pure), the adapter (the seam; the transport is the Realtime kind's, one JSON event per
text frame), and the kind.
"""

from __future__ import annotations

from .adapter import DemoAdapter, minicpm_demo_upstream
from .appends import MIN_INTERVAL, AppendBuffer, Outgoing
from .handshake import DEFAULT_PATH, gateway_base, gateway_url
from .kind import gateway_probe, minicpm_demo_kind
from .replies import ReplyTracker
from .settings import DemoSettings
from .wire import (
    BUSY_CODES,
    EVENT_NAMES,
    INPUT_RATE_HZ,
    OUTPUT_RATE_HZ,
    Closed,
    GatewayError,
    GoingAway,
    Ignored,
    Listening,
    QueueState,
    ServerMessage,
    SessionCreated,
    Speech,
    append_audio,
    close_session,
    ending_for,
    error_for,
    float32_to_pcm16,
    parse_server_event,
    pcm16_to_float32,
    session_update,
)

__all__ = [
    "BUSY_CODES",
    "DEFAULT_PATH",
    "EVENT_NAMES",
    "INPUT_RATE_HZ",
    "MIN_INTERVAL",
    "OUTPUT_RATE_HZ",
    "AppendBuffer",
    "Closed",
    "DemoAdapter",
    "DemoSettings",
    "GatewayError",
    "GoingAway",
    "Ignored",
    "Listening",
    "Outgoing",
    "QueueState",
    "ReplyTracker",
    "ServerMessage",
    "SessionCreated",
    "Speech",
    "append_audio",
    "close_session",
    "ending_for",
    "error_for",
    "float32_to_pcm16",
    "gateway_base",
    "gateway_probe",
    "gateway_url",
    "minicpm_demo_kind",
    "minicpm_demo_upstream",
    "parse_server_event",
    "pcm16_to_float32",
    "session_update",
]
