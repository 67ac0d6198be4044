"""A voice session's memory: the detector's model is the process's, the session keeps its windows only."""

from __future__ import annotations

import gc
import tracemalloc

import numpy as np

from asgi_audio_proxy.config import ProxyConfig
from asgi_audio_proxy.events import ReplyAudio, ReplyStarted
from asgi_audio_proxy.session.voice import VoiceWatch

#: the goal per voice session
BUDGET_KIB = 256


def _heard_its_echo(config: ProxyConfig) -> VoiceWatch:
    """After 3 s of a reply coming back as echo, every window the ear keeps on the echo is full."""
    rng = np.random.default_rng(2)
    played = rng.standard_normal(48_000) * 3000
    echo = np.concatenate([np.zeros(1_280), played[:-1_280] / 4]) + rng.standard_normal(48_000) * 30
    reply, mic = played.astype("<i2").tobytes(), echo.astype("<i2").tobytes()
    watch = VoiceWatch(config.voice)
    watch.sent(ReplyStarted())
    for offset in range(0, len(reply), 6_400):
        watch.sent(ReplyAudio(reply[offset : offset + 6_400], 16_000))
    for offset in range(0, len(mic), 640):
        watch.heard(mic[offset : offset + 640], 16_000)
    return watch


def test_a_voice_session_holds_less_than_256_kib() -> None:
    config = ProxyConfig(barge_in="voice")
    _heard_its_echo(config)  # the model is loaded once, before counting
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = [_heard_its_echo(config) for _ in range(3)]
        gc.collect()
        per_session_kib = (tracemalloc.get_traced_memory()[0] - before) / 1024 / len(kept)
    finally:
        tracemalloc.stop()
    assert 50 < per_session_kib < BUDGET_KIB  # the windows are there, and the model is not
