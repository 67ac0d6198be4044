"""The demo page in headless Chromium, interrupted by voice: its fake microphone speaks over the
reply (``espeak-ng`` speech), the proxy cuts the reply, the page stops playback at once and its
transcript shows the interruption. Every wait is a condition on ``window.demoStats``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from asgi_audio_proxy.audio import pcm16_to_wav
from asgi_audio_proxy.demo.server import DemoServer
from tests.signals import silence, tone
from tests.test_browser import CHROMIUM, demo_page
from tests.timing import within
from tests.vad.speech import SpeechBank, espeak_missing_reason, to_pcm

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
    pytest.mark.skipif(espeak_missing_reason() is not None, reason=espeak_missing_reason() or ""),
]


async def test_talking_over_the_reply_stops_it_and_the_transcript_says_so(tmp_path: Path) -> None:
    speech = SpeechBank(tmp_path).utterance("No, wait, stop. Let me say something else.").samples
    # a turn (2.5 s tone, then quiet so the model's VAD ends it), then, while the reply is still
    # being made and played, the user talks over it
    microphone = (tone(440.0, 2.5) + silence(1.6) + to_pcm(0.5 * speech / np.abs(speech).max())
                  + silence(3.0))
    wav = tmp_path / "microphone.wav"
    wav.write_bytes(pcm16_to_wav(microphone))
    ms = round(within(25) * 1000)
    async with DemoServer(port=0) as demo, \
            demo_page(demo, wav, "?processing=off&transport=websocket", ms) as (page, errors):
        await page.click("#talk")
        await page.wait_for_function("demoStats.interruptions.length >= 1", timeout=ms)
        await page.wait_for_function("demoStats.stops.some((s) => s.voice)", timeout=ms)
        stats = await page.evaluate("demoStats")
        meta = await page.locator("#transcript li.assistant.interrupted .meta").first.inner_text()
    assert errors == []
    assert "you interrupted it" in meta
    assert any(s["type"] == "speech_started" for s in stats["speech"])
    cut = next(s for s in stats["stops"] if s["voice"])
    assert cut["silentAfterMs"] < 300, cut  # playback went silent as soon as the cut arrived
    assert any(t["reason"] == "stopped" for t in stats["turns"])
