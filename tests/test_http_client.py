"""The HTTP client a proxy shares between its sessions (``upstreams.kind.new_http_client``),
against a real uvicorn on loopback."""

from __future__ import annotations

import asyncio
from typing import Any

from asgi_audio_proxy.upstreams.kind import KEEPALIVE_EXPIRY_S, new_http_client
from tests.servers import serve_uvicorn


async def test_an_idle_connection_is_not_reused_once_the_server_may_be_closing_it() -> None:
    """uvicorn closes a connection idle for 5 s (``timeout_keep_alive``), as hypercorn does. A
    request sent on it as the server closes it fails with a ``ReadError``, which ended a session
    starting then. So the client does not reuse a connection idle for longer than
    ``KEEPALIVE_EXPIRY_S``, well under that: a request after such a pause opens a new one."""
    peers: list[Any] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        peers.append(scope["client"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async with serve_uvicorn(app) as port, new_http_client() as client:
        url = f"http://127.0.0.1:{port}/health"
        for _ in range(2):  # back to back: one connection
            assert (await client.get(url)).status_code == 200
        await asyncio.sleep(KEEPALIVE_EXPIRY_S + 0.5)  # the idle time under test, short of uvicorn's 5 s
        assert (await client.get(url)).status_code == 200
    assert peers[0] == peers[1] and peers[2] != peers[1], peers
    assert KEEPALIVE_EXPIRY_S <= 2.5  # half of the servers' 5 s: room for a loop that runs late
