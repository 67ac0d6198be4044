"""The command-line test client: generated, file or microphone audio, live transcript.
"""

from __future__ import annotations

from .audio import (
    FRAME_BYTES,
    FRAME_S,
    SPEECH_RMS,
    generated_utterance,
    is_loud,
    mix_to_16k_mono,
    silence,
    split_frames,
    wav_file_to_16k_mono,
)
from .console import Console
from .talk import TalkFailed, TalkOptions, talk
from .turns import TurnEndReason, TurnPhase, TurnResult, TurnTracker

__all__ = [
    "FRAME_BYTES",
    "FRAME_S",
    "SPEECH_RMS",
    "Console",
    "TalkFailed",
    "TalkOptions",
    "TurnEndReason",
    "TurnPhase",
    "TurnResult",
    "TurnTracker",
    "generated_utterance",
    "is_loud",
    "mix_to_16k_mono",
    "silence",
    "split_frames",
    "talk",
    "wav_file_to_16k_mono",
]
