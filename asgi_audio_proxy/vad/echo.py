"""The reply's echo: how much of a microphone frame the reply the proxy just played cannot explain.

Owns: :class:`EchoReference`, the reply audio laid out on the input audio clock as it would play, in
band powers (20 bands, 100 Hz to 8 kHz, 16 ms blocks at the reply's own rate, so no resampling), and
:meth:`EchoReference.unexplained_share`, a frame's share of energy above the loudest echo the reply
could have sent back in the last ``max_delay_ms``, band by band, plus the noise floor. A phone on
speaker returns the reply filtered, delayed and reverberant: comparing band powers against a delay
window survives all three, where a waveform correlation or an echo canceller would need the exact
playout clock, which the proxy does not have.

The echo gain starts at the loudest echo assumed (``loss_db`` below the reply) and, once 0.15 s of
frames that can only be echo have been heard, is learned per band as the 90th percentile of the
last 3 s of echo-to-reply ratios (plus a margin, and until 1 s has been heard, plus their spread),
never above the assumption: a quiet echo then lets quieter speech through, and soon: a user who
talks 0.45 s into a reply is heard against the echo measured, not the loudest one assumed. A frame
teaches only once the reply has played for the whole ``max_delay_ms`` before it, so the echo has
certainly arrived: a frame heard before a late echo would teach a gain far too low.

Must not: do I/O or read a clock. One per session.
"""

from __future__ import annotations

from collections import deque
from functools import cache

import numpy as np

__all__ = ["EchoReference"]

#: band edges (Hz), about a Bark apart: two voices rarely fill the same bands at the same moment
_EDGES_HZ = (100, 200, 300, 400, 510, 630, 770, 920, 1080, 1270, 1480, 1720, 2000, 2320, 2700, 3150, 3700)
_EDGES_HZ_HIGH = (4400, 5300, 6400, 7700, 8000)
_BANDS = len(_EDGES_HZ) + len(_EDGES_HZ_HIGH) - 1
#: reference block: 16 ms, fine enough to follow syllables, 62.5 Hz bins for the lowest bands
_BLOCK_S = 0.016
#: the reply this far ahead of playback is kept (a whole reply sent in one burst); more is not compared
_MAX_AHEAD_BLOCKS = int(120 / _BLOCK_S)
#: learning the echo gain: this much echo heard first (four Silero frames), then a percentile over
#: a recent window; sooner than a second, since users talk over the first words of a reply
_LEARN_AFTER_FRAMES_S = 0.15
_LEARN_WINDOW_S = 3.0
#: until this much has been heard, the learned gain is widened by this many standard errors of the
#: ratios (in dB): a steady echo is learned at once, a varying one (speech) only as more of it is heard
_TRUST_AFTER_FRAMES_S = 1.0
_EARLY_SPREAD = 4.0
_LEARN_PERCENTILE = 90.0
#: the learned gain gets this margin (dB) for the frames where the echo peaks above the percentile
_LEARN_MARGIN_DB = 6.0
#: a reference quieter than this (power, full scale 1.0: -60 dBFS) is silence: nothing to learn from
_SILENT_POWER = 1e-6
#: a room's reverberation outlasts the delay by this much
_TAIL_S = 0.15
#: echo delay: each 16 ms lag scored by how well the reply's band envelopes follow the microphone's
#: over the last 2 s of echo; trusted after 20 frames (0.64 s at Silero's 32 ms), then the reply is
#: compared within two lags (32 ms) either side of the best
_DELAY_WINDOW_S = 2.0
_DELAY_SETTLED_FRAMES = 20
_DELAY_SPREAD = 2
#: and up to 80 ms later: the room's reflections
_REVERB_LAGS = 5
#: the delay scores and the learned gain are recomputed every this many frames (~130 ms): they
#: move slowly, and recomputing them is most of this module's cost
_RESCORE_EVERY = 4
#: only frames this little beyond the echo teach its gain: the client's own voice must not
_LEARN_BELOW_SHARE = 0.3
#: the microphone's noise floor per band: the quietest frame of the last 2 s, doubled for its spread
_FLOOR_WINDOW_S = 2.0
_FLOOR_MARGIN = 2.0


@cache
def _band_matrix(size: int, rate_hz: int) -> np.ndarray:
    """(bins, bands) 0/1 matrix summing an rfft's bins into bands, scaled to power per sample."""
    edges = np.array(_EDGES_HZ + _EDGES_HZ_HIGH, dtype=np.float64)
    frequencies = np.fft.rfftfreq(size, 1 / rate_hz)
    band = np.searchsorted(edges, frequencies, side="right") - 1
    matrix = np.zeros((len(frequencies), _BANDS))
    inside = (band >= 0) & (band < _BANDS)
    matrix[np.flatnonzero(inside), band[inside]] = 1.0
    window = _window(size)
    # Parseval, one-sided: a band's power per sample, whatever the block size and rate
    return matrix * 2.0 / (size * float(np.sum(window * window)))


