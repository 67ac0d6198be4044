"""The demo page's parts that need no browser: its settings from the demo, and when it tries
to resume after a cut (``resume.js`` run by Node as the browser runs it: pure, no socket).

Cheap siblings of the Chromium tests in ``test_browser_resume.py`` and ``test_browser_webrtc.py``.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import shutil
from collections.abc import AsyncIterator

import pytest

from asgi_audio_proxy.config import DEFAULT_RESUME_GRACE_S
from asgi_audio_proxy.demo.server import DEMO_PAGE_DIR, DemoServer
from tests.http_clients import http_client
from tests.timing import within

NODE = shutil.which("node")

# each line: a call into resume.js and what it must give
RESUME_CHECKS = """
import { readFileSync } from "node:fs";
const source = readFileSync(process.argv[1], "utf8");
const r = await import("data:text/javascript," + encodeURIComponent(source));
console.log(JSON.stringify({
  delays: [0, 1, 2, 3, 4, 9].map((n) => r.nextRetryMs(n, 0, 30000)),
  lastBeforeGrace: r.nextRetryMs(5, 27000, 30000),
  afterGrace: r.nextRetryMs(5, 28500, 30000),
  cut: r.isCut(1006), closed: [1000, 1001, 1008, 1011, 1013].some(r.isCut),
  url: r.resumeUrl("ws://h:1/audio_proxy?token=a", "t/1+2"),
  again: r.resumeUrl("ws://h:1/audio_proxy?resume=old", "new"),
}));
"""


@pytest.fixture
async def demo() -> AsyncIterator[DemoServer]:
    async with DemoServer(port=0) as server:
        yield server


async def test_the_demo_tells_the_page_whether_it_answers_calls_and_how_long_it_holds_a_cut(
        demo: DemoServer) -> None:
    async with http_client(base_url=demo.url, trust_env=False) as client:
        settings = await client.get("/demo.json")
        scripts = [await client.get(f"/static/{name}")
                   for name in ("call.js", "conversation.js", "resume.js")]
    calls = importlib.util.find_spec("aiortc") is not None
    assert settings.json() == {"webrtc": calls, "calls": "/v1/realtime/calls" if calls else None,
                               "resumeGraceS": DEFAULT_RESUME_GRACE_S}
    assert settings.headers["cache-control"] == "no-cache"
    assert [script.status_code for script in scripts] == [200, 200, 200]


@pytest.mark.skipif(NODE is None, reason="needs node")
async def test_the_page_retries_a_cut_with_backoff_within_the_grace_and_only_after_a_cut() -> None:
    assert NODE is not None
    proc = await asyncio.create_subprocess_exec(
        NODE, "--input-type=module", "-e", RESUME_CHECKS, str(DEMO_PAGE_DIR / "resume.js"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    async with asyncio.timeout(within(10)):
        out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    got = json.loads(out)
    assert got["delays"] == [250, 500, 1000, 2000, 2000, 2000]
    assert got["lastBeforeGrace"] == 2000 and got["afterGrace"] is None
    assert got["cut"] is True and got["closed"] is False
    assert got["url"] == "ws://h:1/audio_proxy?token=a&resume=t%2F1%2B2"
    assert got["again"] == "ws://h:1/audio_proxy?resume=new"
