"""``UpstreamHealth``: which upstreams the pool may lease, by their kinds' probes and by their sessions.

Owns: the set of healthy upstreams, one round of checks (each server's kind says how: the
MiniCPM-o server's ``GET /health``, ``UPSTREAM_PROTOCOL.md`` section 2.1), the loop that repeats
it, and waiting for an upstream to leave or return. An upstream fails a check when its probe says
why (a non-200 answer, a transport error, ``timeout_s``); a session that failed on it takes it out
at once (:meth:`UpstreamHealth.mark`); a passing check brings it back.
Must not: lease, queue or talk to clients (the pool does), or check an upstream the pool says is
held and must not be probed: the MiniCPM-o server answers nothing, ``/health`` included, while
its model runs (section 1).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Literal

import httpx

from ..errors import AudioProxyError
from ..upstreams.kind import HealthProbe, http_probe
from .store import ChangeSignal

__all__ = ["HealthSource", "UpstreamHealth"]

logger = logging.getLogger("asgi_audio_proxy.health")
HealthSource = Literal["health", "session"]


class UpstreamHealth:
    """The healthy subset of ``urls``; all of them until a check or a session says otherwise.

    Args:
        urls: the upstreams' base URLs.
        http_client: for the checks; not closed here.
        timeout_s: a check slower than this fails.
        on_change: called with ``(url, healthy, source)`` whenever an upstream leaves or returns.
        probes: each upstream's probe, by URL; ``GET /health`` for any not named.
    """

    def __init__(self, urls: Sequence[str], http_client: httpx.AsyncClient, *, timeout_s: float,
                 on_change: Callable[[str, bool, HealthSource], None],
                 probes: Mapping[str, HealthProbe] | None = None) -> None:
        self.urls = tuple(urls)
        default = http_probe("/health")
        self._probes = {url: (probes or {}).get(url, default) for url in self.urls}
        self._http_client = http_client
        self._timeout_s = timeout_s
        self._on_change = on_change
        self._healthy = set(self.urls)
        self._changes = ChangeSignal()

    @property
    def healthy(self) -> frozenset[str]:
        return frozenset(self._healthy)

    def candidates(self) -> list[str]:
        """The healthy upstreams, in configured order (the order leases fill them)."""
        return [url for url in self.urls if url in self._healthy]

    async def check(self, held: Collection[str] = ()) -> None:
        """One round of probes, concurrently, on every upstream not in ``held``."""
        async with asyncio.TaskGroup() as tg:
            for url in self.urls:
                if url not in held:
                    tg.create_task(self._probe(url))

    async def run(self, interval_s: float, held: Callable[[], Awaitable[Collection[str]]]) -> None:
        """Check every ``interval_s`` forever, skipping what ``held()`` returns."""
        while True:
            try:
                await self.check(await held())
            except AudioProxyError as exc:  # the lease store failed: nothing to skip by
                logger.warning("health round skipped: %s", exc)
            await asyncio.sleep(interval_s)  # a production timer, not a test wait

    def mark(self, url: str, healthy: bool, source: HealthSource, why: str) -> None:
        """Put ``url`` in or out of the pool, saying why; nothing happens if it already is."""
        if (url in self._healthy) == healthy:
            return
        if healthy:
            self._healthy.add(url)
            logger.info("upstream %s is back in the pool", url)
        else:
            self._healthy.discard(url)
            logger.warning("upstream %s is out of the pool: %s", url, why)
        self._changes.bump()
        self._on_change(url, healthy, source)

    async def wait(self, url: str, healthy: bool = True) -> None:
        """Return once ``url`` is (``healthy``) or is not in the pool; for readiness and tests."""
        while (url in self._healthy) != healthy:
            await self._changes.wait(self._changes.version, None)

    async def _probe(self, url: str) -> None:
        why = await self._probes[url](self._http_client, url, self._timeout_s)
        self.mark(url, why is None, "health", why or "")
