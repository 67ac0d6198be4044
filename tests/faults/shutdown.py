"""Graceful shutdown of a real server process, as a scenario: SIGTERM mid-reply.

uvicorn is ``asgi-audio-proxy serve``; hypercorn is :mod:`tests.faults.runner`. The simulator
runs in this process, so its record shows the ``/stop`` and the closed upstream connections.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from websockets.asyncio.client import connect

from tests.faults.observe import (
    UTTERANCE,
    Checks,
    Outcome,
    opened,
    read_to_close,
    table_simulator,
    upstream_settled,
)
from tests.timing import within

__all__ = ["GRACE_S", "proxy_process", "shutdown"]

REPO = Path(__file__).resolve().parents[2]
GRACE_S = 2.0
_PORT = {"uvicorn": re.compile(rb"Uvicorn running on http://127\.0\.0\.1:(\d+)"),
         "hypercorn": re.compile(rb"listening on (\d+)")}


def proxy_command(server: str, upstream_url: str) -> list[str]:
    if server == "uvicorn":  # the console script, as an operator runs it
        script = Path(sys.executable).with_name("asgi-audio-proxy")
        found = str(script) if script.exists() else shutil.which("asgi-audio-proxy")
        base = [found] if found else [sys.executable, "-m", "asgi_audio_proxy.cli"]
        return [*base, "serve", "--upstream", upstream_url, "--port", "0", "--path", "/",
                "--chunk-duration", "0.2", "--shutdown-grace", str(GRACE_S)]
    return [sys.executable, "-m", "tests.faults.runner", server, "--upstream", upstream_url,
            "--grace", str(GRACE_S)]


@asynccontextmanager
async def proxy_process(server: str, upstream_url: str, mode: str | None = None
                        ) -> AsyncIterator[tuple[asyncio.subprocess.Process, int]]:
    """Start the proxy process; yield it and its port once it says it listens. Killed on exit."""
    argv = (proxy_command(server, upstream_url) if mode is None else
            [sys.executable, "-m", "tests.faults.runner", mode, "--upstream", upstream_url])
    proc = await asyncio.create_subprocess_exec(*argv, cwd=REPO, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    assert proc.stdout is not None
    pattern = _PORT["uvicorn" if server == "uvicorn" and mode is None else "hypercorn"]
    try:
        async with asyncio.timeout(within(15)):
            while not (match := pattern.search(line := await proc.stdout.readline())):
                if not line:
                    raise RuntimeError(f"{argv[:4]} exited before listening")
        yield proc, int(match.group(1))
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def shutdown(server: str) -> Outcome:
    """A live session mid-reply, then SIGTERM to the server process."""
    expected = "close 1001; stop + upstream closed; exit 0 within grace"
    outcome, checks = Outcome("shutdown SIGTERM mid-reply", server, expected), Checks()
    # a long reply (10 chunks, 0.3 s apart) that is still playing when the signal comes
    async with table_simulator(chunk_delay_s=0.3, reply_chunks=10) as up, \
            proxy_process(server, up.url) as (proc, port):
        async with connect(f"ws://127.0.0.1:{port}/", open_timeout=within(5)) as ws:
            await opened(ws, checks)
            for i in range(0, len(UTTERANCE), 640):
                await ws.send(UTTERANCE[i:i + 640])  # at once: the proxy paces it
            async with asyncio.timeout(within(10)):
                while not isinstance(await ws.recv(), bytes):
                    pass  # until the reply's first audio
            loop = asyncio.get_running_loop()
            signalled = loop.time()
            proc.send_signal(signal.SIGTERM)
            transcript = await read_to_close(ws, timeout_s=GRACE_S + 3)
        try:
            async with asyncio.timeout(within(GRACE_S + 3)):
                code = await proc.wait()
        except TimeoutError:
            code = None
        took_s = loop.time() - signalled
        await upstream_settled(up.sim.recorder, checks)
        stops = up.sim.recorder.stops
        rest = b"" if proc.stdout is None else await proc.stdout.read()
    # uvicorn closes open WebSockets itself with 1012 if the app has not closed first
    checks.that("client close", transcript.close_code in (1001, 1012), transcript.describe())
    checks.that("error event, if any, is server_shutdown 1001",
                transcript.errors in ([], [("server_shutdown", 1001)]), transcript.errors)
    checks.that("upstream told to stop", stops >= 1, stops)
    checks.equal("exit status", code, 0)
    # the grace is the proxy's own timer; the second after it, to close and exit, is CPU work
    # and scales with the machine's load like every deadline (5.1 s once with a core kept busy)
    exit_s = within(1)
    checks.that(f"exited within the grace period ({GRACE_S:g} s + {exit_s:.1f} s)",
                took_s < GRACE_S + exit_s, f"{took_s:.1f} s")
    checks.that("no traceback", b"Traceback" not in rest, rest[-400:])
    outcome.observed = (f"{transcript.describe()}; {stops} stop; "
                        f"exit {code} after {took_s:.1f} s")
    outcome.failures = checks.failures
    return outcome

