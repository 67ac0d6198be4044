"""A Realtime server's capacity: slots, and a server that holds fewer conversations than declared.

The outer proxy is an ``AudioProxy`` of the realtime kind, with its own pool made from its config
(as ``serve --upstream-kind realtime --slots N`` makes it); its server is either an inner proxy
(the Realtime dialect in front of a many-conversation simulator, refusing past ``max_sessions``
with HTTP 503 at the handshake) or a scripted Realtime server that refuses with an ``error``
event coded ``session_limit_reached``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from asgi_audio_proxy.config import ProxyConfig
from asgi_audio_proxy.dialects.native_client import ProxyMessage, QueuedMessage, ReadyMessage
from asgi_audio_proxy.dialects.realtime import realtime_dialect
from asgi_audio_proxy.edge.middleware import AudioProxy, AudioProxyMiddleware
from asgi_audio_proxy.upstreams.registry import realtime_kind
from tests.clients import ProxyClient, arrive
from tests.conftest import running_simulator
from tests.fakes import OpenLeaser
from tests.realtime_upstream.support import realtime_server
from tests.servers import serve_uvicorn
from tests.signals import silence, tone

UTTERANCE = tone(440, 1.0) + silence(1.4)


async def three_clients(url: str,
                        stack: contextlib.AsyncExitStack) -> list[tuple[ProxyClient, ProxyMessage]]:
    """Three clients, connected one after the other, each with its first event; closed by ``stack``."""
    arrivals = []
    for _ in range(3):
        arrivals.append(await arrive(url))
        stack.push_async_callback(arrivals[-1][0].__aexit__)
    return arrivals


@contextlib.asynccontextmanager
async def inner_proxy(**config: Any) -> AsyncIterator[str]:
    """A proxy serving the Realtime dialect in front of a simulator that holds any number of
    conversations; yields its ``ws://…/v1/realtime`` URL."""
    async with running_simulator(multi_conversation=True) as up:
        # an app that answers plain HTTP with 404, as a Realtime server does: the pool's probe
        inner = AudioProxyMiddleware(Starlette(), config=ProxyConfig(upstream_url=up.url, chunk_duration=0.2,
                                                                   **config),
                                     dialects={"/v1/realtime": realtime_dialect}, leaser=OpenLeaser(up.url))
        try:
            async with serve_uvicorn(inner) as port:
                yield f"ws://127.0.0.1:{port}/v1/realtime"
        finally:
            await inner.proxy.aclose()


@contextlib.asynccontextmanager
async def outer_proxy(server_url: str, slots: int) -> AsyncIterator[str]:
    proxy = AudioProxy(ProxyConfig(upstream_url=server_url), kind=realtime_kind(slots=slots))
    try:
        async with serve_uvicorn(proxy) as port:
            yield f"ws://127.0.0.1:{port}/"
    finally:
        await proxy.aclose()


async def test_two_slots_three_clients_ready_ready_queued_then_served() -> None:
    async with inner_proxy() as server, outer_proxy(server, slots=2) as url, \
            contextlib.AsyncExitStack() as stack:
        (c1, e1), (c2, e2), (c3, e3) = await three_clients(url, stack)
        assert [type(e) for e in (e1, e2, e3)] == [ReadyMessage, ReadyMessage, QueuedMessage]
        assert isinstance(e3, QueuedMessage) and e3.position == 1
        assert (await c2.say(UTTERANCE)).audio  # a live conversation on the server's second slot
        await c1.__aexit__()
        assert await c3.queued_then_ready() == []
        assert (await c3.say(UTTERANCE)).audio


async def test_three_slots_on_a_server_that_takes_two_the_third_waits_for_a_503_then_is_served() -> None:
    async with inner_proxy(max_sessions=2) as server, outer_proxy(server, slots=3) as url, \
            contextlib.AsyncExitStack() as stack:
        (c1, e1), (_, e2), (c3, e3) = await three_clients(url, stack)
        assert [type(e) for e in (e1, e2)] == [ReadyMessage, ReadyMessage]
        assert isinstance(e3, QueuedMessage) and e3.position == 1  # refused with 503: back in the queue
        await c1.__aexit__()
        assert await c3.queued_then_ready() == []
        assert (await c3.say(UTTERANCE)).audio


async def test_three_slots_on_a_server_that_refuses_the_third_by_an_error_event() -> None:
    live: set[int] = set()
    refused: list[str] = []

    async def server(ws: ServerConnection) -> None:
        await ws.send(json.dumps({"type": "session.created", "event_id": "e0",
                                  "session": {"type": "realtime", "object": "realtime.session",
                                              "id": f"s{id(ws)}", "model": "scripted"}}))
        try:
            async for frame in ws:
                message = json.loads(frame)
                if message["type"] != "session.update":
                    continue
                if len(live) >= 2 and id(ws) not in live:
                    refused.append("session_limit_reached")
                    await ws.send(json.dumps({"type": "error", "event_id": "e1", "error": {
                        "type": "invalid_request_error", "code": "session_limit_reached",
                        "message": "This server holds two sessions.", "event_id": message.get("event_id")}}))
                    continue
                live.add(id(ws))
                await ws.send(json.dumps({"type": "session.updated", "event_id": "e2",
                                          "session": {"type": "realtime", "object": "realtime.session",
                                                      "id": f"s{id(ws)}", "model": "scripted"}}))
        except ConnectionClosed:
            pass
        finally:
            live.discard(id(ws))

    async with realtime_server(server) as server_url, outer_proxy(server_url, slots=3) as url, \
            contextlib.AsyncExitStack() as stack:
        (_, e1), (c2, e2), (c3, e3) = await three_clients(url, stack)
        assert [type(e) for e in (e1, e2)] == [ReadyMessage, ReadyMessage]
        assert isinstance(e3, QueuedMessage) and e3.position == 1
        assert refused == ["session_limit_reached"]
        await c2.__aexit__()
        assert await c3.queued_then_ready() == []
        assert refused == ["session_limit_reached"]
