"""Shared fixtures: the simulator on a loopback port, the proxy on uvicorn or hypercorn."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from asgi_audio_proxy.config import ProxyConfig
from asgi_audio_proxy.edge.middleware import AudioProxy
from asgi_audio_proxy.simulator.app import UpstreamSimulator
from tests.fakes import OpenLeaser
from tests.servers import serve, serve_uvicorn


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
