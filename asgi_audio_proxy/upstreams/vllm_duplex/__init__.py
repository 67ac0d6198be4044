"""vLLM-Omni's full-duplex Realtime server (MiniCPM-o 4.5): the proxy as its client.

``AudioProxy(config, kind=vllm_duplex_kind(slots=4))`` fronts it. Its parts: the settings, the
reference voice and the wire (pure), the playback bookkeeping (pure, over the Realtime kind's
reply tracker), the user's turns as the model takes them (pure), what it owes the server as
time passes (pure: silence, event acks, heartbeats), the link (the socket and its
resume), the adapter (the seam) and the kind.
"""

from __future__ import annotations

from .adapter import APPEND_MAX_S, TICK_S, DuplexAdapter, duplex_upstream
from .kind import DEFAULT_SLOTS, health_probe, vllm_duplex_kind
from .link import DuplexLink, TransportFactory
from .playback import ACK_STEP_MS, DuplexPlayback
from .settings import DuplexSettings, OverlapPolicy
from .turns import ModelTurns
from .upkeep import EVENT_ACK_INTERVAL_S, DuplexUpkeep
from .voice import DEFAULT_VOICE_RATE_HZ, default_reference_voice, wav_data_url
from .wire import (
    INPUT_RATE_HZ,
    OUTPUT_RATE_HZ,
    Decision,
    DuplexMessage,
    DuplexSession,
    Overlap,
    SessionEnded,
    SessionResumed,
    barge_in,
    duplex_url,
    event_ack,
    heartbeat,
    instructions_update,
    parse_duplex_event,
    playback_ack,
    session_close,
    session_resume,
    session_update,
)

__all__ = [
    "ACK_STEP_MS",
    "APPEND_MAX_S",
    "DEFAULT_SLOTS",
    "DEFAULT_VOICE_RATE_HZ",
    "EVENT_ACK_INTERVAL_S",
    "INPUT_RATE_HZ",
    "OUTPUT_RATE_HZ",
    "TICK_S",
    "Decision",
    "DuplexAdapter",
    "DuplexLink",
    "DuplexMessage",
    "DuplexPlayback",
    "DuplexSession",
    "DuplexSettings",
    "DuplexUpkeep",
    "ModelTurns",
    "Overlap",
    "OverlapPolicy",
    "SessionEnded",
    "SessionResumed",
    "TransportFactory",
    "barge_in",
    "default_reference_voice",
    "duplex_upstream",
    "duplex_url",
    "event_ack",
    "health_probe",
    "heartbeat",
    "instructions_update",
    "parse_duplex_event",
    "playback_ack",
    "session_close",
    "session_resume",
    "session_update",
    "vllm_duplex_kind",
    "wav_data_url",
]
