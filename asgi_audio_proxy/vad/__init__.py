"""Voice activity on the client's audio: frame-level detectors and the voice barge-in decision."""

from __future__ import annotations

from .bargein import (
    BargeInConfig,
    BargeInPolicy,
    CutReply,
    SpeechStarted,
    SpeechStopped,
    VoiceActivity,
    VoiceEvent,
)
from .batch import BatchStats, FrameBatcher
from .detector import (
    DETECTOR_RATE_HZ,
    EnergyDetector,
    MissingVadExtra,
    SileroDetector,
    SpeechDetector,
    default_detector,
)
from .echo import EchoReference

__all__ = [
    "DETECTOR_RATE_HZ",
    "BargeInConfig",
    "BargeInPolicy",
    "BatchStats",
    "CutReply",
    "EchoReference",
    "EnergyDetector",
    "FrameBatcher",
    "MissingVadExtra",
    "SileroDetector",
    "SpeechDetector",
    "SpeechStarted",
    "SpeechStopped",
    "VoiceActivity",
    "VoiceEvent",
    "default_detector",
]
