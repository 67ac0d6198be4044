"""End to end: ``@openai/agents`` (JavaScript, stock WebSocket transport) runs a full turn.

Needs Node and the packages of ``tests/dialects/realtime_js`` (``npm ci`` there); skipped with
the reason when either is missing.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from tests.timing import within

from .test_realtime_sdk import KEY, RATE_HZ, realtime_proxy

JS_DIR = Path(__file__).parent / "realtime_js"


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the @openai/agents check needs Node 20 or newer")
    if not (JS_DIR / "node_modules" / "@openai" / "agents").is_dir():
        pytest.skip(f"@openai/agents is not installed: run `npm ci` in {JS_DIR}")
    return node


async def test_openai_agents_js_full_turn_over_websocket() -> None:
    node = _node()
    async with realtime_proxy() as base_url:
        process = await asyncio.create_subprocess_exec(
            node, str(JS_DIR / "turn.mjs"), base_url + "/realtime?model=gpt-realtime", KEY,
            cwd=JS_DIR, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            async with asyncio.timeout(within(40)):
                out, err = await process.communicate()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert process.returncode == 0, (out.decode(), err.decode()[-2000:])
    result = json.loads(out.decode().strip().splitlines()[-1])
    assert result["refused"] == [] and result["errors"] == []
    assert result["seen"][0] == "session.created" and result["seen"][-1] == "response.done"
    assert result["transcript"].startswith("Turn 1:")
    assert result["audioBytes"] >= 0.8 * RATE_HZ * 2  # about the second of tone it heard
