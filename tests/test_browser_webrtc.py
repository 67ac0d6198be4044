"""The demo page over WebRTC in headless Chromium: a whole turn, then the user's voice cuts a reply.

The page calls the demo's ``POST /v1/realtime/calls`` (the default where the browser has
``RTCPeerConnection`` and the demo has the webrtc extra); its microphone is Chromium's fake
capture device playing ``espeak-ng`` speech. The page's record (``window.demoStats``) holds the
data channel's events as the proxy sent them and what its analyser heard on the remote track.
Every wait is a condition on it, under a deadline.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from asgi_audio_proxy.audio import pcm16_to_wav
from asgi_audio_proxy.demo.server import DemoServer
from tests.signals import silence
from tests.test_browser import CHROMIUM, chromium_args, playwright_api
from tests.timing import within
from tests.vad.speech import SpeechBank, espeak_missing_reason, to_pcm

pytestmark = [
    pytest.mark.slow,  # a browser, a call and three utterances: about 20 s
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
    pytest.mark.skipif(espeak_missing_reason() is not None, reason=espeak_missing_reason() or ""),
]
pytest.importorskip("aiortc", reason="needs aiortc (the webrtc extra)")


def speech(bank: SpeechBank, text: str) -> bytes:
    samples = bank.utterance(text).samples
    return to_pcm(0.5 * samples / np.abs(samples).max())


async def test_a_whole_turn_over_webrtc_then_talking_over_the_reply_cuts_it(tmp_path: Path) -> None:
    bank = SpeechBank(tmp_path)
    # a turn and its whole reply; then a longer turn, and while its reply (the simulator's echo
    # of what it heard since its last reply) plays the speech back, the user talks over it
    microphone = (silence(1.0) + speech(bank, "Hello, can you hear me?") + silence(5.0)
                  + speech(bank, "Tell me a long story about the sea and the ships on it.")
                  + silence(3.0) + speech(bank, "No, wait, stop. Let me say something else.")
                  + silence(4.0))
    wav = tmp_path / "microphone.wav"
    wav.write_bytes(pcm16_to_wav(microphone))
    ms = round(within(40) * 1000)
    async with DemoServer(port=0) as demo, playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=chromium_args(wav))
        try:
            page = await browser.new_page(viewport={"width": 390, "height": 844})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(demo.url)
            await page.wait_for_function("document.body.dataset.ready === 'true'", timeout=ms)
            assert await page.is_checked("#webrtc")
            await page.click("#talk")
            await page.wait_for_function("demoStats.state === 'live'", timeout=ms)
            await page.wait_for_function("demoStats.turns.length >= 1", timeout=ms)
            first = await page.evaluate("demoStats.turns[0]")
            reply = await page.locator("#transcript li.assistant").first.inner_text()
            latency = await page.inner_text("#latency")
            await page.wait_for_function("demoStats.stops.some((s) => s.voice)", timeout=ms)
            # the words that cut it end (the proxy says speech_stopped): the track stayed silent
            await page.wait_for_function(
                "demoStats.speech.filter((s) => s.type === 'speech_stopped').length >= 3", timeout=ms)
            stats = await page.evaluate("demoStats")
            meta = await page.locator("#transcript li.assistant.interrupted .meta").first.inner_text()
            await page.click("#talk")  # the conversation ends: so does the call
            async with asyncio.timeout(within(10)):
                await demo.wait_idle()
        finally:
            await browser.close()
    assert errors == []
    assert stats["transport"] == "webrtc"
    assert first["reason"] == "complete" and first["text"].startswith("Turn 1: heard"), first
    assert reply.startswith("Turn 1: heard") and "ms to first audio" in reply, reply
    assert latency.endswith(" ms"), latency
    events = stats["events"]
    assert events[0] == "session.created"
    # the proxy heard the user start talking during the reply, and dropped what the track held
    cleared = events.index("output_audio_buffer.cleared")
    created = max(i for i, event in enumerate(events[:cleared]) if event == "response.created")
    assert "input_audio_buffer.speech_started" in events[created:cleared], events
    assert "you interrupted it" in meta
    assert [t["reason"] for t in stats["turns"]][-1] == "stopped", stats["turns"]
    cut = next(s for s in stats["stops"] if s["voice"])
    print(f"reply heard {cut['heardBeforeMs']:.0f} ms before the cut, "
          f"silent {cut['silentAfterMs']:.0f} ms after")
    assert cut["heardBeforeMs"] < 200, cut  # the reply was playing when the user cut in
    assert cut["silentAfterMs"] < 300, cut
    assert stats["lastHeardAt"] < cut["wallTime"] + cut["silentAfterMs"], (stats["lastHeardAt"], cut)
