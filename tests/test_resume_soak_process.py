"""Cut-and-resume cycles of one Realtime session against ``serve`` as operators run it (a process
of its own, read from outside through ``/proc``): after the cycles and the client's close, the
serving process holds no more file descriptors than after a warm-up session, the model server's
socket of the session is closed (one conversation upstream, all along), and its resident memory
is flat over the second half of the cycles.

The default run makes :data:`QUICK_CYCLES`; the slow part 200 (``RESUME_SOAK_CYCLES`` sets it),
and prints its figures.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.processes import stop
from tests.tcp_relay import TcpRelay, tcp_relay
from tests.test_one_conversation import REPO, command, watched_simulator
from tests.test_workers import Said
from tests.timing import within

QUICK_CYCLES = 5
SOAK_CYCLES = int(os.environ.get("RESUME_SOAK_CYCLES", "200"))
#: resident memory may grow this much over the soak's second half (allocator noise, no leak)
FLAT_RSS_KIB = 1024
APPEND = json.dumps({"type": "input_audio_buffer.append",
                     "audio": base64.b64encode(bytes(4800)).decode()})  # 100 ms at 24 kHz


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@contextlib.asynccontextmanager
async def served(upstream: str) -> AsyncIterator[tuple[int, int, Said]]:
    """``serve`` on the simulator; yields its pid, its port, and what it logs."""
    proc = await asyncio.create_subprocess_exec(
        *command("serve", "--upstream", upstream, "--port", "0", "--chunk-duration", "0.2",
                 "--resume-grace", "10", "--shutdown-grace", "1"), cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    assert proc.stderr is not None
    said = Said(proc.stderr)
    try:
        found = await said.wait_for(r"running on http://127\.0\.0\.1:(\d+)", 20)
        yield proc.pid, int(found.group(1)), said
    finally:
        await stop(proc)
        await said.reading


async def next_event(ws: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(within(10)):
        event: dict[str, Any] = json.loads(await ws.recv())
    return event


async def cycles(relay: TcpRelay, n: int, pid: int) -> tuple[ClientConnection, list[int]]:
    """Open a resumable session, then ``n`` times: audio, a cut, a resume. Returns the last
    connection and the process's RSS (KiB) before the first cycle, at half way and at the end."""
    url = f"ws://127.0.0.1:{relay.port}/v1/realtime"
    ws = await connect(f"{url}?resumable=1")
    assert (await next_event(ws))["type"] == "session.created"
    ready = await next_event(ws)
    token, last = ready["resume_token"], ready["event_id"]
    rss = [rss_kib(pid)]
    for cycle in range(1, n + 1):
        await ws.send(APPEND)
        relay.cut()
        ws.transport.abort()  # the client's network went too
        ws = await connect(f"{url}?resume={token}&last_event_id={last}")
        resumed = await next_event(ws)
        assert resumed["type"] == "session.resumed", resumed
        token, last = resumed["resume_token"], resumed["event_id"]
        if cycle in (n // 2, n):
            rss.append(rss_kib(pid))
    return ws, rss


async def soak(n: int) -> tuple[int, int, list[int]]:
    """Returns the process's fds after the warm-up and after the soak, and the RSS figures."""
    async with watched_simulator() as (upstream, recorder), served(upstream.url) as (pid, port, said), \
            tcp_relay(port) as relay:
        warm = await connect(f"ws://127.0.0.1:{relay.port}/v1/realtime?resumable=1")
        await next_event(warm)  # the first session warms the pools up
        await warm.close()
        await said.wait_for(r"closed: code 1000", 10)
        baseline = fds(pid)
        ws, rss = await cycles(relay, n, pid)
        await ws.close()
        await said.wait_for(r"(?s)closed: code 1000.*closed: code 1000", 10)
        await recorder.wait_for(lambda r: r.ws_opened == r.ws_closed, timeout=within(10))
        after = fds(pid)
        assert recorder.ws_opened == 2, "one upstream socket per conversation, across every cut"
        assert f"{n} resumes" in "".join(said.lines)
    return baseline, after, rss


async def test_a_few_cut_and_resume_cycles_leave_no_fd_or_upstream_socket_in_serve() -> None:
    baseline, after, _ = await soak(QUICK_CYCLES)
    assert after <= baseline, f"fds: {baseline} before, {after} after"


@pytest.mark.slow
async def test_200_cut_and_resume_cycles_leak_no_fd_and_memory_is_flat_in_the_second_half() -> None:
    baseline, after, (start, half, end) = await soak(SOAK_CYCLES)
    print(f"\n{SOAK_CYCLES} cycles: fds {baseline} -> {after}; RSS {start} KiB at the start, "
          f"{half} KiB at half way, {end} KiB at the end ({end - half:+d} KiB in the second half)")
    assert after <= baseline, f"fds: {baseline} before, {after} after"
    assert end - half <= FLAT_RSS_KIB, f"RSS grew {end - half} KiB over the second half"
