"""Resampler figures: alias rejection, passband ripple, delay and speed, ours beside ``soxr``.

Owns: the 24 kHz -> 16 kHz quality and speed measurements, run on the same signals for the
project's :class:`~asgi_audio_proxy.audio.Resampler` and, when it is installed,
``soxr.ResampleStream`` (its default "HQ" quality), so the choice between them rests on figures.
Must not: do I/O or start processes.

How each figure is taken:

- *alias rejection*: a tone at 0.5 full scale, swept from 8.2 to 11.8 kHz in 200 Hz steps, is
  fed in 12 800-sample pieces (one 2.6 reply chunk); the output's amplitude at the alias
  frequency (16 kHz minus the tone) is found by a least-squares sine fit over the steady part.
  The figure is the worst tone's ratio of input to alias amplitude, in dB.
- *passband ripple*: the same fit at the tone's own frequency, tones 100 Hz to 7 kHz; the figure
  is the peak-to-peak spread of the gains, in dB.
- *delay*: a single click fed through; its output peak (parabolic interpolation) against where
  an ideal delay-free resampler would put it, in milliseconds. *held back* is how much input the
  stream keeps to itself after a chunk (audio a client cannot hear yet), also in milliseconds.
- *speed*: 60 s of a voice-like signal (noise shaped to speech spectrum) fed in reply-sized
  pieces, seconds of audio per second of CPU (``time.process_time``), best of three.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from asgi_audio_proxy.audio import Resampler

__all__ = ["ResamplerFigures", "measure_resamplers"]

IN_RATE_HZ = 24_000
OUT_RATE_HZ = 16_000
#: one reply chunk of the 2.6 upstream (section 4.2): 12 800 samples at 24 kHz
REPLY_CHUNK_SAMPLES = 12_800
_AMPLITUDE = 0.5 * 32767

Feeder = Callable[[], "StreamResampler"]


class StreamResampler:
    """The one interface both resamplers are measured through: PCM16 bytes in and out."""

    def __init__(self, feed: Callable[[bytes], bytes], flush: Callable[[], bytes]) -> None:
        self.feed, self.flush = feed, flush


def _ours() -> StreamResampler:
    r = Resampler(IN_RATE_HZ, OUT_RATE_HZ)
    return StreamResampler(r.feed, r.flush)


def _soxr() -> StreamResampler:
    import soxr

    stream = soxr.ResampleStream(IN_RATE_HZ, OUT_RATE_HZ, 1, dtype="int16")

    def feed(pcm: bytes) -> bytes:
        return bytes(stream.resample_chunk(np.frombuffer(pcm, "<i2")).tobytes())

    def flush() -> bytes:
        return bytes(stream.resample_chunk(np.zeros(0, "<i2"), last=True).tobytes())

    return StreamResampler(feed, flush)


@dataclass(frozen=True)
class ResamplerFigures:
    """One resampler's figures (see the module docstring for how each is taken)."""

    name: str
    alias_rejection_db: float
    worst_alias_tone_hz: float
    passband_ripple_db: float
    passband_gain_db: float
    delay_ms: float
    held_back_ms: float
    speed_x_realtime: float

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _run(make: Feeder, x: np.ndarray, piece: int = REPLY_CHUNK_SAMPLES) -> np.ndarray:
    stream = make()
    pcm = np.clip(np.rint(x), -32768, 32767).astype("<i2").tobytes()
    out = [stream.feed(pcm[i : i + 2 * piece]) for i in range(0, len(pcm), 2 * piece)]
    out.append(stream.flush())
    return np.frombuffer(b"".join(out), "<i2").astype(np.float64)


