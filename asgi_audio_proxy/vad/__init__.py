"""Voice activity on the client's audio: frame-level detectors and the voice barge-in decision."""

from __future__ import annotations

from .detector import (
    DETECTOR_RATE_HZ,
    EnergyDetector,
    MissingVadExtra,
    SileroDetector,
    SpeechDetector,
    default_detector,
)

__all__ = [
    "DETECTOR_RATE_HZ",
    "EnergyDetector",
    "MissingVadExtra",
    "SileroDetector",
    "SpeechDetector",
    "default_detector",
]
