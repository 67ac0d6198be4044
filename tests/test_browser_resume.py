"""The demo page takes its session back by itself after its WebSocket is cut, in headless Chromium.

The page's socket goes through a TCP relay; the relay drops it (both sides aborted, no close
frame: the network gone) and refuses every connection for 3 s. The page says it is
reconnecting, tries again with its resume token, backing off, says "resumed" once the proxy
answers, and its next turn is answered in the same conversation with the model server.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from asgi_audio_proxy.audio import pcm16_to_wav
from asgi_audio_proxy.demo.server import DemoServer
from asgi_audio_proxy.simulator.app import UpstreamSimulator
from tests.signals import silence
from tests.tcp_relay import TcpRelay
from tests.test_browser import CHROMIUM, chromium_args, playwright_api
from tests.timing import within
from tests.vad.speech import SpeechBank, espeak_missing_reason, to_pcm

pytestmark = [
    pytest.mark.slow,  # a browser, a 3 s outage and two turns: about 20 s
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
    pytest.mark.skipif(espeak_missing_reason() is not None, reason=espeak_missing_reason() or ""),
]

OUTAGE_S = 3.0


class FlakyRelay(TcpRelay):
    """A relay whose network can go down: while down, every connection is accepted and aborted
    at once (as a reset), and :attr:`refused` counts them."""

    def __init__(self, target_port: int) -> None:
        super().__init__(target_port)
        self.is_down = False
        self.refused = 0
        self._tried = asyncio.Event()  # set at each refused connection

    async def on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.is_down:
            self.refused += 1
            self._tried.set()
            writer.transport.abort()
            return
        await super().on_connect(reader, writer)

    def go_down(self) -> None:
        self.is_down = True
        self.cut()

    async def refusals(self, count: int) -> None:
        while self.refused < count:
            self._tried.clear()
            await self._tried.wait()


@contextlib.asynccontextmanager
async def flaky_relay(target_port: int) -> AsyncIterator[FlakyRelay]:
    relay = FlakyRelay(target_port)
    server = await asyncio.start_server(relay.on_connect, "127.0.0.1", 0)
    relay.port = server.sockets[0].getsockname()[1]
    try:
        yield relay
    finally:
        relay.cut()
        server.close()
        await server.wait_closed()


async def test_the_page_resumes_its_session_after_a_3_s_outage_and_its_next_turn_is_answered(
        tmp_path: Path) -> None:
    samples = SpeechBank(tmp_path).utterance("Hello, can you hear me?").samples
    wav = tmp_path / "microphone.wav"  # looped: one utterance every 6 s or so
    wav.write_bytes(pcm16_to_wav(to_pcm(0.5 * samples / np.abs(samples).max()) + silence(5.0)))
    ms = round(within(30) * 1000)
    async with DemoServer(port=0) as demo, flaky_relay(demo.port) as network, \
            playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=chromium_args(wav))
        try:
            page = await browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(f"{demo.url}?processing=off&proxy=ws://127.0.0.1:{network.port}/audio_proxy")
            await page.wait_for_function("document.body.dataset.ready === 'true'", timeout=ms)
            assert not await page.is_checked("#webrtc")  # a ?proxy= is a WebSocket's
            await page.click("#talk")
            await page.wait_for_function("demoStats.turns.length >= 1", timeout=ms)
            session = await page.evaluate("demoStats.session")

            loop = asyncio.get_running_loop()
            cut_at = loop.time()
            network.go_down()
            await page.wait_for_function("demoStats.state === 'reconnecting'", timeout=ms)
            shown = await page.inner_text("#state")
            async with asyncio.timeout(within(10)):
                await network.refusals(2)  # the page tries again by itself, and again
            # the rest of the outage: its length is the scenario, not a synchronisation
            await asyncio.sleep(max(0.0, OUTAGE_S - (loop.time() - cut_at)))
            network.is_down = False

            await page.wait_for_function("demoStats.resumes.length === 1", timeout=ms)
            resumed = await page.inner_text("#state")
            turns = await page.evaluate("demoStats.turns.length")
            await page.wait_for_function(
                f"demoStats.turns.length > {turns} && demoStats.turns.at(-1).reason === 'complete'",
                timeout=ms)
            stats = await page.evaluate("demoStats")
        finally:
            await browser.close()
        async with asyncio.timeout(within(10)):
            await demo.wait_idle()
    assert errors == []
    assert shown.startswith("Reconnecting"), shown
    assert resumed == "Live: resumed", resumed
    assert stats["cuts"] == 1
    [resume] = stats["resumes"]
    assert resume["session"] == session
    assert resume["attempts"] >= 3 and resume["afterMs"] >= OUTAGE_S * 1000, resume
    print(f"resumed {resume['afterMs']:.0f} ms after the cut, at try {resume['attempts']}")
    # the model numbers its turns per conversation: the one after the cut is not a first
    last = stats["turns"][-1]["text"]
    assert last.startswith("Turn ") and not last.startswith("Turn 1:"), stats["turns"]
    assert isinstance(demo.simulator, UpstreamSimulator)
    record = demo.simulator.recorder
    assert len(set(record.completions_uids)) == 1 and len(record.chunks) == 1  # one conversation
