"""Test signals and their measurements: tones, silence, dominant frequency."""

from __future__ import annotations

import numpy as np

__all__ = ["dominant_frequency_hz", "level_db", "silence", "tone"]


def tone(freq_hz: float, seconds: float, rate_hz: int = 16_000, amplitude: float = 0.3) -> bytes:
    """A PCM16 sine, phase 0 at the start."""
    t = np.arange(round(rate_hz * seconds)) / rate_hz
    return (amplitude * 32767 * np.sin(2 * np.pi * freq_hz * t)).astype("<i2").tobytes()


def silence(seconds: float, rate_hz: int = 16_000) -> bytes:
    return bytes(2 * round(rate_hz * seconds))


def dominant_frequency_hz(pcm: bytes, rate_hz: int = 16_000) -> float:
    """The strongest frequency in PCM16, to within a fraction of a bin (Hann window)."""
    x = np.frombuffer(pcm, "<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    k = int(np.argmax(spectrum[1:])) + 1
    if 1 <= k < len(spectrum) - 1:  # parabolic interpolation around the peak
        a, b, c = np.log(spectrum[k - 1 : k + 2] + 1e-12)
        k += 0.5 * (a - c) / (a - 2 * b + c)
    return float(k * rate_hz / len(x))


def level_db(pcm: bytes) -> float:
    """RMS level in dB relative to full scale."""
    x = np.frombuffer(pcm, "<i2").astype(np.float64) / 32768
    return float(20 * np.log10(np.sqrt(np.mean(x**2)) + 1e-12))
