"""``@openai/agents``' stock WebRTC transport in headless Chromium against ``serve``.

The page imports the SDK's own browser bundle (``tests/dialects/realtime_js``, ``npm ci``) and
connects a ``RealtimeSession`` with ``transport: 'webrtc'`` to ``/v1/realtime/calls``, its
microphone Chromium's fake capture device playing a WAV: words spoken by espeak-ng, then silence
(the simulator replays what it heard, so the reply is those words). A WebAudio analyser on the
remote track sums the reply's spectrum, which must be the words' own. The interrupt test speaks
a tone instead: a reply without the pauses between words is quiet only once it is cut. Skipped
with the reason when Chromium, Playwright, the package or espeak-ng is missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from starlette.responses import HTMLResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from asgi_audio_proxy.audio import pcm16_to_wav
from tests.signals import silence, tone
from tests.timing import within
from tests.vad.speech import RATE_HZ as SPEECH_RATE_HZ
from tests.vad.speech import SpeechBank, espeak_missing_reason, to_pcm

from .test_calls import calls_ended, served

CHROMIUM = Path("/usr/bin/chromium")
BUNDLE = (Path(__file__).resolve().parent.parent / "dialects" / "realtime_js" / "node_modules" / "@openai"
          / "agents-realtime" / "dist" / "bundle")
playwright_api = pytest.importorskip("playwright.async_api", reason="needs playwright (the browser extra)")
pytestmark = [
    pytest.mark.slow,  # a browser and a whole turn: about 9 s
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
    pytest.mark.skipif(not BUNDLE.is_dir(), reason="run `npm ci` in tests/dialects/realtime_js"),
]

PAGE = """<!doctype html><meta charset="utf-8"><title>agents over WebRTC</title>
<script type="module">
import { RealtimeAgent, RealtimeSession } from '/js/openai-realtime-agents.mjs';
window.events = []; window.failure = null; window.levelDb = -200;
window.interruptedAt = 0; window.quietAfterMs = 0;
window.spectrum = null; window.loudFrames = 0; window.sampleRate = 0;
try {
  const session = new RealtimeSession(new RealtimeAgent({ name: 'Assistant' }),
                                      { transport: 'webrtc', model: 'gpt-realtime' });
  session.transport.on('*', (event) => window.events.push(event.type));
  await session.connect({ apiKey: 'ek_page', url: location.origin + '/v1/realtime/calls' });
  window.session = session;
  const pc = session.transport.connectionState.peerConnection;
  const track = pc.getReceivers().map((r) => r.track).find((t) => t && t.kind === 'audio');
  const context = new AudioContext();
  await context.resume();
  const analyser = context.createAnalyser();
  analyser.fftSize = 4096;
  analyser.smoothingTimeConstant = 0;
  context.createMediaStreamSource(new MediaStream([track])).connect(analyser);
  const bins = new Float32Array(analyser.frequencyBinCount);
  const spectrum = new Float64Array(analyser.frequencyBinCount);
  window.sampleRate = context.sampleRate;
  setInterval(() => {
    analyser.getFloatFrequencyData(bins);
    let best = 0;
    for (let i = 1; i < bins.length; i++) if (bins[i] > bins[best]) best = i;
    window.levelDb = bins[best];
    if (bins[best] > -50) {
      for (let i = 0; i < bins.length; i++) spectrum[i] += Math.pow(10, bins[i] / 10);
      window.loudFrames += 1;
      window.spectrum = Array.from(spectrum.subarray(0, 400));
    }
    if (window.interruptedAt && !window.quietAfterMs && bins[best] < -70)
      window.quietAfterMs = performance.now() - window.interruptedAt;
  }, 10);
} catch (error) {
  window.failure = String(error && error.stack || error);
}
</script>"""


async def page_app(app: Any) -> None:
    async def page(request: Any) -> HTMLResponse:
        return HTMLResponse(PAGE)
    app.app.router.routes[:0] = [Route("/", page), Mount("/js", StaticFiles(directory=BUNDLE))]


def chromium_args(wav: Path) -> list[str]:
    return ["--no-sandbox", "--disable-gpu", "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream", f"--use-file-for-fake-audio-capture={wav}",
            "--autoplay-policy=no-user-gesture-required", "--no-first-run"]


#: what the microphone says; the loop of the fake device says it again after the silence
WORDS = "Hello there, could you tell me what the weather is like today?"
#: how alike the reply's spectrum and the words' must be (cosine of the two, 100 Hz to 4 kHz):
#: the words replayed through two Opus legs measured 0.94-0.95; a 440 Hz tone's spectrum, 0.43-0.49
SAME_SPECTRUM = 0.8


def long_term_spectrum(samples: np.ndarray, rate_hz: int, frequencies_hz: np.ndarray) -> np.ndarray:
    """The average power spectrum of ``samples`` (Blackman windows, as the analyser's), at
    ``frequencies_hz``."""
    size = 1024
    window = np.blackman(size)
    frames = [samples[i:i + size] * window for i in range(0, len(samples) - size, size // 2)]
    power = np.mean([np.abs(np.fft.rfft(frame)) ** 2 for frame in frames], axis=0)
    spectrum: np.ndarray = np.interp(frequencies_hz, np.fft.rfftfreq(size, 1 / rate_hz), power)
    return spectrum


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.mark.skipif(espeak_missing_reason() is not None, reason=espeak_missing_reason() or "")
async def test_agents_sdk_webrtc_turn_reply_is_the_spoken_words_then_the_tab_closes(tmp_path: Path) -> None:
    words = SpeechBank(tmp_path).utterance(WORDS).samples
    words = 0.5 * words / np.abs(words).max()
    wav = tmp_path / "microphone.wav"
    wav.write_bytes(pcm16_to_wav(to_pcm(words) + silence(6.0, SPEECH_RATE_HZ), SPEECH_RATE_HZ))
    ms = round(within(20) * 1000)
    async with served() as (base, app), playwright_api.async_playwright() as pw:
        await page_app(app)
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=chromium_args(wav))
        try:
            page = await browser.new_page()
            await page.goto(base + "/")
            await page.wait_for_function("window.session || window.failure", timeout=ms)
            assert await page.evaluate("window.failure") is None
            await page.wait_for_function(
                "window.events.includes('output_audio_buffer.stopped')", timeout=ms)
            events = await page.evaluate("window.events")
            assert events[0] == "session.created", events
            assert "response.output_audio_transcript.done" in events and "response.done" in events
            assert events.index("output_audio_buffer.started") < events.index("output_audio_buffer.stopped")
            await page.wait_for_function("window.loudFrames > 50", timeout=ms)  # half a second
            heard = np.array(await page.evaluate("window.spectrum"))
            rate = await page.evaluate("window.sampleRate")
            frequencies = np.arange(len(heard)) * rate / 4096
            band = (frequencies > 100) & (frequencies < 4000)
            alike = similarity(heard[band], long_term_spectrum(words, SPEECH_RATE_HZ, frequencies[band]))
            unlike = similarity(heard[band], long_term_spectrum(
                np.frombuffer(tone(440, 1.0), "<i2") / 32768, 16_000, frequencies[band]))
            print(f"reply's spectrum against the words' {alike:.2f}, against a 440 Hz tone's {unlike:.2f}")
            assert alike > SAME_SPECTRUM > unlike, (alike, unlike)
            assert len(app.proxy.sessions) == 1
            await page.close()  # the tab closes: the call ends, its place is free
            await calls_ended(app, timeout_s=8)
        finally:
            await browser.close()


async def test_agents_sdk_interrupt_silences_the_remote_track_within_300_ms(tmp_path: Path) -> None:
    wav = tmp_path / "microphone.wav"
    wav.write_bytes(pcm16_to_wav(tone(440.0, 1.0) + silence(9.0)))
    ms = round(within(20) * 1000)
    async with served(reply_chunks=10) as (base, app), playwright_api.async_playwright() as pw:
        await page_app(app)
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=chromium_args(wav))
        try:
            page = await browser.new_page()
            await page.goto(base + "/")
            await page.wait_for_function("window.session || window.failure", timeout=ms)
            assert await page.evaluate("window.failure") is None
            await page.wait_for_function("window.levelDb > -40", timeout=ms)  # the reply plays
            await page.evaluate("window.interruptedAt = performance.now(); window.session.interrupt()")
            await page.wait_for_function("window.quietAfterMs > 0", timeout=ms)
            quiet_after_ms = await page.evaluate("window.quietAfterMs")
            print(f"remote track quiet {quiet_after_ms:.0f} ms after interrupt()")
            assert quiet_after_ms < 300, quiet_after_ms
            await page.wait_for_function("window.events.includes('output_audio_buffer.cleared')",
                                         timeout=ms)
            await page.close()
            await calls_ended(app, timeout_s=8)
        finally:
            await browser.close()
