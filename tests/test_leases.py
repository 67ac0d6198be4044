"""The lease store's rules (``leases.py``), as a contract every store passes; here on the memory store.

``UPSTREAM_PROTOCOL.md`` section 5.1: one conversation per upstream, so a grant is exclusive, the
queue is served in arrival order, and a dead holder's lease and place expire after the TTL.
``tests/test_leases_redis.py`` runs the same contract on a real redis-server.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from asgi_audio_proxy.pool.store import Grant, LeaseStore, MemoryLeaseStore, QueueFull, Waiting
from tests.timing import FakeClock, within

A, B = "http://gpu-a:32550", "http://gpu-b:32550"
URLS = (A, B)


class StoreContract:
    """Tests take the ``store`` fixture, or ``expiring_store`` (a short TTL) where leases must
    expire; subclasses provide both and say how time passes for them."""

    async def pass_time(self, store: LeaseStore, seconds: float) -> None:
        raise NotImplementedError

    async def fill(self, store: LeaseStore) -> tuple[Grant, Grant]:
        first, second = await store.join("t1", URLS, 8), await store.join("t2", URLS, 8)
        assert isinstance(first, Grant) and isinstance(second, Grant)
        return first, second

    async def test_sessions_take_free_upstreams_at_once_with_growing_tokens(self, store: LeaseStore) -> None:
        first, second = await self.fill(store)
        assert {first.url, second.url} == set(URLS)
        assert second.token > first.token
        assert (first.ticket, second.ticket) == ("t1", "t2")

    async def test_the_queue_is_served_in_arrival_order(self, store: LeaseStore) -> None:
        first, _ = await self.fill(store)
        assert [await store.join(t, URLS, 8) for t in ("t3", "t4", "t5")] == [
            Waiting(1, any_retry()), Waiting(2, any_retry()), Waiting(3, any_retry())]
        assert await store.release(first)
        assert await store.poll("t4", URLS) == Waiting(2, any_retry())  # a free place is the head's
        third = await store.poll("t3", URLS)
        assert isinstance(third, Grant) and third.url == first.url and third.token > first.token
        assert await store.poll("t4", URLS) == Waiting(1, any_retry())
        assert await store.poll("t5", URLS) == Waiting(2, any_retry())
        assert await store.poll("t3", URLS) is None  # served: no longer queued

    async def test_a_full_queue_refuses_the_next_session(self, store: LeaseStore) -> None:
        await self.fill(store)
        assert isinstance(await store.join("t3", URLS, 2), Waiting)
        assert isinstance(await store.join("t4", URLS, 2), Waiting)
        assert await store.join("t5", URLS, 2) == QueueFull(2)

    async def test_a_ticket_sent_back_waits_at_the_head_past_the_bound(self, store: LeaseStore) -> None:
        first, _ = await self.fill(store)
        assert isinstance(await store.join("t3", URLS, 1), Waiting)
        woken = asyncio.create_task(store.changed(store.version, None))
        assert await store.join("t0", URLS, 1, front=True) == Waiting(1, any_retry())
        async with asyncio.timeout(within(5)):
            await woken  # the others moved back one place
        assert await store.poll("t3", URLS) == Waiting(2, any_retry())
        assert await store.release(first)
        granted = await store.poll("t0", URLS)
        assert isinstance(granted, Grant) and granted.url == first.url
        assert isinstance(await store.join("t9", URLS, 8, front=True), Waiting)
        assert await store.poll("t3", URLS) == Waiting(2, any_retry())

    async def test_a_ticket_sent_back_takes_a_free_upstream_at_once(self, store: LeaseStore) -> None:
        first, _ = await self.fill(store)
        assert isinstance(await store.join("t3", URLS, 8), Waiting)
        assert await store.release(first)
        granted = await store.join("t0", URLS, 8, front=True)
        assert isinstance(granted, Grant) and granted.url == first.url

    async def test_an_upstream_left_out_of_the_candidates_is_not_granted(self, store: LeaseStore) -> None:
        only_a = await store.join("t1", [A], 8)
        assert isinstance(only_a, Grant) and only_a.url == A
        assert await store.join("t2", [A], 8) == Waiting(1, any_retry())  # B is free but unhealthy
        granted = await store.poll("t2", URLS)
        assert isinstance(granted, Grant) and granted.url == B

    async def test_leaving_frees_the_place_and_wakes_the_waiters(self, store: LeaseStore) -> None:
        await self.fill(store)
        await store.join("t3", URLS, 8)
        await store.join("t4", URLS, 8)
        woken = asyncio.create_task(store.changed(store.version, None))
        await store.leave("t3", URLS)
        async with asyncio.timeout(within(5)):
            await woken
        assert await store.poll("t4", URLS) == Waiting(1, any_retry())

    async def test_a_release_wakes_a_waiter_and_lets_it_in(self, store: LeaseStore) -> None:
        first, _ = await self.fill(store)
        assert isinstance(await store.join("t3", URLS, 8), Waiting)
        woken = asyncio.create_task(store.changed(store.version, None))
        await store.release(first)
        async with asyncio.timeout(within(5)):
            await woken
        assert isinstance(await store.poll("t3", URLS), Grant)

    async def test_only_the_holder_of_the_current_token_renews_or_releases(self, store: LeaseStore) -> None:
        first, second = await self.fill(store)
        assert await store.renew((), (first, second)) == set()
        assert await store.release(first)
        assert not await store.release(first)
        assert await store.renew(("nobody",), (first, second)) == {"nobody", first}
        again = await store.join("t3", URLS, 8)
        assert isinstance(again, Grant) and again.url == first.url
        assert not await store.release(first)  # an old token cannot end the new lease
        assert (await store.snapshot(URLS)).leases[first.url] == again

    async def test_leave_also_ends_a_lease_the_ticket_was_granted(self, store: LeaseStore) -> None:
        first, _ = await self.fill(store)
        await store.leave(first.ticket, URLS)
        assert first.url not in (await store.snapshot(URLS)).leases

    async def test_a_dead_holders_lease_expires_and_the_next_in_line_gets_it(
            self, expiring_store: LeaseStore) -> None:
        store = expiring_store
        dead = await store.join("dead", [A], 8)
        assert isinstance(dead, Grant)
        waiting = await store.join("alive", [A], 8)
        assert isinstance(waiting, Waiting) and waiting.retry_in_s is not None
        assert 0 < waiting.retry_in_s <= store.ttl_s
        await self.pass_time(store, 0.6 * store.ttl_s)
        assert await store.renew(("alive",), ()) == set()  # only the live replica beats
        await self.pass_time(store, 0.6 * store.ttl_s)
        granted = await store.poll("alive", [A])
        assert isinstance(granted, Grant) and granted.token > dead.token
        assert not await store.release(dead)

    async def test_a_dead_replicas_place_in_the_queue_expires(self, expiring_store: LeaseStore) -> None:
        store = expiring_store
        first, second = await self.fill(store)
        await store.join("dead", URLS, 8)
        assert await store.join("alive", URLS, 8) == Waiting(2, any_retry())
        await self.pass_time(store, 0.6 * store.ttl_s)
        assert await store.renew(("alive",), (first, second)) == set()
        await self.pass_time(store, 0.6 * store.ttl_s)
        assert await store.poll("alive", URLS) == Waiting(1, any_retry())
        assert (await store.snapshot(URLS)).queue == ("alive",)

    async def test_a_thousand_join_leave_cycles_leave_nothing_behind(self, store: LeaseStore) -> None:
        tasks_before = len(asyncio.all_tasks())
        first, second = await self.fill(store)
        for i in range(1000):
            assert await store.join(f"c{i}", URLS, 8) == Waiting(1, any_retry())
            await store.leave(f"c{i}", URLS)
        assert await store.release(first) and await store.release(second)
        snapshot = await store.snapshot(URLS)
        assert snapshot.queue == () and dict(snapshot.leases) == {}
        assert len(asyncio.all_tasks()) == tasks_before


class _Any:
    """Matches any retry time: the tests check places, not clocks."""

    def __eq__(self, other: object) -> bool:
        return other is None or isinstance(other, float)


def any_retry() -> float | None:
    return _Any()  # type: ignore[return-value]


class TestMemoryLeaseStore(StoreContract):
    @pytest.fixture
    async def store(self) -> AsyncIterator[MemoryLeaseStore]:
        self.clock = FakeClock()
        store = MemoryLeaseStore(ttl_s=10.0, clock=self.clock)
        await store.start()
        yield store
        await store.aclose()

    @pytest.fixture
    def expiring_store(self, store: MemoryLeaseStore) -> MemoryLeaseStore:
        return store  # its clock is ours: any TTL expires at once

    async def pass_time(self, store: LeaseStore, seconds: float) -> None:
        self.clock.now += seconds

    def test_a_ttl_must_be_positive_and_finite(self) -> None:
        for ttl in (0, -1, float("inf")):
            with pytest.raises(ValueError, match="ttl_s"):
                MemoryLeaseStore(ttl_s=ttl)
