"""Background tasks stop for sure: a loop that survives one cancellation (a library under it
swallowed it) is cancelled again, so closing the pool cannot hang."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import pytest

from asgi_audio_proxy.errors import LeaseStoreUnavailable
from asgi_audio_proxy.pool.pool import UpstreamPool
from asgi_audio_proxy.pool.store import MemoryLeaseStore, StoreSnapshot
from asgi_audio_proxy.tasks import stop_task
from tests.conftest import running_simulator
from tests.timing import within


async def swallow_one_cancellation(waiting: asyncio.Event, swallowed: asyncio.Event) -> None:
    """A loop whose first cancellation is lost, as when a library's own timeout expires as the
    cancellation lands and the loop handles the resulting error as one more failed round."""
    while True:
        try:
            waiting.set()
            await asyncio.Event().wait()  # only a cancellation ends it
        except asyncio.CancelledError:
            if swallowed.is_set():
                raise
            swallowed.set()


async def test_a_task_that_swallows_its_cancellation_is_cancelled_again(
        caplog: pytest.LogCaptureFixture) -> None:
    waiting, swallowed = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(swallow_one_cancellation(waiting, swallowed), name="stubborn")
    async with asyncio.timeout(within(5)):
        await waiting.wait()
        await stop_task(task, grace_s=0.05)
    assert swallowed.is_set() and task.cancelled()
    assert "task stubborn still runs 0.05 s after it was cancelled" in caplog.text


async def test_the_error_a_task_ended_with_is_raised() -> None:
    async def fails() -> None:
        raise RuntimeError("broken")

    task = asyncio.create_task(fails())
    await asyncio.wait({task})  # it has failed: stopping it now gives its error
    with pytest.raises(RuntimeError, match="broken"):
        await stop_task(task)


class SwallowingStore(MemoryLeaseStore):
    """A store whose read, once blocked, turns its first cancellation into a store failure, as a
    client library does when its own timeout expires as the cancellation lands."""

    def __init__(self) -> None:
        super().__init__()
        self.blocked = asyncio.Event()
        self.swallowed = asyncio.Event()

    async def snapshot(self, urls: Sequence[str]) -> StoreSnapshot:
        self.blocked.set()
        try:
            await asyncio.Event().wait()  # only a cancellation ends it
        except asyncio.CancelledError:
            if self.swallowed.is_set():
                raise
            self.swallowed.set()
            raise LeaseStoreUnavailable("the store timed out") from None
        raise AssertionError("a wait on an event never set ended")


async def test_a_pool_whose_store_swallows_a_cancellation_still_closes(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="asgi_audio_proxy.tasks")
    store = SwallowingStore()
    async with running_simulator() as up:
        pool = UpstreamPool([up.url], store=store, health_interval_s=0.05)
        await pool.start()
        async with asyncio.timeout(within(10)):
            await store.blocked.wait()  # the health round reads which servers are held
            await pool.aclose()
    assert store.swallowed.is_set()
    assert "task pool-health still runs 1 s after it was cancelled" in caplog.text
