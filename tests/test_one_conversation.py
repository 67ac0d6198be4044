"""One conversation per model server, whichever way the proxy is set up (``UPSTREAM_PROTOCOL.md`` 8).

Two, then five, clients reach one simulator through each entry point: ``AudioProxy``, the
middleware, ``VoiceClient`` in the FastAPI example, ``asgi-audio-proxy serve`` and the demo (the
last three as the commands people run). One is live, the others are queued in arrival order
(positions 1..n-1); each is served in turn and hears its own words echoed (its own tone); and the
simulator's record, checked on every change it makes, never holds two conversations at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus

from asgi_audio_proxy.config import ProxyConfig
from asgi_audio_proxy.dialects.native_client import QueuedMessage, ReadyMessage, TurnEndMessage
from asgi_audio_proxy.edge.middleware import AudioProxy, AudioProxyMiddleware
from asgi_audio_proxy.simulator.recorder import SimulatorRecorder
from tests.clients import ProxyClient, arrive
from tests.conftest import Upstream, running_simulator
from tests.processes import stop
from tests.servers import serve_uvicorn
from tests.signals import dominant_frequency_hz, silence, tone
from tests.timing import within

REPO = Path(__file__).resolve().parent.parent
#: one tone per client, so each reply (the simulator echoes what it heard) says whose it is
TONES_HZ = (330.0, 440.0, 550.0, 660.0, 770.0)
#: sound, then enough quiet for the simulator's VAD to end the turn
TONE_S, QUIET_S = 1.0, 1.0


class OverlapRecorder(SimulatorRecorder):
    """The simulator's recorder, also keeping the most conversations it ever held at once.

    The simulator calls :meth:`changed` after every update, so checking here sees each state:
    an upstream WebSocket (one per conversation) or a ``/completions`` body open beside another.
    """

    def __init__(self) -> None:
        super().__init__()
        self.most_open_sockets = 0
        self.most_open_completions = 0

    def changed(self) -> None:
        self.most_open_sockets = max(self.most_open_sockets, self.ws_opened - self.ws_closed)
        self.most_open_completions = max(self.most_open_completions,
                                         self.sse_opened - self.sse_closed)
        super().changed()

    def assert_one_conversation_at_a_time(self, conversations: int) -> None:
        assert self.most_open_sockets == 1, f"{self.most_open_sockets} upstream sockets at once"
        assert self.most_open_completions == 1, f"{self.most_open_completions} /completions at once"
        uids = self.completions_uids
        runs = [uid for i, uid in enumerate(uids) if i == 0 or uids[i - 1] != uid]
        assert len(runs) == len(set(runs)) == conversations, uids  # no uid came back after another


@contextlib.asynccontextmanager
async def watched_simulator() -> AsyncIterator[tuple[Upstream, OverlapRecorder]]:
    async with running_simulator() as upstream:
        recorder = upstream.sim.recorder = OverlapRecorder()
        yield upstream, recorder


def utterance(index: int) -> bytes:
    return tone(TONES_HZ[index], TONE_S) + silence(QUIET_S)


async def served_one_at_a_time(url: str, n: int, recorder: OverlapRecorder) -> None:
    """``n`` clients arrive; each waits its turn, is served, hears its own tone and leaves."""
    arrivals = [await arrive(url, 15) for _ in range(n)]
    clients = [client for client, _ in arrivals]
    try:
        firsts = [event for _, event in arrivals]
        assert [type(e) for e in firsts] == [ReadyMessage] + [QueuedMessage] * (n - 1), firsts
        queued = [e for e in firsts if isinstance(e, QueuedMessage)]
        assert [e.position for e in queued] == list(range(1, n))
        assert all(e.eta_s > 0 for e in queued)
        for i, client in enumerate(clients):
            if i:  # its place went down by one each time someone ahead left, then ready
                positions = await client.queued_then_ready(15)
                assert positions == list(range(i - 1, 0, -1)), positions
            turn = await client.say(utterance(i))
            assert turn.ending == TurnEndMessage("complete"), turn.ending
            assert turn.text.startswith("Turn 1: heard"), turn.text  # a conversation of its own
            assert abs(dominant_frequency_hz(bytes(turn.audio)) - TONES_HZ[i]) < 5
            await client.__aexit__()
    finally:
        for client in clients:
            if client.ws is not None:
                await client.ws.close()
    await recorder.wait_for(lambda r: r.ws_closed == r.ws_opened, within(10))
    recorder.assert_one_conversation_at_a_time(n)


# -- in-process entry points ----------------------------------------------------------------


@contextlib.asynccontextmanager
async def audio_proxy(upstream_url: str, **config: Any) -> AsyncIterator[str]:
    proxy = AudioProxy(ProxyConfig(upstream_url=upstream_url, chunk_duration=0.2, **config))
    try:
        async with serve_uvicorn(proxy) as port:
            yield f"ws://127.0.0.1:{port}/"
    finally:
        await proxy.aclose()
        await proxy.leaser.aclose()


@contextlib.asynccontextmanager
async def middleware(upstream_url: str) -> AsyncIterator[str]:
    async def home(request: object) -> PlainTextResponse:
        return PlainTextResponse("an app of yours")

    app = AudioProxyMiddleware(Starlette(routes=[Route("/", home)]), path="/audio_proxy",
                               config=ProxyConfig(upstream_url=upstream_url, chunk_duration=0.2))
    try:
        async with serve_uvicorn(app) as port:
            yield f"ws://127.0.0.1:{port}/audio_proxy"
    finally:
        await app.proxy.aclose()
        await app.proxy.leaser.aclose()


# -- entry points run as commands -----------------------------------------------------------


def command(*args: str) -> list[str]:
    script = Path(sys.executable).with_name("asgi-audio-proxy")
    return [str(script), *args] if script.exists() else [sys.executable, "-m", "asgi_audio_proxy.cli", *args]


@contextlib.asynccontextmanager
async def process(argv: list[str], port_line: str, *, env: dict[str, str] | None = None,
                  stream: str = "stderr") -> AsyncIterator[int]:
    """Run ``argv``; yields the port from the first line matching ``port_line``; stops it."""
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=REPO, env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    output = proc.stderr if stream == "stderr" else proc.stdout
    assert output is not None
    drain: asyncio.Task[None] | None = None
    try:
        port = await read_port(output, port_line)
        drain = asyncio.create_task(_drain(proc))  # so a full pipe never stalls it
        yield port
    finally:
        await stop(proc)
        if drain is not None:
            await drain


async def read_port(output: asyncio.StreamReader, pattern: str) -> int:
    """Read lines until one matches ``pattern`` (its group 1 is the port), under a deadline."""
    seen = []
    async with asyncio.timeout(within(20)):
        while True:
            line = (await output.readline()).decode()
            assert line, "exited before it listened:\n" + "".join(seen)
            seen.append(line)
            if found := re.search(pattern, line):
                return int(found.group(1))


async def _drain(proc: asyncio.subprocess.Process) -> None:
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            await stream.read()


@contextlib.asynccontextmanager
async def serve_command(upstream_url: str) -> AsyncIterator[str]:
    argv = command("serve", "--upstream", upstream_url, "--port", "0", "--chunk-duration", "0.2")
    async with process(argv, r"running on http://127\.0\.0\.1:(\d+)") as port:
        yield f"ws://127.0.0.1:{port}/audio_proxy"


@contextlib.asynccontextmanager
async def demo_command(upstream_url: str) -> AsyncIterator[str]:
    argv = command("demo", "--upstream", upstream_url, "--port", "0", "--talk", "0")
    async with process(argv, r"open http://127\.0\.0\.1:(\d+)/", stream="stdout") as port:
        yield f"ws://127.0.0.1:{port}/audio_proxy"


@contextlib.asynccontextmanager
async def voice_client_example(upstream_url: str) -> AsyncIterator[str]:
    """``demo_app/audio_proxy_example.py`` under uvicorn: a new ``VoiceClient`` per connection."""
    env = {"VOICE_SERVER_HOST": "127.0.0.1", "VOICE_SERVER_PORT": upstream_url.rsplit(":", 1)[1]}
    argv = [sys.executable, "-m", "uvicorn", "demo_app.audio_proxy_example:app",
            "--host", "127.0.0.1", "--port", "0"]
    async with process(argv, r"running on http://127\.0\.0\.1:(\d+)", env=env) as port:
        yield f"ws://127.0.0.1:{port}/audio_proxy"


ENTRY_POINTS: dict[str, Callable[[str], contextlib.AbstractAsyncContextManager[str]]] = {
    "AudioProxy": audio_proxy,
    "middleware": middleware,
    "VoiceClient": voice_client_example,
    "serve": serve_command,
    "demo": demo_command,
}


@pytest.mark.parametrize("clients", [2, pytest.param(5, marks=pytest.mark.slow)])
# the demo's queue is also in the default run by tests/test_demo.py (its start-up talk holds the
# model server while a visitor waits): its copy here goes to the slow part
@pytest.mark.parametrize("entry", [pytest.param(name, marks=pytest.mark.slow) if name == "demo" else name
                                   for name in ENTRY_POINTS])
async def test_one_live_the_rest_queued_in_order_each_served_in_turn(entry: str, clients: int) -> None:
    async with watched_simulator() as (upstream, recorder), ENTRY_POINTS[entry](upstream.url) as url:
        await served_one_at_a_time(url, clients, recorder)


async def test_with_no_queue_the_second_client_is_refused_at_the_handshake() -> None:
    async with watched_simulator() as (upstream, recorder), \
            audio_proxy(upstream.url, max_queue=0, retry_after_s=7) as url:
        async with ProxyClient(url) as first:  # holds the model server
            with pytest.raises(InvalidStatus) as refused:
                await ws_connect(url, open_timeout=within(10))
            assert (await first.say(utterance(0))).text.startswith("Turn 1: heard")
        assert refused.value.response.status_code == 503
        assert refused.value.response.headers["Retry-After"] == "7"
        await recorder.wait_for(lambda r: r.ws_closed == r.ws_opened, within(10))
    recorder.assert_one_conversation_at_a_time(1)
