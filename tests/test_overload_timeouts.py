"""Every wait a session makes ends as the error it is, not as our bug.

An overloaded or hung model server shows up as waits that run out: a server that accepts the
connection and never answers, one that finishes the WebSocket handshake and then says nothing,
an adapter whose library lets its own ``TimeoutError`` out. Each must end the session with
``upstream_timeout`` (1011) in the client's own dialect, never ``internal_error``. A lease store
(Redis) that never answers is ``lease_store_unavailable`` (1011), not a wait without end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from asgi_audio_proxy import AudioProxy, ProxyConfig
from asgi_audio_proxy.config import UpstreamOptions
from asgi_audio_proxy.dialects.realtime import realtime_dialect
from asgi_audio_proxy.errors import LeaseStoreUnavailable
from asgi_audio_proxy.pool import RedisLeaseStore, UpstreamPool
from asgi_audio_proxy.session.session import ProxySession
from asgi_audio_proxy.upstreams.minicpm.adapter import MiniCPMAdapter
from asgi_audio_proxy.upstreams.registry import named_kind
from tests.fakes import FakeClient, FakeUpstream, OpenLeaser
from tests.faults.silent import silent_upstream
from tests.http_clients import http_client
from tests.servers import serve_uvicorn
from tests.timing import within

#: the proxy's connect timeout here: the session's own deadline is three of it
CONNECT_TIMEOUT_S = 0.2


@contextlib.asynccontextmanager
async def silent_tcp_server() -> AsyncIterator[int]:
    """The port of a loopback server that accepts every connection and never sends a byte."""
    async with silent_upstream() as url:
        yield int(url.rsplit(":", 1)[1])


@contextlib.asynccontextmanager
async def silent_websocket_server() -> AsyncIterator[int]:
    """A loopback WebSocket server that completes the handshake, then reads and never answers."""
    async def listen(ws: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for _ in ws:
                pass

    async with serve(listen, "127.0.0.1", 0, ping_interval=None) as server:
        yield next(iter(server.sockets)).getsockname()[1]


def _url(kind: str, port: int) -> str:
    return f"http://127.0.0.1:{port}" if kind == "minicpm" else f"ws://127.0.0.1:{port}/v1/realtime"


async def _native_ending(kind_name: str, port: int) -> tuple[dict[str, Any], int | None]:
    """Open one native session through the proxy on uvicorn; return its error event and close code."""
    kind = named_kind(kind_name)
    url = _url(kind_name, port)
    proxy = AudioProxy(ProxyConfig(upstream_url=url, connect_timeout_s=CONNECT_TIMEOUT_S),
                       kind=kind, leaser=OpenLeaser(url, kind))
    try:
        return await _first_event_and_close(proxy)
    finally:
        await proxy.aclose()


async def _first_event_and_close(proxy: AudioProxy) -> tuple[dict[str, Any], int | None]:
    """One native client of ``proxy`` on uvicorn: the first event it gets, and its close code."""
    async with serve_uvicorn(proxy) as proxy_port, \
            connect(f"ws://127.0.0.1:{proxy_port}/", ping_interval=None) as ws:
        async with asyncio.timeout(within(10)):
            event = json.loads(await ws.recv())
            with contextlib.suppress(ConnectionClosed):
                await ws.recv()
        return event, ws.close_code


@pytest.mark.parametrize("kind", ["minicpm", "realtime", "vllm-duplex", "minicpm-demo"])
async def test_an_upstream_that_accepts_and_never_answers_is_upstream_timeout(kind: str) -> None:
    async with silent_tcp_server() as port:
        event, code = await _native_ending(kind, port)
    assert event["type"] == "error" and event["error"] == "upstream_timeout", event
    assert event["code"] == code == 1011


@pytest.mark.parametrize("kind", ["realtime", "vllm-duplex", "minicpm-demo"])
async def test_an_upstream_silent_after_its_handshake_is_upstream_timeout(kind: str) -> None:
    async with silent_websocket_server() as port:
        event, code = await _native_ending(kind, port)
    assert event["type"] == "error" and event["error"] == "upstream_timeout", event
    assert event["code"] == code == 1011


async def test_a_realtime_client_is_told_upstream_timeout_in_its_own_dialect() -> None:
    kind = named_kind("realtime")
    async with silent_websocket_server() as port:
        url = _url("realtime", port)
        proxy = AudioProxy(ProxyConfig(upstream_url=url, connect_timeout_s=CONNECT_TIMEOUT_S),
                           kind=kind, leaser=OpenLeaser(url, kind), dialect=realtime_dialect)
        try:
            async with serve_uvicorn(proxy) as proxy_port, \
                    connect(f"ws://127.0.0.1:{proxy_port}/", ping_interval=None) as ws:
                errors = []
                async with asyncio.timeout(within(10)):
                    with contextlib.suppress(ConnectionClosed):
                        async for frame in ws:
                            event = json.loads(frame)
                            if event["type"] == "error":
                                errors.append(event["error"])
        finally:
            await proxy.aclose()
    assert [e["code"] for e in errors] == ["upstream_timeout"], errors
    assert errors[0]["type"] == "server_error"
    assert ws.close_code == 1011


class _LeakyTransport(FakeUpstream):
    """A transport whose library lets its own ``TimeoutError`` out of ``connect``."""

    async def connect(self, options: UpstreamOptions) -> None:
        raise TimeoutError("a library's own wait ran out")


async def test_a_timeout_an_adapter_lets_out_is_upstream_timeout_not_a_bug() -> None:
    client = FakeClient()
    config = ProxyConfig(chunk_duration=0.2, connect_timeout_s=CONNECT_TIMEOUT_S)
    adapter = MiniCPMAdapter(config, transport=_LeakyTransport())
    async with http_client() as http:
        session = ProxySession(client, config, http, upstream=adapter)
        async with asyncio.timeout(within(5)):
            stats = await session.run()
    event = json.loads(client.outgoing.get_nowait())
    assert event["error"] == "upstream_timeout" and event["code"] == 1011, event
    assert client.close_code == stats.close_code == 1011


async def test_a_lease_store_that_never_answers_is_lease_store_unavailable() -> None:
    async with silent_tcp_server() as port:
        store = RedisLeaseStore.from_url(f"redis://127.0.0.1:{port}/0", timeout_s=0.2)
        try:
            async with asyncio.timeout(within(5)):
                with pytest.raises(LeaseStoreUnavailable, match=r"within 0\.2 s"):
                    await store.join("t1", ["http://gpu:1"], 4)
                with pytest.raises(LeaseStoreUnavailable, match=r"within 0\.2 s"):
                    await store.snapshot(["http://gpu:1"])
                with pytest.raises(LeaseStoreUnavailable, match="subscribed"):
                    await store.start()
        finally:
            await store.aclose()


async def test_a_session_whose_lease_store_never_answers_ends_with_lease_store_unavailable() -> None:
    async with silent_tcp_server() as port:
        store = RedisLeaseStore.from_url(f"redis://127.0.0.1:{port}/0", timeout_s=0.2)
        pool = UpstreamPool(["http://127.0.0.1:9"], store=store)
        proxy = AudioProxy(ProxyConfig(upstream_url="http://127.0.0.1:9"), leaser=pool)
        try:
            event, close_code = await _first_event_and_close(proxy)
        finally:
            await proxy.aclose()
            await pool.aclose()
    assert event["error"] == "lease_store_unavailable" and event["code"] == 1011, event
    assert close_code == 1011
