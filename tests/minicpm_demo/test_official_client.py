"""MiniCPM-o-Demo's own browser client against the gateway simulator, in headless Chromium.

The page is the gateway's ``/realtime`` (``static/realtime/realtime.html``, its app and its
``RealtimeSession``), served as the gateway serves it, next to the simulator's ``/v1/realtime``;
its microphone is Chromium's fake capture device looping a WAV (a 440 Hz tone for 1 s, then 3 s
of silence), its camera the fake one. The page's code is not part of this project: set
``MINICPM_O_DEMO_DIR`` to a checkout of OpenBMB/MiniCPM-o-Demo whose ``static/`` has the realtime
page (its ``realtime-protocol`` branch), or the test is skipped.

It checks that the page, as written, gets through the simulator's queue phase and session
update, shows the model's reply text, sends ``force_listen`` while its "Force Listen" is on,
and closes with ``session.close``; every frame it sent is checked against the schema (its
session update has one field the schema does not list, ``deferred_finalize``, which the gateway
reads past).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from starlette.responses import FileResponse
from starlette.routing import Mount, Route, Router
from starlette.staticfiles import StaticFiles

from asgi_audio_proxy.audio import pcm16_to_wav
from asgi_audio_proxy.simulator.minicpm_demo import GatewaySimulator
from tests.servers import serve_uvicorn
from tests.signals import silence, tone
from tests.test_browser import CHROMIUM, chromium_args
from tests.timing import within

from .schema import check_client

DEMO = Path(os.environ.get("MINICPM_O_DEMO_DIR", "/nonexistent"))
PAGE = DEMO / "static" / "realtime" / "realtime.html"
playwright_api = pytest.importorskip("playwright.async_api", reason="needs playwright (the browser extra)")
pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
    pytest.mark.skipif(not PAGE.exists(), reason="set MINICPM_O_DEMO_DIR to a MiniCPM-o-Demo checkout "
                                                 "with static/realtime/realtime.html"),
]


def site(gateway: GatewaySimulator) -> Router:
    """The gateway's routes the page uses: the page, its static files, and the simulator."""
    async def page(request: object) -> FileResponse:
        return FileResponse(PAGE)

    return Router([Route("/realtime", page), Mount("/static", StaticFiles(directory=DEMO / "static")),
                   Mount("/", app=gateway)])


async def test_the_demos_own_page_talks_to_the_simulator(tmp_path: Path) -> None:
    wav = tmp_path / "microphone.wav"
    wav.write_bytes(pcm16_to_wav(tone(440.0, 1.0) + silence(3.0)))
    gateway = GatewaySimulator()
    ms = round(within(30) * 1000)
    async with serve_uvicorn(site(gateway)) as port, playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=chromium_args(wav))
        try:
            page = await browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(f"http://127.0.0.1:{port}/realtime")
            await page.click("#btnStart")
            await page.wait_for_function(
                "[...document.querySelectorAll('#chatArea .bubble.ai')].some(b => b.textContent"
                ".startsWith('Turn 1:') && b.textContent.endsWith('sound.'))", timeout=ms)  # all of it
            await page.click("#btnForce")  # Force Listen on: its appends say force_listen
            await gateway.recorder.wait_for(lambda r: sum(r.force_listens.values()) >= 1, timeout=within(10))
            await page.click("#btnStop")
            await gateway.recorder.wait_for(lambda r: bool(r.received("session.close")), timeout=within(10))
            reply = await page.eval_on_selector_all(
                "#chatArea .bubble.ai", "bs => bs.map(b => b.textContent)")
        finally:
            await browser.close()
    assert not errors, errors
    assert reply[0].startswith("Turn 1: heard ") and reply[0].endswith("s of it sound."), reply
    [update] = gateway.recorder.received("session.update")
    assert update["session"]["instructions"]
    appends = gateway.recorder.received("input_audio_buffer.append")
    assert appends and all(len(a["audio"]) >= 4_000 * 4 * 4 // 3 for a in appends)
    assert gateway.recorder.dropped == 0
    # the page's own session update carries a field its schema does not list (the gateway reads
    # past it, and so does the simulator); everything else it sent is as the schema says
    assert update["session"].pop("deferred_finalize") is True
    check_client(json.dumps(update))
    for frame in gateway.recorder.frames:
        if json.loads(frame)["type"] != "session.update":
            check_client(frame)
