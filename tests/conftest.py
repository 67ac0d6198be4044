"""Shared fixtures: the simulator on a loopback port, the proxy on uvicorn or hypercorn, a private
Redis per module that asks for one (``redis_url``), and a garbage collection after every test, so
that whatever a test left open fails that test. The hooks that spread the tests over xdist's
workers are here; their rules, in ``scheduling.py``."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from xdist.scheduler import LoadScopeScheduling

from asgi_audio_proxy.config import ProxyConfig
from asgi_audio_proxy.edge.middleware import AudioProxy
from asgi_audio_proxy.simulator.app import UpstreamSimulator
from tests.fakes import OpenLeaser
from tests.redis_server import HAVE_REDIS, SKIP_REASON, redis_server
from tests.scheduling import SharedWorkScheduling
from tests.servers import serve, serve_uvicorn
from tests.timing import within


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> LoadScopeScheduling | None:
    """Which tests share a worker: ``tests/scheduling.py``."""
    return SharedWorkScheduling(config, log) if config.getvalue("dist") == "load" else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Each test's hang limit (pytest-timeout's) scales with the machine as its deadlines do."""
    default_s = float(config.getini("timeout") or 0)
    scale = within(1.0)  # read once: it reads the load, and the items are a thousand and more
    for item in items:
        marker = item.get_closest_marker("timeout")
        limit_s = default_s
        if marker is not None:
            limit_s = float(marker.args[0] if marker.args else marker.kwargs.get("timeout", default_s))
        if limit_s > 0:
            item.add_marker(pytest.mark.timeout(limit_s * scale), append=False)


@pytest.hookimpl(wrapper=True)
def pytest_timeout_set_timer(item: pytest.Item, settings: Any) -> Iterator[Any]:
    """A test past its hang limit also prints where each of its asyncio tasks waits: the thread
    stacks pytest-timeout prints show only the event loop idling in ``select``."""
    done = yield
    handler = signal.getsignal(signal.SIGALRM) if hasattr(signal, "SIGALRM") else None
    if not callable(handler):
        return done

    def dump_then_fail(signum: int, frame: Any) -> None:
        try:  # the handler runs in the main thread, inside the test's loop if one runs
            tasks = asyncio.all_tasks(asyncio.get_running_loop())
        except RuntimeError:
            tasks = set()
        for task in tasks:
            print(f"--- asyncio task {task.get_name()} waits in:", file=sys.stderr)
            awaiting: Any = task.get_coro()
            while awaiting is not None:  # down the chain of awaits, outermost first
                where = getattr(awaiting, "cr_frame", None) or getattr(awaiting, "ag_frame", None)
                if where is not None:
                    print(f"  {where.f_code.co_filename}:{where.f_lineno} in {where.f_code.co_name}",
                          file=sys.stderr)
                awaiting = (getattr(awaiting, "cr_await", None) or getattr(awaiting, "ag_await", None)
                            or getattr(awaiting, "gi_yieldfrom", None)
                            or next((o for o in gc.get_referents(awaiting)  # an asend: its generator
                                     if hasattr(o, "ag_frame")), None))
        handler(signum, frame)

    signal.signal(signal.SIGALRM, dump_then_fail)
    return done


def pytest_collection_finish(session: pytest.Session) -> None:
    """What collection imported lives for the whole run: frozen, no collection scans it again
    (a full collection of it takes about 100 ms; of what one test leaves, under 1 ms)."""
    gc.collect()
    gc.freeze()


@pytest.fixture(autouse=True)
def _collect_what_the_test_left() -> Iterator[None]:
    """An unclosed socket, transport or file found garbage is a ``ResourceWarning``, an error
    here (``filterwarnings``): collected now, it fails the test that left it, in its teardown,
    instead of whichever test runs when the collector next happens to. What is still alive
    then (a module a test imported, a module fixture's value) is frozen like the imports."""
    yield
    gc.collect()
    gc.freeze()


@pytest.hookimpl(tryfirst=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """One last full collection sees everything again (a module fixture's value was frozen with
    it: an unclosed socket in it is still an error), then what lives on is frozen once more, so
    pytest's own two collections after this one scan only what is new. Over the whole heap of a
    worker at its end (Pipecat, LiveKit, openai, aiortc: 400 000 objects and more), each full one
    takes 0.25 s of CPU or more, with every worker ending at once."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


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


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """A redis-server of the module's own (``redis://...``); its tests skip where none is installed."""
    if not HAVE_REDIS:
        pytest.skip(SKIP_REASON)
    with redis_server() as url:
        yield url


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