@cache
def _window(size: int) -> np.ndarray:
    """The Hann window, made once per size: every frame of every session uses it."""
    window = np.hanning(size)
    window.flags.writeable = False
    return window


def band_powers(samples: np.ndarray, rate_hz: int) -> np.ndarray:
    """Each row of ``samples`` (float, full scale 1.0) as its power in the 20 bands."""
    size = samples.shape[-1]
    spectrum = np.fft.rfft(samples * _window(size), axis=-1)
    return np.asarray((spectrum.real**2 + spectrum.imag**2) @ _band_matrix(size, rate_hz))


class EchoReference:
    """The reply as played, on the input clock, and the test of a microphone frame against it.

    Args:
        input_rate_hz: the microphone's sample rate (the input clock's unit).
        max_delay_ms: the longest echo delay considered (network, playout buffer, air).
        loss_db: the loudest echo assumed, in dB below the reply, until it has been measured.
        frame_samples: the microphone frame size the caller analyses.
    """

    def __init__(self, input_rate_hz: int, max_delay_ms: float, loss_db: float, frame_samples: int) -> None:
        self._rate = input_rate_hz
        self._max_delay = int(max_delay_ms * input_rate_hz / 1000)
        self._prior_gain = 10 ** (-loss_db / 10)
        frames_per_s = input_rate_hz / frame_samples
        self._learn_after = int(_LEARN_AFTER_FRAMES_S * frames_per_s)
        self._trust_after = int(_TRUST_AFTER_FRAMES_S * frames_per_s)
        self._ratios: deque[np.ndarray] = deque(maxlen=int(_LEARN_WINDOW_S * frames_per_s))
        # the last 2 s of band powers, a ring: its minimum each frame, without stacking a deque
        self._quiet = np.empty((int(_FLOOR_WINDOW_S * frames_per_s), _BANDS))
        self._quiet_count = 0
        self._starts: deque[float] = deque()
        self._blocks: deque[np.ndarray] = deque()
        self._cursor = 0.0
        self._pending = np.empty(0)
        self._pending_rate = 0
        block = input_rate_hz * _BLOCK_S
        self._lags = np.arange(0.0, self._max_delay + block / 2, block)
        self._delay_scores = np.zeros(len(self._lags))
        self._delay_votes = 0
        self._since_scored = 0
        self._learned: np.ndarray | None = None
        self._since_learned = 0
        self._heard: deque[np.ndarray] = deque(maxlen=int(_DELAY_WINDOW_S * frames_per_s))
        self._played: deque[np.ndarray] = deque(maxlen=int(_DELAY_WINDOW_S * frames_per_s))

    @property
    def plays_until(self) -> float:
        """The input-clock sample at which the reply's echo has certainly died away."""
        return self._cursor + self._max_delay + self._rate * _TAIL_S

    def play(self, pcm: bytes, rate_hz: int, now: int) -> None:
        """Lay reply audio out after what is already queued, no earlier than ``now`` (input samples)."""
        if rate_hz != self._pending_rate:
            self._pending = np.empty(0)
            self._pending_rate = rate_hz
        usable = len(pcm) // 2 * 2
        samples = np.frombuffer(pcm[:usable], dtype="<i2").astype(np.float64) / 32768.0
        self._pending = np.concatenate([self._pending, samples])
        block = round(rate_hz * _BLOCK_S)
        whole = len(self._pending) // block
        if whole == 0:
            return
        powers = band_powers(self._pending[: whole * block].reshape(whole, block), rate_hz)
        self._pending = self._pending[whole * block :].copy()  # not a view keeping the whole append
        self._cursor = max(self._cursor, float(now))
        step = block / rate_hz * self._rate
        for row in powers:
            if len(self._blocks) < _MAX_AHEAD_BLOCKS:
                self._starts.append(self._cursor)
                self._blocks.append(row)
            self._cursor += step

    def cut(self, now: int) -> None:
        """The client dropped what it had not played: forget the reply past ``now``."""
        while self._starts and self._starts[-1] >= now:
            self._starts.pop()
            self._blocks.pop()
        self._cursor = min(self._cursor, float(now))
        self._pending = np.empty(0)

    def observe(self, frame: np.ndarray, start: int, powers: np.ndarray | None = None) -> float:
        """Take one microphone frame (float, full scale 1.0) starting at input sample ``start``.

        ``powers``: the frame's :func:`band_powers`, if already taken (a batch takes them for
        all its frames at once).

        Returns:
            The share, 0 to 1, of the frame's energy that neither the reply's echo nor the
            noise floor explains: near 0 for echo alone, near 1 for a voice well above it.
        """
        if powers is None:
            powers = band_powers(frame, self._rate)
        self._quiet[self._quiet_count % len(self._quiet)] = powers
        self._quiet_count += 1
        total = float(np.sum(powers))
        end = start + len(frame)
        block = self._rate * _BLOCK_S
        while self._starts and self._starts[0] < start - self._max_delay - block:
            self._starts.popleft()
            self._blocks.popleft()
        if not self._starts:  # no reply to compare with (the common case): nothing but the floor
            return 1.0 if total > 0 else 0.0
        starts = np.fromiter(self._starts, dtype=np.float64, count=len(self._starts))
        live = starts < end
        if not np.any(live):
            return 1.0 if total > 0 else 0.0
        starts = starts[live]
        blocks = np.stack([row for row, keep in zip(self._blocks, live, strict=False) if keep])
        # the reply as heard ``lag`` ago, for each lag: the blocks overlapping the shifted frame
        shifted_end = end - self._lags[:, None]
        overlap = (starts[None, :] < shifted_end) & (starts[None, :] + block > shifted_end - len(frame))
        if self._delay_votes >= _DELAY_SETTLED_FRAMES:
            best = int(np.argmax(self._delay_scores))
            near = slice(max(0, best - _DELAY_SPREAD), best + _REVERB_LAGS + 1)
            candidates = np.any(overlap[near], axis=0)
        else:
            candidates = np.any(overlap, axis=0)
        if not np.any(candidates):
            return 1.0 if total > 0 else 0.0
        heard = self._quiet[: min(self._quiet_count, len(self._quiet))]
        floor = np.min(heard, axis=0) * _FLOOR_MARGIN
        reference = np.max(blocks[candidates], axis=0)
        gain = self._gain()
        excess = float(np.sum(np.maximum(powers - (gain * reference + floor), 0.0))) / max(total, 1e-20)
        # every lag has reply to compare with: the echo has arrived, however late it comes back
        covered = bool(np.all(np.any(overlap, axis=1)))
        if covered and float(np.sum(reference)) > _SILENT_POWER and excess < _LEARN_BELOW_SHARE:
            # echo alone, as far as we can tell: learn where and how loud it comes back
            self._track_delay(powers, overlap, blocks, floor)
            self._ratios.append(np.minimum(powers / np.maximum(reference, 1e-20), self._prior_gain))
        return excess

    def _track_delay(
        self, powers: np.ndarray, overlap: np.ndarray, blocks: np.ndarray, floor: np.ndarray
    ) -> None:
        """Score each lag by how well the reply's band envelopes then follow the frame's over time."""
        counts = overlap.sum(axis=1)
        shifted = (overlap.astype(np.float64) @ blocks) / counts[:, None]
        # kept as float32 (2 s of lags by bands: 94 KiB, half of float64), computed in float64
        self._heard.append(np.log10(powers + floor + 1e-12).astype(np.float32))
        self._played.append(np.log10(shifted + floor + 1e-12).astype(np.float32))
        self._since_scored += 1
        if len(self._heard) < _DELAY_SETTLED_FRAMES or self._since_scored < _RESCORE_EVERY:
            return
        self._since_scored = 0
        heard = np.stack(self._heard).astype(np.float64)
        played = np.stack(self._played).astype(np.float64)
        heard = heard - heard.mean(axis=0)
        played = played - played.mean(axis=0)
        # Pearson over time, per lag and band, averaged over the bands
        covariance = np.einsum("tb,tlb->lb", heard, played)
        spread = np.sqrt(
            np.einsum("tb,tb->b", heard, heard)[None, :] * np.einsum("tlb,tlb->lb", played, played)
        )
        self._delay_scores = np.mean(covariance / np.maximum(spread, 1e-12), axis=1)
        self._delay_votes = len(self._heard)

    def _gain(self) -> np.ndarray:
        if len(self._ratios) < self._learn_after:
            return np.full(_BANDS, self._prior_gain)
        self._since_learned += 1
        if self._learned is None or self._since_learned >= _RESCORE_EVERY:
            ratios_db = 10 * np.log10(np.maximum(np.stack(self._ratios), 1e-20))
            learned_db = np.percentile(ratios_db, _LEARN_PERCENTILE, axis=0) + _LEARN_MARGIN_DB
            if len(ratios_db) < self._trust_after:
                # a few frames say little about the echo's peaks unless they agree: widen by their spread
                learned_db += _EARLY_SPREAD * np.std(ratios_db, axis=0) / np.sqrt(len(ratios_db))
            self._learned = np.minimum(10 ** (learned_db / 10), self._prior_gain)
            self._since_learned = 0
        return self._learned
