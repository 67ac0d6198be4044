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
from tests.signals import silence, tone
from tests.test_browser import CHROMIUM, demo_page
from tests.timing import within
from tests.vad.speech import SpeechBank, espeak_missing_reason, to_pcm

pytestmark = [
    pytest.mark.slow,  # a browser and a call: 15 to 25 s each
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
    pytest.mark.skipif(espeak_missing_reason() is not None, reason=espeak_missing_reason() or ""),
]
pytest.importorskip("aiortc", reason="needs aiortc (the webrtc extra)")


def speech(bank: SpeechBank, text: str) -> bytes:
    samples = bank.utterance(text).samples
    return to_pcm(0.5 * samples / np.abs(samples).max())


@pytest.mark.timeout(120)  # three utterances and their replies: about 30 s alone
async def test_a_whole_turn_over_webrtc_then_talking_over_the_reply_cuts_it(tmp_path: Path) -> None:
    bank = SpeechBank(tmp_path)
    # a turn and its whole reply; then a long turn, and while its reply (the simulator's echo of
    # what it heard since its last reply: a little quiet, then the long words) plays the words
    # back, the user talks over it. The margins hold with the replies 1 s late.
    microphone = (silence(1.0) + speech(bank, "Hello, can you hear me?") + silence(6.5)
                  + speech(bank, "Tell me a long story about the sea, the ships that sail on it, "
                                 "the sailors who work on them, and the harbours where they rest.")
                  + silence(6.0) + speech(bank, "No, wait, stop. Let me say something else.")
                  + silence(4.0))
    wav = tmp_path / "microphone.wav"
    wav.write_bytes(pcm16_to_wav(microphone))
    ms = round(within(50) * 1000)
    async with DemoServer(port=0) as demo, demo_page(demo, wav, "", ms) as (page, errors):
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
    # the reply was playing when the user cut in (its words have pauses of their own)
    assert cut["heardBeforeMs"] < 500, cut
    assert cut["silentAfterMs"] < within(0.3) * 1000, cut
    assert stats["lastHeardAt"] < cut["wallTime"] + cut["silentAfterMs"], (stats["lastHeardAt"], cut)


async def test_stop_over_webrtc_cancels_the_reply_and_the_track_goes_silent(tmp_path: Path) -> None:
    wav = tmp_path / "microphone.wav"  # voice processing off: noise suppression eats a steady tone
    wav.write_bytes(pcm16_to_wav(silence(1.0) + tone(440.0, 3.0) + silence(8.0)))
    ms = round(within(30) * 1000)
    async with DemoServer(port=0) as demo, demo_page(demo, wav, "?processing=off", ms) as (page, errors):
        await page.click("#talk")
        # the reply is heard on the remote track, and is still being made
        await page.wait_for_function(
            "demoStats.playing && demoStats.events.at(-1) !== 'response.done'"
            " && demoStats.events.includes('output_audio_buffer.started')", timeout=ms)
        await page.click("#stop")
        await page.wait_for_function("demoStats.stops.length === 1", timeout=ms)
        await page.wait_for_function("demoStats.turns.length === 1", timeout=ms)
        await page.screenshot(path=str(tmp_path / "webrtc.png"), full_page=True)
        stats = await page.evaluate("demoStats")
        meta = await page.locator("#transcript li.assistant .meta").first.inner_text()
        await page.click("#talk")  # the conversation ends: so does the call
        async with asyncio.timeout(within(10)):
            await demo.wait_idle()
    assert errors == []
    [stop] = stats["stops"]
    print(f"Stop over WebRTC: the track silent {stop['silentAfterMs']:.0f} ms after the click")
    assert stop["voice"] is False and stop["heardBeforeMs"] < 200, stop
    assert stop["silentAfterMs"] < within(0.3) * 1000, stop
    assert stats["turns"][0]["reason"] == "stopped", stats["turns"]
    assert "stopped" in meta, meta
    events = stats["events"]
    assert "output_audio_buffer.cleared" in events[events.index("output_audio_buffer.started"):], events
