"""Connect/disconnect cycles against one proxy process leave nothing behind.

A mix of clean closes, abrupt TCP drops and drops in the middle of a reply (those need a reply,
so they run a few at a time beside the others, on a simulator that keeps one conversation per
uid) against one ``runner.py soak`` process; its ``/debug`` reports what it holds. Afterwards:
no leftover asyncio task, no file descriptor beyond the baseline, no upstream connection left
open, traced memory within 1 MiB of the baseline. ``SOAK_CYCLES`` sets the count (1000).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.conftest import running_simulator
from tests.faults.observe import UTTERANCE
from tests.faults.shutdown import proxy_process
from tests.http_clients import http_client
from tests.timing import within

CYCLES = int(os.environ.get("SOAK_CYCLES", "1000"))
WORKERS = 4  # quick cycles in flight at once
MID_REPLY_BATCH = 10


async def opened(url: str) -> ClientConnection:
    ws = await connect(url, open_timeout=within(5), compression=None)
    assert b'"ready"' in (await ws.recv()).encode()  # type: ignore[union-attr]
    return ws


async def drop(ws: ClientConnection) -> None:
    """Vanish without a close frame, as a phone losing its network does."""
    ws.transport.abort()
    await ws.wait_closed()


async def clean_cycle(url: str) -> None:
    ws = await opened(url)
    await ws.send(UTTERANCE[:6400])
    await ws.close()


async def abrupt_cycle(url: str) -> None:
    ws = await opened(url)
    await ws.send(UTTERANCE[:6400])
    await drop(ws)


async def mid_reply_cycle(url: str) -> None:
    ws = await opened(url)
    for i in range(0, len(UTTERANCE), 3200):
        await ws.send(UTTERANCE[i:i + 3200])  # at once: the proxy paces it
    while not isinstance(await ws.recv(), bytes):
        pass  # until the reply's first audio
    await drop(ws)


async def cycles(url: str, count: int) -> None:
    mid = max(1, count // 50)
    quick = count - mid
    kinds = [clean_cycle, abrupt_cycle]

    async def worker(n: int) -> None:
        for i in range(n, quick, WORKERS):
            await kinds[i % 2](url)

    async def mid_replies() -> None:
        for start in range(0, mid, MID_REPLY_BATCH):
            async with asyncio.TaskGroup() as tg:
                for _ in range(min(MID_REPLY_BATCH, mid - start)):
                    tg.create_task(mid_reply_cycle(url))

    async with asyncio.TaskGroup() as tg:
        for n in range(WORKERS):
            tg.create_task(worker(n))
        tg.create_task(mid_replies())


@pytest.mark.soak
@pytest.mark.slow
async def test_connect_disconnect_cycles_leave_no_task_fd_upstream_or_memory() -> None:
    async with running_simulator(multi_conversation=True, reply_chunks=6, chunk_delay_s=0.1) as up, \
            proxy_process("soak", up.url, mode="soak") as (_, port), \
            http_client(base_url=f"http://127.0.0.1:{port}", trust_env=False) as http:
        url = f"ws://127.0.0.1:{port}/"
        recorder = up.sim.recorder

        async def settled() -> dict[str, Any]:
            await recorder.wait_for(lambda r: r.ws_opened == r.ws_closed and r.sse_opened == r.sse_closed,
                                    timeout=within(10))
            report: dict[str, Any] = (await http.get("/debug", timeout=within(10))).json()
            return report

        async with asyncio.timeout(within(120)):
            await cycles(url, 60)  # warm-up: imports, pools and caches reach their working size
            baseline = await settled()
            await cycles(url, CYCLES)
            after = await settled()
        ws_opened = recorder.ws_opened
    print(f"{CYCLES} cycles: before {baseline}, after {after}")
    assert after["sessions"] == 0
    assert after["task_names"] == baseline["task_names"], "leftover asyncio tasks"
    assert after["fds"] <= baseline["fds"], f"fds: {baseline['fds']} before, {after['fds']} after"
    grown = after["traced_bytes"] - baseline["traced_bytes"]
    assert grown < 2**20, f"traced memory grew by {grown} B over {CYCLES} cycles"
    assert ws_opened >= CYCLES  # every cycle reached the upstream
