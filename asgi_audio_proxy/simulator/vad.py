"""The simulator's voice-activity detector: an energy stand-in for Silero, with Silero's segmenter.

Owns: the number the upstream's VAD rules are built on (``UPSTREAM_PROTOCOL.md`` section 5.2),
"seconds of speech in the last 1 s window", and the window RMS. Each 1 024-sample window is speech
when its median absolute level is at least :data:`SPEECH_LEVEL` of full scale (the same stand-in
the real-server kit uses); the windows then go through the upstream's own segmentation rules
(on/off thresholds 0.7/0.55, 128 ms minimum speech, 500 ms minimum silence, 30 ms padding), so
the durations match what the real server computes with that stand-in. Also the stand-in model's
"how much of it was sound" measure for reply texts.

Must not: import asyncio or a network library, or read a clock. Pure functions of samples.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "SPEECH_LEVEL",
    "VAD_SAMPLE_RATE_HZ",
    "speech_seconds",
    "voiced_seconds",
    "window_rms",
]

VAD_SAMPLE_RATE_HZ = 16_000
#: median absolute level (full scale 1.0) at which a window counts as speech, about -40 dBFS
SPEECH_LEVEL = 0.01
#: Silero's window, and the upstream's fixed ``VadOptions``
_WINDOW = 1_024
_ON_PROB, _OFF_PROB = 0.7, 0.55
_SPEECH_PROB, _SILENCE_PROB = 0.99, 0.01
_MIN_SPEECH = VAD_SAMPLE_RATE_HZ * 128 // 1000
_MIN_SILENCE = VAD_SAMPLE_RATE_HZ * 500 // 1000
_PAD = VAD_SAMPLE_RATE_HZ * 30 // 1000
#: the stand-in model's sound measure: 20 ms frames with RMS at least this level
_FRAME = 320


def window_rms(samples: np.ndarray) -> float:
    """Root mean square of float samples (full scale 1.0); 0.0 for an empty window."""
    if samples.size == 0:
        return 0.0
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))


def _window_probs(samples: np.ndarray) -> list[float]:
    probs = []
    for start in range(0, len(samples), _WINDOW):
        window = samples[start : start + _WINDOW]
        if len(window) < _WINDOW:
            window = np.pad(window, (0, _WINDOW - len(window)))
        level = float(np.median(np.abs(window)))
        probs.append(_SPEECH_PROB if level >= SPEECH_LEVEL else _SILENCE_PROB)
    return probs


def speech_seconds(samples: np.ndarray) -> float:
    """Seconds of speech the upstream's VAD finds in ``samples`` (float, 16 kHz).

    Segmentation follows the upstream's ``get_speech_timestamps`` with no maximum speech length;
    only the per-window speech probability is the energy stand-in.
    """
    probs = _window_probs(samples)
    length = len(samples)
    speeches: list[list[int]] = []
    triggered, start, temp_end = False, 0, 0
    for i, prob in enumerate(probs):
        pos = _WINDOW * i
        if prob >= _ON_PROB and temp_end:
            temp_end = 0
        if prob >= _ON_PROB and not triggered:
            triggered, start = True, pos
            continue
        if prob < _OFF_PROB and triggered:
            if not temp_end:
                temp_end = pos
            if pos - temp_end < _MIN_SILENCE:
                continue
            if temp_end - start > _MIN_SPEECH:
                speeches.append([start, temp_end])
            triggered, temp_end = False, 0
    if triggered and length - start > _MIN_SPEECH:
        speeches.append([start, length])
    for i, speech in enumerate(speeches):
        if i == 0:
            speech[0] = max(0, speech[0] - _PAD)
        if i != len(speeches) - 1:
            gap = speeches[i + 1][0] - speech[1]
            if gap < 2 * _PAD:
                speech[1] += gap // 2
                speeches[i + 1][0] = max(0, speeches[i + 1][0] - gap // 2)
            else:
                speech[1] = min(length, speech[1] + _PAD)
                speeches[i + 1][0] = max(0, speeches[i + 1][0] - _PAD)
        else:
            speech[1] = min(length, speech[1] + _PAD)
    # the upstream concatenates the slices, so each counts as far as the audio goes
    kept = sum(max(0, min(end, length) - min(begin, length)) for begin, end in speeches)
    return kept / VAD_SAMPLE_RATE_HZ


def voiced_seconds(samples: np.ndarray) -> float:
    """Seconds of ``samples`` (float, 16 kHz) in 20 ms frames whose RMS is at least 0.01."""
    frames = len(samples) // _FRAME
    if frames == 0:
        return 0.0
    shaped = samples[: frames * _FRAME].astype(np.float64).reshape(frames, _FRAME)
    loud = np.sqrt(np.mean(np.square(shaped), axis=1)) >= SPEECH_LEVEL
    return float(np.count_nonzero(loud)) * _FRAME / VAD_SAMPLE_RATE_HZ
