"""A protocol-faithful simulator of the MiniCPM-o-Demo gateway's ``/v1/realtime?mode=audio``
(no GPU needed): the wire, the stand-in model, the queue, the record, one client's connection,
and the ASGI app.
"""

from __future__ import annotations

from .app import GatewaySimulator, run_gateway_simulator
from .connection import MAX_SESSION_S, GatewayConnection, GatewayHost
from .model import BARGE_IN_S, SOUND_S, TOKENS_PER_INPUT_S, TOKENS_PER_OUTPUT_S, DuplexModel, Listened, Spoke
from .queue import EMA_ALPHA, EMA_MIN_SAMPLES, EXPECTED_S, QueueFull, Ticket, WorkerQueue
from .recorder import GatewayRecorder
from .wire import (
    INPUT_RATE_HZ,
    MIN_APPEND_SAMPLES,
    OUTPUT_RATE_HZ,
    Append,
    ClientMessage,
    Close,
    CloseReason,
    Update,
    Violation,
    audio_delta,
    closed,
    created,
    decode_float32,
    encode_float32,
    error,
    go_away,
    listen,
    parse_client_frame,
    queue_done,
    queue_update,
    queued,
)

__all__ = [
    "BARGE_IN_S",
    "EMA_ALPHA",
    "EMA_MIN_SAMPLES",
    "EXPECTED_S",
    "INPUT_RATE_HZ",
    "MAX_SESSION_S",
    "MIN_APPEND_SAMPLES",
    "OUTPUT_RATE_HZ",
    "SOUND_S",
    "TOKENS_PER_INPUT_S",
    "TOKENS_PER_OUTPUT_S",
    "Append",
    "ClientMessage",
    "Close",
    "CloseReason",
    "DuplexModel",
    "GatewayConnection",
    "GatewayHost",
    "GatewayRecorder",
    "GatewaySimulator",
    "Listened",
    "QueueFull",
    "Spoke",
    "Ticket",
    "Update",
    "Violation",
    "WorkerQueue",
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
    "run_gateway_simulator",
]
