"""Shared fixtures: the simulator on a loopback port, the proxy on uvicorn or hypercorn, and a
garbage collection after every test, so that whatever a test left open fails that test."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from xdist.scheduler import LoadScopeScheduling

from asgi_audio_proxy.config import ProxyConfig
from asgi_audio_proxy.edge.middleware import AudioProxy
from asgi_audio_proxy.simulator.app import UpstreamSimulator
from tests.fakes import OpenLeaser
from tests.servers import serve, serve_uvicorn
from tests.timing import within

#: test modules whose tests all read one module fixture that does their work at once (a group of
#: the fault table, the quick benchmark run): a module goes to one worker whole, or each worker
#: that got one of its tests would do all that work again, beside the others doing it too
SHARE_A_WORKER = {
    "tests/faults/test_upstream_faults.py": "fault table",
    "tests/faults/test_bad_input.py": "fault table",
    "tests/faults/test_dialect_input.py": "fault table",
    "tests/faults/test_admission.py": "fault table",
    "tests/faults/test_shutdown.py": "fault table",  # the groups in turn, as python -m tests.faults
    "tests/test_benchmarks.py": "quick benchmark",
}


class _SharedWorkScheduling(LoadScopeScheduling):
    """xdist's ``load`` distribution, test by test, except that :data:`SHARE_A_WORKER` modules go
    whole (first, being the largest units). Its own ``xdist_group`` mark does this by renaming
    each test, which pytest 9 no longer allows."""

    def _split_scope(self, nodeid: str) -> str:
        return SHARE_A_WORKER.get(nodeid.split("::", 1)[0], nodeid)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> LoadScopeScheduling | None:
    return _SharedWorkScheduling(config, log) if config.getvalue("dist") == "load" else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Each test's hang limit (pytest-timeout's) scales with the machine as its deadlines do."""
    default_s = float(config.getini("timeout") or 0)
    for item in items:
        marker = item.get_closest_marker("timeout")
        limit_s = default_s
        if marker is not None:
            limit_s = float(marker.args[0] if marker.args else marker.kwargs.get("timeout", default_s))
        if limit_s > 0:
            item.add_marker(pytest.mark.timeout(within(limit_s)), append=False)


def pytest_collection_finish(session: pytest.Session) -> None:
    """What collection imported lives for the whole run: frozen, no collection scans it again
    (a full collection of it takes about 100 ms; of what one test leaves, under 1 ms)."""
    gc.collect()
    gc.freeze()


@pytest.fixture(autouse=True)
def _collect_what_the_test_left() -> Iterator[None]:
    """An unclosed socket, transport or file found garbage is a ``ResourceWarning``, an error
    here (``filterwarnings``): collected now, it fails the test that left it, in its teardown,
    instead of whichever test runs when the collector next happens to."""
    yield
    gc.collect()


@dataclass
class Upstream:
    sim: UpstreamSimulator
    url: str


@contextlib.asynccontextmanager
async def running_simulator(**options: Any) -> AsyncIterator[Upstream]:
    sim = UpstreamSimulator(**options)
    try:
        async with serve_uvicorn(sim) as port:
            yield Upstream(sim, f"http://127.0.0.1:{port}")
    finally:
        sim.close()


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    async with running_simulator() as up:
        yield up


@pytest.fixture(params=["uvicorn", "hypercorn"])
def server(request: pytest.FixtureRequest) -> str:
    """Each test that takes it runs once on each ASGI server."""
    return str(request.param)


@contextlib.asynccontextmanager
async def running_proxy(server: str, upstream_url: str, *, many: bool = False, **config: Any
                        ) -> AsyncIterator[tuple[AudioProxy, str]]:
    """An :class:`AudioProxy` on ``server``; yields it and its ws:// URL. ``many``: the upstream
    holds any number of conversations (a multi-conversation simulator)."""
    proxy = AudioProxy(ProxyConfig(upstream_url=upstream_url, **config),
                       leaser=OpenLeaser(upstream_url) if many else None)
    try:
        async with serve(server, proxy) as port:
            yield proxy, f"ws://127.0.0.1:{port}/"
    finally:
        await proxy.aclose()
