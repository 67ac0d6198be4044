"""A protocol-faithful simulator of the MiniCPM-o model server (no GPU needed).
"""

from __future__ import annotations

from .app import UpstreamSimulator, run_simulator
from .host import FAULTS, Fault, SimulatorHost
from .model import (
    REPLY_FORMAT,
    ReplyChunk,
    SimulatedModel,
    SimulatorVersion,
    TurnAudioMissing,
    build_reply,
    decode_base64,
    merge_chunks,
    pcm_to_float,
)
from .recorder import RecordedAck, RecordedReply, SimulatorRecorder
from .state import ChunkError, Conversation, OptionsStore
from .vad import SPEECH_LEVEL, VAD_SAMPLE_RATE_HZ, speech_seconds, voiced_seconds, window_rms

__all__ = [
    "FAULTS",
    "REPLY_FORMAT",
    "SPEECH_LEVEL",
    "VAD_SAMPLE_RATE_HZ",
    "ChunkError",
    "Conversation",
    "Fault",
    "OptionsStore",
    "RecordedAck",
    "RecordedReply",
    "ReplyChunk",
    "SimulatedModel",
    "SimulatorHost",
    "SimulatorRecorder",
    "SimulatorVersion",
    "TurnAudioMissing",
    "UpstreamSimulator",
    "build_reply",
    "decode_base64",
    "merge_chunks",
    "pcm_to_float",
    "run_simulator",
    "speech_seconds",
    "voiced_seconds",
    "window_rms",
]