def _amplitude(y: np.ndarray, freq_hz: float, rate_hz: int) -> float:
    """Least-squares amplitude of a sine at ``freq_hz`` in ``y``."""
    t = np.arange(len(y)) / rate_hz
    basis = np.stack([np.sin(2 * math.pi * freq_hz * t), np.cos(2 * math.pi * freq_hz * t),
                      np.ones_like(t)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, y, rcond=None)
    return float(math.hypot(coef[0], coef[1]))


def _tone_response(make: Feeder, freq_hz: float, seconds: float = 1.0) -> tuple[float, float]:
    """(gain at the tone, amplitude at its alias) for one tone, steady part only."""
    n = int(IN_RATE_HZ * seconds)
    x = _AMPLITUDE * np.sin(2 * math.pi * freq_hz * np.arange(n) / IN_RATE_HZ)
    y = _run(make, x)
    steady = y[OUT_RATE_HZ // 10 : int(OUT_RATE_HZ * seconds) - OUT_RATE_HZ // 10]
    alias_hz = OUT_RATE_HZ - freq_hz
    return (_amplitude(steady, freq_hz, OUT_RATE_HZ) / _AMPLITUDE if freq_hz < OUT_RATE_HZ / 2
            else 0.0, _amplitude(steady, alias_hz, OUT_RATE_HZ) if alias_hz > 0 else 0.0)


def _delay_ms(make: Feeder) -> float:
    n, at = IN_RATE_HZ, IN_RATE_HZ // 2  # a click at 0.5 s
    x = np.zeros(n)
    x[at] = 30_000.0
    y = _run(make, x)
    k = int(np.argmax(np.abs(y)))
    if 0 < k < len(y) - 1:  # parabolic interpolation of the peak
        a, b, c = y[k - 1], y[k], y[k + 1]
        k_frac = k + 0.5 * (a - c) / (a - 2 * b + c) if (a - 2 * b + c) else float(k)
    else:
        k_frac = float(k)
    return (k_frac / OUT_RATE_HZ - at / IN_RATE_HZ) * 1000


def _held_back_ms(make: Feeder) -> float:
    stream = make()
    piece = bytes(2 * REPLY_CHUNK_SAMPLES)
    produced = sum(len(stream.feed(piece)) // 2 for _ in range(3))
    expected = 3 * REPLY_CHUNK_SAMPLES * OUT_RATE_HZ / IN_RATE_HZ
    return (expected - produced) / OUT_RATE_HZ * 1000


def voice_like(seconds: float, rate_hz: int = IN_RATE_HZ, seed: int = 1) -> np.ndarray:
    """Noise with a speech-like spectrum (energy falling above 1 kHz), about -12 dBFS."""
    rng = np.random.default_rng(seed)
    n = int(rate_hz * seconds)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / rate_hz)
    spectrum /= 1 + (f / 1000) ** 2
    x = np.fft.irfft(spectrum, n)
    return x / np.max(np.abs(x)) * 8000


def _speed(make: Feeder, seconds: float) -> float:
    pcm = np.clip(np.rint(voice_like(seconds)), -32768, 32767).astype("<i2").tobytes()
    pieces = [pcm[i : i + 2 * REPLY_CHUNK_SAMPLES] for i in range(0, len(pcm), 2 * REPLY_CHUNK_SAMPLES)]
    best = math.inf
    for _ in range(3):
        stream = make()
        started = time.process_time()
        for piece in pieces:
            stream.feed(piece)
        stream.flush()
        best = min(best, time.process_time() - started)
    return seconds / max(best, 1e-9)


def _figures(name: str, make: Feeder, *, quick: bool) -> ResamplerFigures:
    alias_tones = np.arange(8200.0, 11_801.0, 400.0 if quick else 200.0)
    worst_db, worst_hz = math.inf, 0.0
    for f in alias_tones:
        _, alias = _tone_response(make, float(f))
        db = 20 * math.log10(_AMPLITUDE / max(alias, 1e-9))
        if db < worst_db:
            worst_db, worst_hz = db, float(f)
    pass_tones = np.linspace(100.0, 7000.0, 12 if quick else 36)
    gains = [20 * math.log10(_tone_response(make, float(f))[0]) for f in pass_tones]
    return ResamplerFigures(
        name=name,
        alias_rejection_db=round(worst_db, 1),
        worst_alias_tone_hz=worst_hz,
        passband_ripple_db=round(max(gains) - min(gains), 4),
        passband_gain_db=round(float(np.mean(gains)), 4),
        delay_ms=round(_delay_ms(make), 3),
        held_back_ms=round(_held_back_ms(make), 3),
        speed_x_realtime=round(_speed(make, 10.0 if quick else 60.0), 1),
    )


def measure_resamplers(*, quick: bool) -> list[ResamplerFigures]:
    """Figures for our resampler and, if importable, ``soxr`` (HQ)."""
    results = [_figures("ours (Kaiser polyphase, numpy)", _ours, quick=quick)]
    try:
        import soxr  # noqa: F401
    except ImportError:
        return results
    results.append(_figures("soxr HQ (ResampleStream)", _soxr, quick=quick))
    return results
