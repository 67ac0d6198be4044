"""Shared parts of the voice-agent framework tests: the proxy in front of the simulator on
loopback, and real speech (``espeak-ng``) at 24 kHz, the Realtime rate."""

from __future__ import annotations

from pathlib import Path

import pytest

from asgi_audio_proxy.audio.resample import Resampler
from tests.vad.speech import SpeechBank, espeak_missing_reason, to_pcm

RATE_HZ = 24_000


@pytest.fixture(scope="session")
def speech(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    """Two spoken questions, PCM16 mono at 24 kHz."""
    reason = espeak_missing_reason()
    if reason is not None:
        pytest.skip(reason)
    bank = SpeechBank(Path(tmp_path_factory.mktemp("speech")))
    pcm = [to_pcm(bank.utterance(text).samples) for text in ("What is the weather like today?",
                                                              "And what about tomorrow morning?")]
    return [Resampler(16_000, RATE_HZ).feed(clip) for clip in pcm]
