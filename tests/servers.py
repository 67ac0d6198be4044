"""Real ASGI servers on loopback port 0, in the test's own event loop.

``async with serve_uvicorn(app) as port`` / ``serve_hypercorn(app)``: the socket is bound to port 0
and listening before the server starts, so a client can connect at once (the kernel queues the
connection until the server accepts it): there is no start-up to wait for. On exit the server
is shut down under a deadline. :func:`free_port` is for a server in another process, which binds
its own socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import uvicorn
from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config as HypercornConfig

from tests.timing import within

__all__ = ["SERVERS", "bound_socket", "free_port", "serve", "serve_hypercorn", "serve_uvicorn"]


def bound_socket() -> socket.socket:
    # IPPROTO_TCP, not 0: asyncio turns Nagle off (TCP_NODELAY) only on sockets that say TCP;
    # with Nagle on, replies wait for the peer's next frame to carry the ACK (~20 ms)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def free_port() -> int:
    """A loopback port nobody listens on now. Another process may take it before the caller's
    server binds it: a caller that must not fail on that retries with another."""
    with contextlib.closing(bound_socket()) as sock:
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def serve_uvicorn(app: Any, **options: Any) -> AsyncIterator[int]:
    sock = bound_socket()
    config = uvicorn.Config(app, log_level="warning", lifespan="off", ws_ping_interval=None,
                            **options)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            async with asyncio.timeout(within(10)):
                await task
        sock.close()


@contextlib.asynccontextmanager
async def serve_hypercorn(app: Any, **options: Any) -> AsyncIterator[int]:
    sock = bound_socket()
    config = HypercornConfig()
    config.bind = [f"fd://{os.dup(sock.fileno())}"]  # hypercorn closes the fd it is given
    config.loglevel = "WARNING"
    config.graceful_timeout = 2.0
    # hypercorn's idle timer (5 s) starts at accept and is stopped once the request is read; a
    # loop starved past it can read the request and close the socket in the same turn, so the
    # WebSocket opens, then ends with no close frame (1006; pgjones/hypercorn issue 68 reports
    # such drops on slow machines). It scales as every test deadline
    config.keep_alive_timeout = within(config.keep_alive_timeout)
    for key, value in options.items():
        setattr(config, key, value)
    stop = asyncio.Event()
    task = asyncio.create_task(hypercorn_serve(app, config, shutdown_trigger=stop.wait, mode="asgi"))
    try:
        yield sock.getsockname()[1]
    finally:
        stop.set()
        async with asyncio.timeout(within(10)):
            await task
        sock.close()


SERVERS: dict[str, Callable[..., contextlib.AbstractAsyncContextManager[int]]] = {
    "uvicorn": serve_uvicorn,
    "hypercorn": serve_hypercorn,
}


def serve(kind: str, app: Any, **options: Any) -> contextlib.AbstractAsyncContextManager[int]:
    """Serve ``app`` on the named server ("uvicorn" or "hypercorn")."""
    return SERVERS[kind](app, **options)
