"""Pure audio: WAV framing and base64, the 200 ms chunk buffer, the stateful resampler.

No I/O, no clock: bytes in, bytes out.
"""

from __future__ import annotations

from .buffer import ChunkBuffer
from .resample import Resampler
from .wav import (
    CLIENT_SAMPLE_RATE_HZ,
    MESSAGE_BYTES,
    MESSAGE_SAMPLES,
    AudioFormatError,
    WavAudio,
    b64decode_strict,
    pcm16_to_wav,
    wav_to_pcm16,
)

__all__ = [
    "CLIENT_SAMPLE_RATE_HZ",
    "MESSAGE_BYTES",
    "MESSAGE_SAMPLES",
    "AudioFormatError",
    "ChunkBuffer",
    "Resampler",
    "WavAudio",
    "b64decode_strict",
    "pcm16_to_wav",
    "wav_to_pcm16",
]
