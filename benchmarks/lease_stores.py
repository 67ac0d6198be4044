"""Lease store figures: what one session's lease costs in each store, memory, file and Redis.

Owns: the timing of a lease's life as the pool lives it, on each
:class:`~asgi_audio_proxy.pool.store.LeaseStore`: a ``join`` that is granted at once, then a
``release`` (one session, a free upstream), and a ``join`` that queues behind a held lease and
its ``leave`` (a client that gives up). Each cycle runs ``--cycles`` times, one store at a time,
in this process; the figure is the median and the 99th percentile of one cycle's wall time, in
microseconds. The file store's runs in a fresh directory under ``/tmp``; Redis's on a
``redis-server`` started on a free loopback port for the run (skipped if none is installed).
A file store call holds its lock for the time it reads and writes the state, and blocks its
event loop meanwhile: the figure is that time, plus the wake-up datagrams to the other processes
(none here).

Run: ``python -m benchmarks.lease_stores [--cycles N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import socket
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from asgi_audio_proxy.pool.file_store import FileLeaseStore
from asgi_audio_proxy.pool.store import Grant, LeaseStore, MemoryLeaseStore

__all__ = ["main", "measure"]

URLS = ("http://gpu-a:32550",)


async def measure(store: LeaseStore, cycles: int) -> dict[str, float]:
    """Median and p99 of a granted join + release, and of a queued join + leave, in µs."""
    await store.start()
    granted, queued = [], []
    for i in range(cycles):
        started = time.perf_counter()
        grant = await store.join(f"s{i}", URLS, 32)
        assert isinstance(grant, Grant)
        await store.release(grant)
        granted.append(time.perf_counter() - started)
    holder = await store.join("holder", URLS, 32)
    for i in range(cycles):
        started = time.perf_counter()
        await store.join(f"w{i}", URLS, 32)
        await store.leave(f"w{i}", URLS)
        queued.append(time.perf_counter() - started)
    assert isinstance(holder, Grant)
    await store.release(holder)
    return {"join+release p50 us": _percentile(granted, 50), "join+release p99 us": _percentile(granted, 99),
            "join+leave p50 us": _percentile(queued, 50), "join+leave p99 us": _percentile(queued, 99)}


def _percentile(samples: list[float], p: int) -> float:
    return statistics.quantiles(samples, n=100)[p - 1] * 1e6 if p < 100 else max(samples) * 1e6


@contextlib.asynccontextmanager
async def _stores() -> AsyncIterator[list[tuple[str, Callable[[], Any]]]]:
    with tempfile.TemporaryDirectory(prefix="aap-bench-") as directory:
        stores: list[tuple[str, Callable[[], Any]]] = [
            ("memory", MemoryLeaseStore), ("file", lambda: FileLeaseStore(directory))]
        server = shutil.which("redis-server")
        if server is None:
            yield stores
            return
        from asgi_audio_proxy.pool.redis_store import RedisLeaseStore

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        redis = await asyncio.create_subprocess_exec(
            server, "--port", str(port), "--save", "", "--appendonly", "no",
            stdout=asyncio.subprocess.DEVNULL)
        try:
            url = f"redis://127.0.0.1:{port}/0"
            await _until_answering(port)
            stores.append(("redis", lambda: RedisLeaseStore.from_url(url)))
            yield stores
        finally:
            redis.terminate()
            await redis.wait()


async def _until_answering(port: int) -> None:
    async with asyncio.timeout(10):
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)  # redis-server starting: it says nothing when it is up
                continue
            writer.close()
            return


async def _run(cycles: int) -> list[tuple[str, dict[str, float]]]:
    rows = []
    async with _stores() as stores:
        for name, make in stores:
            store = make()
            try:
                rows.append((name, await measure(store, cycles)))
            finally:
                await store.aclose()
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.lease_stores", description=__doc__)
    parser.add_argument("--cycles", type=int, default=2000, help="cycles per store (default 2000)")
    args = parser.parse_args(argv)
    rows = asyncio.run(_run(args.cycles))
    columns = list(rows[0][1])
    print("| store | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for name, figures in rows:
        print(f"| {name} | " + " | ".join(f"{figures[c]:.0f}" for c in columns) + " |")


if __name__ == "__main__":
    main()
