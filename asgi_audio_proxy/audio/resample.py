"""The stateful anti-aliased resampler: one per stream, history kept across chunks.

Owns: a Kaiser-windowed sinc polyphase FIR for PCM16 mono between any two integer rates
(24 kHz replies to 16 kHz, 24/8 kHz client audio to the upstream's rate). Must not: import
asyncio or a network library, or read a clock.
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction

import numpy as np

__all__ = ["Resampler"]


#: Kaiser design targets: 80 dB stop band; pass band to 7/16 of the lower Nyquist (7 kHz at 16 kHz)
_STOPBAND_DB = 80.0
_PASS_FRACTION = 0.4375
#: the filter's samples and taps: float64, whose sums of 16-bit samples are exact to far below
#: the rounding to 16 bits, so the output is the same whatever order a BLAS library sums in
_FLOAT = np.float64
#: input samples taken through the filter at a time: np.dot copies the windows (their width
#: times the output periods), and a reply's 0.53 s chunk whole made that copy 4 MB, out of the cache
_BLOCK = 2048
#: bytes per sample of the filter's buffer
_ITEM = np.dtype(_FLOAT).itemsize


class Resampler:
    """Stateful windowed-sinc polyphase resampler for PCM16 mono, one per stream.

    History is kept across :meth:`feed` calls, so chunked input gives the same output as one
    call (no clicks at chunk boundaries). Equal rates pass through untouched.

    Args:
        in_rate_hz: rate of what is fed.
        out_rate_hz: rate of what comes out.
    """

    def __init__(self, in_rate_hz: int, out_rate_hz: int) -> None:
        if in_rate_hz <= 0 or out_rate_hz <= 0:
            raise ValueError(f"rates must be positive, got {in_rate_hz} -> {out_rate_hz}")
        self.in_rate_hz, self.out_rate_hz = in_rate_hz, out_rate_hz
        ratio = Fraction(out_rate_hz, in_rate_hz)
        self._up, self._down = ratio.numerator, ratio.denominator
        self._passthrough = ratio == 1
        self._taps, self._bank = _design(in_rate_hz, out_rate_hz)
        # input kept from one piece to the next: what the oldest window still needing output
        # reaches back to (a period's first output may lie before the next output due)
        self._keep = self._taps + self._down
        self._history = np.zeros(self._keep, dtype=_FLOAT)
        self._tail = np.zeros(2 * self._down, dtype=_FLOAT)  # past the input, for the last period
        self._consumed = 0  # input samples fed so far
        self._produced = 0  # output samples emitted so far
        self._odd = b""

    @property
    def delay_s(self) -> float:
        """Group delay the filter adds, in seconds."""
        return 0.0 if self._passthrough else (self._taps * self._up - 1) / 2 / (self.in_rate_hz * self._up)

    def feed(self, pcm: bytes) -> bytes:
        """Resample the next piece of the stream; returns PCM16 at ``out_rate_hz``."""
        if self._odd:
            pcm, self._odd = self._odd + pcm, b""
        if len(pcm) % 2:
            pcm, self._odd = pcm[:-1], pcm[-1:]
        if self._passthrough:
            return bytes(pcm)
        x = np.frombuffer(pcm, dtype="<i2").astype(_FLOAT)
        if len(x) <= _BLOCK:
            return self._run(x)
        return b"".join(self._run(x[i:i + _BLOCK]) for i in range(0, len(x), _BLOCK))

    def flush(self) -> bytes:
        """Push out the filter's tail (call once, at the end of the stream)."""
        if self._passthrough:
            return b""
        return self._run(np.zeros(self._taps, dtype=_FLOAT))

    def _run(self, x: np.ndarray) -> bytes:
        """Outputs are computed a period at a time: the ``up`` outputs from a multiple of ``up``
        on read windows that start ``down`` input samples apart, each the same ``width``, so one
        matrix product with the bank (a column per output of the period, each phase's taps at
        its place in the window) gives them all, already in order."""
        up, down, keep = self._up, self._down, self._keep
        buf = np.concatenate((self._history, x, self._tail))
        offset = self._consumed - keep  # absolute input index of buf[0]
        self._consumed += len(x)
        # output j uses input samples up to index (j * down) // up
        end = -(-(self._consumed * up) // down)  # first j needing unseen input
        start = self._produced
        self._produced = end
        self._history = buf[len(x) : len(x) + keep]
        if end <= start:
            return b""
        period = start - start % up  # outputs before ``start`` and from ``end`` are dropped
        oldest = (period // up) * down - self._taps + 1 - offset
        width = self._bank.shape[0]
        rows = np.ndarray((-(-(end - period) // up), width), _FLOAT, buffer=buf,
                          offset=oldest * _ITEM, strides=(down * _ITEM, _ITEM))
        y: np.ndarray = np.dot(rows, self._bank).ravel()[start - period : end - period]
        np.rint(y, out=y)
        np.minimum(y, 32767, out=y)  # ufuncs: np.clip's Python wrapper cost more than the clip
        np.maximum(y, -32768, out=y)
        return y.astype("<i2").tobytes()


@functools.cache
def _design(in_rate_hz: int, out_rate_hz: int) -> tuple[int, np.ndarray]:
    """Taps per phase, and the bank: for output ``i`` of a period (``0 <= i < up``), column
    ``i`` holds its phase's taps from row ``(i * down) // up``, where its window starts within
    the period's; zeros elsewhere. One per pair of rates in the process, read-only."""
    ratio = Fraction(out_rate_hz, in_rate_hz)
    up, down = ratio.numerator, ratio.denominator
    phases, taps = _design_polyphase(in_rate_hz, out_rate_hz, up)
    bank = np.zeros((taps + down - 1, up), dtype=_FLOAT)
    for i in range(up):
        lead = (i * down) // up
        bank[lead : lead + taps, i] = phases[(i * down) % up]
    bank.flags.writeable = False
    return taps, bank


def _design_polyphase(in_rate_hz: int, out_rate_hz: int, up: int) -> tuple[np.ndarray, int]:
    """Kaiser-windowed sinc prototype split into ``up`` reversed phases of equal length."""
    nyquist = min(in_rate_hz, out_rate_hz) / 2
    pass_hz, stop_hz = _PASS_FRACTION * 2 * nyquist, nyquist
    fs = in_rate_hz * up
    width = 2 * math.pi * (stop_hz - pass_hz) / fs
    length = math.ceil((_STOPBAND_DB - 7.95) / (2.285 * width)) + 1
    taps = -(-length // up)
    n = np.arange(taps * up) - (taps * up - 1) / 2
    cutoff = (pass_hz + stop_hz) / 2 / fs  # cycles per sample
    beta = 0.1102 * (_STOPBAND_DB - 8.7)
    proto = 2 * cutoff * np.sinc(2 * cutoff * n) * np.kaiser(taps * up, beta) * up
    # phase p holds h[p + i*up]; reversed so a window (oldest first) dots with it directly
    phases = np.stack([proto[p::up][::-1] for p in range(up)]).astype(_FLOAT)
    return phases, taps
