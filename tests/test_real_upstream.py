"""Against the real model server's code (``shared/real_upstream``), with its stand-in model.

Needs ``MINICPM_GIT_DIR`` (a MiniCPM-V git dir) and the kit beside the project; skipped otherwise.
Runs ``asgi-audio-proxy serve`` as a process in front of it, as a user would.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pathlib
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from asgi_audio_proxy.dialects.native_client import TurnEndMessage
from tests.clients import ProxyClient, at_real_time
from tests.http_clients import http_client
from tests.processes import stop_group
from tests.servers import free_port
from tests.signals import dominant_frequency_hz, silence, tone
from tests.timing import within

KIT = pathlib.Path(__file__).resolve().parents[2] / "shared" / "real_upstream" / "run_upstream.sh"
pytestmark = [
    pytest.mark.real_upstream,
    pytest.mark.skipif(not os.environ.get("MINICPM_GIT_DIR"),
                       reason="MINICPM_GIT_DIR is not set: no copy of the real upstream's code"),
    pytest.mark.skipif(not KIT.exists(), reason=f"the real-upstream kit is not at {KIT}"),
]


@contextlib.contextmanager
def process(*argv: str, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(argv, env={**os.environ, **(env or {})}, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        stop_group(proc)


async def wait_until_serving(url: str, timeout_s: float,
                             proc: subprocess.Popen[bytes] | None = None) -> None:
    """An external process gives no start signal: ask it, on a 0.1 s pace, until a deadline;
    if ``proc`` (the server's process) exits first, fail at once rather than at the deadline."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(within(timeout_s)), http_client() as http:
        while True:
            if proc is not None and proc.poll() is not None:
                raise AssertionError(f"the server exited ({proc.returncode}) before serving {url}")
            start = loop.time()
            try:
                await http.get(url)
                return
            except httpx.TransportError:
                await at_real_time(start, 0.1)


@contextlib.asynccontextmanager
async def real_stack(**kit_env: str) -> AsyncIterator[str]:
    upstream_port, proxy_port = free_port(), free_port()
    with process("bash", str(KIT), "--port", str(upstream_port), env=kit_env) as kit, \
            process(sys.executable, "-m", "asgi_audio_proxy.cli", "serve", "--upstream",
                    f"http://127.0.0.1:{upstream_port}", "--port", str(proxy_port),
                    "--chunk-duration", "0.2"):
        await wait_until_serving(f"http://127.0.0.1:{upstream_port}/health", 180, kit)
        await wait_until_serving(f"http://127.0.0.1:{proxy_port}/", 30)
        yield f"ws://127.0.0.1:{proxy_port}/audio_proxy"


async def test_two_turns_through_serve_get_the_stand_in_models_text_and_600hz_tone() -> None:
    utterance = tone(440, 1.5) + silence(1.6)
    async with real_stack() as url, ProxyClient(url) as client:
        assert client.proxy.upstream_version == "2.6"
        turns = [await client.say(utterance, timeout_s=30) for _ in range(2)]
        for turn in turns:  # shown with -s: what the stand-in model said, and how much audio
            print(f"{turn.text!r}: {len(turn.audio) // 2} samples at 16 kHz, "
                  f"{dominant_frequency_hz(bytes(turn.audio)):.1f} Hz, {turn.ending}")
    for n, turn in enumerate(turns, 1):
        assert turn.ending == TurnEndMessage("complete")
        assert turn.text.startswith(f"Turn {n}: heard")
        assert dominant_frequency_hz(bytes(turn.audio)) == pytest.approx(600, abs=5)


async def test_stop_is_cut_at_once_and_the_next_words_are_heard_whole() -> None:
    # 12-chunk replies: the real server answers /stop late (section 8) and skips audio meanwhile
    utterance = tone(440, 1.5) + silence(1.6)
    async with real_stack(STUB_REPLY_CHUNKS="12") as url, ProxyClient(url) as client:
        stopped = await client.say(utterance, timeout_s=30, stop_after_audio=True)
        again = await client.say(utterance, timeout_s=30)  # at once, while the model still runs
    assert stopped.ending == TurnEndMessage("stopped")
    assert again.ending == TurnEndMessage("complete")
    assert "1.5 s of it sound" in again.text, again.text  # none of it skipped
    assert dominant_frequency_hz(bytes(again.audio)) == pytest.approx(600, abs=5)
