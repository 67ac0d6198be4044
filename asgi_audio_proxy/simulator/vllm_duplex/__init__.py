"""A simulator of vLLM-Omni's full-duplex Realtime server (MiniCPM-o 4.5), with no GPU.
"""

from __future__ import annotations

from .app import DuplexSimulator, run_duplex_simulator
from .conversation import DuplexConversation
from .recorder import DuplexRecorder
from .replies import MAX_REPLY_UNITS, Reply, plan_reply, unit_audio
from .sessions import HostedSession, SessionTable, Socket
from .wire import (
    CAPABILITIES,
    ERROR_TYPES,
    INPUT_RATE_HZ,
    OUTPUT_RATE_HZ,
    UNIT_MS,
    error,
    event,
    new_event_id,
    session_object,
)

__all__ = [
    "CAPABILITIES",
    "ERROR_TYPES",
    "INPUT_RATE_HZ",
    "MAX_REPLY_UNITS",
    "OUTPUT_RATE_HZ",
    "UNIT_MS",
    "DuplexConversation",
    "DuplexRecorder",
    "DuplexSimulator",
    "HostedSession",
    "Reply",
    "SessionTable",
    "Socket",
    "error",
    "event",
    "new_event_id",
    "plan_reply",
    "run_duplex_simulator",
    "session_object",
    "unit_audio",
]
