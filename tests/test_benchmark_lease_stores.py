"""``python -m benchmarks.lease_stores``: a lease's cost in each store, measured on the stores
themselves (the Redis row needs a redis-server and is left to the command)."""

from __future__ import annotations

import tempfile

from asgi_audio_proxy.pool.file_store import FileLeaseStore
from asgi_audio_proxy.pool.store import MemoryLeaseStore
from benchmarks.lease_stores import measure


async def test_the_memory_and_file_stores_are_timed_and_left_empty() -> None:
    with tempfile.TemporaryDirectory(prefix="aap-") as directory:
        for store in (MemoryLeaseStore(), FileLeaseStore(directory)):
            try:
                figures = await measure(store, 20)
                snapshot = await store.snapshot(("http://gpu-a:32550",))
            finally:
                await store.aclose()
            assert set(figures) == {"join+release p50 us", "join+release p99 us",
                                    "join+leave p50 us", "join+leave p99 us"}
            assert all(0 < value < 1e6 for value in figures.values()), figures
            assert figures["join+release p50 us"] <= figures["join+release p99 us"]
            assert snapshot.queue == () and dict(snapshot.leases) == {}
