"""``FileLeaseStore``: the store contract of ``tests/test_leases.py`` on a file, plus what only a
store shared by processes shows (a change in one store wakes the others, a dead one's wake-up
socket is removed, a state file with a torn tail still reads).
"""

from __future__ import annotations

import asyncio
import socket
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from asgi_audio_proxy.pool.file_store import FileLeaseStore
from asgi_audio_proxy.pool.store import Grant, LeaseStore, Waiting
from tests.test_leases import URLS, StoreContract, any_retry
from tests.timing import FakeClock, within


@pytest.fixture
def run_dir() -> Iterator[Path]:
    # not tmp_path: a Unix socket path must stay under about 100 bytes
    with tempfile.TemporaryDirectory(prefix="aap-") as directory:
        yield Path(directory)


def wake_sockets(run_dir: Path) -> list[str]:
    return sorted(p.name for p in run_dir.iterdir() if p.suffix == ".wake")


class TestFileLeaseStore(StoreContract):
    @pytest.fixture
    async def store(self, run_dir: Path) -> AsyncIterator[FileLeaseStore]:
        self.clock = FakeClock()
        store = FileLeaseStore(run_dir, ttl_s=10.0, clock=self.clock)
        await store.start()
        yield store
        await store.aclose()

    @pytest.fixture
    def expiring_store(self, store: FileLeaseStore) -> FileLeaseStore:
        return store  # its clock is ours: any TTL expires at once

    async def pass_time(self, store: LeaseStore, seconds: float) -> None:
        self.clock.now += seconds


async def test_two_stores_on_one_directory_share_the_queue_and_wake_each_other(run_dir: Path) -> None:
    one, two = FileLeaseStore(run_dir, ttl_s=10.0), FileLeaseStore(run_dir, ttl_s=10.0)
    await one.start()
    await two.start()
    try:
        first, second = await one.join("one-1", URLS, 8), await two.join("two-1", URLS, 8)
        assert isinstance(first, Grant) and isinstance(second, Grant) and first.url != second.url
        assert await two.join("two-2", URLS, 8) == Waiting(1, any_retry())
        seen = two.version
        assert await one.release(first)
        async with asyncio.timeout(within(5)):  # told through its wake-up socket
            await two.changed(seen, None)
        granted = await two.poll("two-2", URLS)
        assert isinstance(granted, Grant) and granted.url == first.url and granted.token > second.token
    finally:
        await one.aclose()
        await two.aclose()


async def test_a_dead_stores_wake_up_socket_is_removed_at_the_next_change(run_dir: Path) -> None:
    dead = run_dir / "999999-dead.wake"
    orphan = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    orphan.bind(str(dead))
    orphan.close()  # bound, then its process "died": the path stays, nobody reads it
    store = FileLeaseStore(run_dir)
    await store.start()
    try:
        grant = await store.join("t1", URLS, 8)
        assert isinstance(grant, Grant)
        assert not dead.exists()
        assert wake_sockets(run_dir) == [store._wake_path.name]
    finally:
        await store.aclose()
    assert wake_sockets(run_dir) == []


async def test_a_state_file_with_a_torn_tail_still_reads(run_dir: Path) -> None:
    store = FileLeaseStore(run_dir)
    grant = await store.join("t1", URLS, 8)
    assert isinstance(grant, Grant)
    with (run_dir / "leases.json").open("ab") as state:
        state.write(b'"old bytes a killed writer left}')
    assert (await store.snapshot(URLS)).leases == {grant.url: grant}
    await store.aclose()


def test_a_directory_too_long_for_a_socket_path_is_refused() -> None:
    with pytest.raises(ValueError, match="directory"):
        FileLeaseStore("/tmp/" + "d" * 120)
    with pytest.raises(ValueError, match="ttl_s"):
        FileLeaseStore("/tmp/x", ttl_s=0)
