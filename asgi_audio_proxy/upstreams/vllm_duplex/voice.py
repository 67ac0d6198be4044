"""The assistant's reference voice, as the duplex session's ``ref_audio`` data URL.

Owns: the voice sent when the operator gives none (MiniCPM-o's duplex preset refuses a session
without one: ``ref_audio_required``): one second of a soft vowel-like sound, made in memory the
first time it is asked for (no file shipped, nothing done on import), and the data URL of any
WAV. Must not: read files or do I/O.
"""

from __future__ import annotations

import base64
import functools

import numpy as np

from ...audio.wav import pcm16_to_wav

__all__ = ["DEFAULT_VOICE_RATE_HZ", "default_reference_voice", "wav_data_url"]

DEFAULT_VOICE_RATE_HZ = 16_000
#: a voice-like spectrum: a 140 Hz fundamental with falling harmonics, under a slow envelope
_FUNDAMENTAL_HZ = 140.0
_HARMONICS = (1.0, 0.5, 0.35, 0.2, 0.1)


def wav_data_url(wav: bytes) -> str:
    """``data:audio/wav;base64,...`` for a WAV file's bytes."""
    return "data:audio/wav;base64," + base64.b64encode(wav).decode("ascii")


@functools.cache
def default_reference_voice() -> bytes:
    """One second of a soft synthetic voice, as a 16 kHz PCM16 WAV (made once, then kept)."""
    t = np.arange(DEFAULT_VOICE_RATE_HZ) / DEFAULT_VOICE_RATE_HZ
    wave = sum(level * np.sin(2 * np.pi * _FUNDAMENTAL_HZ * (n + 1) * t)
               for n, level in enumerate(_HARMONICS))
    envelope = np.sin(np.pi * t) ** 2
    samples = 0.25 * 32767 * envelope * wave / sum(_HARMONICS)
    return pcm16_to_wav(samples.astype("<i2").tobytes(), DEFAULT_VOICE_RATE_HZ)
