"""The demo page in real headless Chromium, its microphone a WAV file, against the demo.

Needs the Debian ``chromium`` package (``/usr/bin/chromium``) and Playwright for Python; no
browser is downloaded. Chromium's fake capture device loops the WAV (a 440 Hz tone for 2 s, then
2 s of silence), the page captures it in its AudioWorklet, low-passes it to 16 kHz and streams it;
the simulator echoes what it heard, and the page plays it. Every wait is a condition on the
page's ``window.demoStats`` or on the simulator's record, under a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from starlette.types import Receive, Scope, Send

from asgi_audio_proxy.audio import pcm16_to_wav
from asgi_audio_proxy.demo.server import DemoServer
from asgi_audio_proxy.simulator.app import UpstreamSimulator
from tests.processes import stop
from tests.servers import serve_uvicorn
from tests.signals import dominant_frequency_hz, silence, tone
from tests.test_one_conversation import OverlapRecorder, command
from tests.timing import within

CHROMIUM = Path("/usr/bin/chromium")
DOCS_SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "demo.png"

playwright_api = pytest.importorskip("playwright.async_api", reason="needs playwright (the browser extra)")
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)")


def chromium_args(wav: Path) -> list[str]:
    return [
        "--no-sandbox", "--disable-gpu",
        "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run",
    ]


def loud_part(pcm: bytes) -> bytes:
    samples = np.frombuffer(pcm, "<i2")
    loud = np.flatnonzero(np.abs(samples) > 3000)
    assert loud.size, "the simulator heard no loud audio"
    return samples[loud[0] : loud[-1] + 1].tobytes()


@contextlib.asynccontextmanager
async def demo_page(demo: DemoServer, wav: Path, query: str, timeout_ms: int
                    ) -> AsyncIterator[tuple[Any, list[str]]]:
    """Headless Chromium, phone-sized, on the demo page with ``query``, its fake microphone
    playing ``wav``; yields the page once it is ready, and the page errors it raises."""
    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=chromium_args(wav))
        try:
            page = await browser.new_page(viewport={"width": 390, "height": 844})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(demo.url + query)
            await page.wait_for_function("document.body.dataset.ready === 'true'", timeout=timeout_ms)
            yield page, errors
        finally:
            await browser.close()


async def test_page_talks_plays_the_reply_and_stop_silences_it(tmp_path: Path) -> None:
    wav = tmp_path / "microphone.wav"
    wav.write_bytes(pcm16_to_wav(tone(440.0, 2.0) + silence(2.0)))
    ms = round(within(20) * 1000)
    async with DemoServer(port=0) as demo, \
            demo_page(demo, wav, "?processing=off&transport=websocket", ms) as (page, errors):
        # voice processing off, or noise suppression would eat a steady tone
        await page.focus("#talk")  # the keyboard starts it, as a keyboard user would
        await page.keyboard.press("Enter")
        await page.wait_for_function("demoStats.state === 'live'", timeout=ms)

        # a reply is playing, with at least half a second of it still to come
        await page.wait_for_function("demoStats.samplesPlayed > 1600 && demoStats.buffered > 8000",
                                     timeout=ms)
        # the reply's text comes split over its audio chunks ("Turn 1:" with the first, " heard"
        # with the second), and the stop below cuts it: its first piece is what is sure to show
        reply = page.locator("#transcript li.assistant").first
        await reply.wait_for(timeout=ms)
        assert (await reply.inner_text()).startswith("Turn 1:")
        assert await page.inner_text("#state") == "Live"

        await page.click("#stop")
        await page.wait_for_function("demoStats.stops.length === 1", timeout=ms)
        stop = await page.evaluate("demoStats.stops[0]")
        # and it stays silent: five more playback reports (250 ms of audio) play nothing
        reports = await page.evaluate("demoStats.playbackReports")
        await page.wait_for_function(f"demoStats.playbackReports >= {reports + 5}", timeout=ms)
        stats = await page.evaluate("demoStats")

        await page.screenshot(path=str(tmp_path / "demo.png"), full_page=True)
        if os.environ.get("UPDATE_SCREENSHOT"):  # the README's picture, on demand only
            DOCS_SCREENSHOT.parent.mkdir(exist_ok=True)
            shutil.copyfile(tmp_path / "demo.png", DOCS_SCREENSHOT)

    assert errors == []
    assert stop["silentAfterMs"] < 300, stop
    assert stop["reportedAfterMs"] < 300, stop
    assert stats["samplesPlayed"] == stop["playedAtSilence"]
    assert stats["buffered"] == 0
    assert stats["samplesSent"] > 16_000
    assert "Turn 1: heard" in stats["replyText"]

    assert demo.simulator is not None
    heard = b"".join(b"".join(chunks) for chunks in demo.simulator.recorder.chunks.values())
    assert abs(dominant_frequency_hz(loud_part(heard)) - 440.0) < 3


class HeldCompletions:
    """Stands in front of a simulator: ``/completions`` waits until :meth:`release` (once).

    A session opens ``/completions`` right after taking its lease, so ``holding`` set means a
    conversation holds the model server and cannot end until the test says so.
    """

    def __init__(self, sim: UpstreamSimulator) -> None:
        self.sim = sim
        self.holding = asyncio.Event()
        self.released = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].endswith("/completions"):
            self.holding.set()
            await self.released.wait()
        await self.sim(scope, receive, send)

    def release(self) -> None:
        self.released.set()


@pytest.mark.slow
async def test_a_page_opened_during_the_start_up_talk_queues_then_hears_its_own_first_turn(
        tmp_path: Path) -> None:
    wav = tmp_path / "microphone.wav"
    wav.write_bytes(pcm16_to_wav(tone(440.0, 2.0) + silence(2.0)))
    ms = round(within(30) * 1000)
    sim = UpstreamSimulator()
    recorder = sim.recorder = OverlapRecorder()
    held = HeldCompletions(sim)  # the talk's first reply waits until the page is seen queued
    try:
        async with serve_uvicorn(held) as sim_port:
            proc = await asyncio.create_subprocess_exec(
                *command("demo", "--upstream", f"http://127.0.0.1:{sim_port}", "--port", "0",
                         "--talk", "2"),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
            assert proc.stdout is not None
            lines: list[str] = []
            reader: asyncio.Task[None] | None = None
            try:
                async with asyncio.timeout(within(15)):
                    while not (found := re.search(r"to ws://(127\.0\.0\.1:\d+)/audio_proxy ",
                                                  lines[-1] if lines else "")):
                        lines.append((await proc.stdout.readline()).decode())
                        assert lines[-1], "".join(lines)
                reader = asyncio.create_task(_read_lines(proc.stdout, lines))
                async with asyncio.timeout(within(10)):
                    await held.holding.wait()  # the talk holds the model server
                async with playwright_api.async_playwright() as pw:
                    browser = await pw.chromium.launch(executable_path=str(CHROMIUM),
                                                       args=chromium_args(wav))
                    try:
                        page = await browser.new_page()
                        errors: list[str] = []
                        page.on("pageerror", lambda exc: errors.append(str(exc)))
                        await page.goto(f"http://{found.group(1)}/?processing=off&transport=websocket")
                        await page.wait_for_function("document.body.dataset.ready === 'true'",
                                                     timeout=ms)
                        await page.click("#talk")
                        await page.wait_for_function("demoStats.state === 'queued'", timeout=ms)
                        shown = await page.inner_text("#state")
                        announced_while_queued = any("open http" in line for line in lines)
                        held.release()
                        await page.wait_for_function("demoStats.state === 'live'", timeout=ms)
                        reply = page.locator("#transcript li.assistant").first
                        await reply.wait_for(timeout=ms)
                        await page.wait_for_function("demoStats.turns.length >= 1", timeout=ms)
                        stats = await page.evaluate("demoStats")
                    finally:
                        await browser.close()
            finally:
                await stop(proc, signal.SIGINT, 10)
                if reader is not None:
                    await reader
    finally:
        sim.close()
    assert errors == []
    assert shown.startswith("Queued: 1st in line, about"), shown
    assert stats["queued"][0]["position"] == 1
    assert not announced_while_queued
    assert stats["turns"][0]["text"].startswith("Turn 1: heard"), stats["turns"]  # its own turn
    text = "".join(lines)
    assert text.index("every turn got a reply") < text.index("open http")
    recorder.assert_one_conversation_at_a_time(len(set(recorder.completions_uids)))
    assert len(set(recorder.completions_uids)) == 2


async def _read_lines(stream: asyncio.StreamReader, lines: list[str]) -> None:
    while line := (await stream.readline()).decode():
        lines.append(line)
