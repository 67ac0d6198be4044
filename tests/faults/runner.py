"""A proxy process for the shutdown and soak tests: ``python -m tests.faults.runner MODE --upstream URL``.

Binds 127.0.0.1 port 0 and prints ``listening on <port>`` once the socket listens (the started
signal the tests await), then serves an :class:`AudioProxy` at ``/`` until SIGTERM:

- ``hypercorn``: on hypercorn, as an app would: SIGTERM first ends the proxy's sessions
  (``await proxy.shutdown()``: 1001 within ``--grace``), then lets hypercorn stop. Hypercorn
  sends lifespan shutdown only after its own ``graceful_timeout``, too late to close first.
- ``soak``: on uvicorn through :class:`asgi_audio_proxy.edge.serving.GracefulServer`, with
  ``GET /debug`` answering what the process holds: asyncio tasks (other than the server's
  own), open file descriptors, tracemalloc's current size and live sessions, once no session
  is live (5 s at most, scaled as every test deadline), after a garbage collection. The proxy's
  HTTP client is closed first (the next session makes another): its idle keep-alive connections
  to the upstream, as many as requests ever ran at once, are a pool, not a leak.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import signal
import sys
import tracemalloc
from typing import Any

import uvicorn
from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config as HypercornConfig
from starlette.types import Receive, Scope, Send

from asgi_audio_proxy.config import ProxyConfig
from asgi_audio_proxy.edge.middleware import AudioProxy
from asgi_audio_proxy.edge.serving import GracefulServer
from tests.fakes import OpenLeaser
from tests.servers import bound_socket
from tests.timing import within


class DebugApp:
    """The proxy, plus ``GET /debug``."""

    def __init__(self, proxy: AudioProxy) -> None:
        self.proxy = proxy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/debug":
            try:  # settled first: every session has ended
                async with asyncio.timeout(within(5)):
                    await self.proxy.wait_idle()
            except TimeoutError:
                pass  # reported as live sessions
            await self.proxy.aclose()  # not the leaser, which it was given
            body = json.dumps(self.report()).encode()
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": body})
            return
        await self.proxy(scope, receive, send)

    def report(self) -> dict[str, Any]:
        gc.collect()
        this = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not this and "serve" not in repr(t.get_coro())
                 and "main_loop" not in repr(t.get_coro())]
        return {"tasks": len(tasks), "task_names": sorted(repr(t.get_coro())[:80] for t in tasks),
                "fds": len(os.listdir("/proc/self/fd")), "traced_bytes": tracemalloc.get_traced_memory()[0],
                "sessions": len(self.proxy.sessions)}


def _hypercorn(proxy: AudioProxy, grace_s: float) -> None:
    sock = bound_socket()
    config = HypercornConfig()
    config.bind = [f"fd://{os.dup(sock.fileno())}"]
    config.loglevel = "WARNING"
    config.graceful_timeout = grace_s

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)

        async def drain_then_stop() -> None:
            await stop.wait()
            await proxy.shutdown(grace_s)

        print(f"listening on {sock.getsockname()[1]}", flush=True)
        await hypercorn_serve(proxy, config, shutdown_trigger=drain_then_stop, mode="asgi")  # type: ignore[arg-type]

    asyncio.run(main())


def _soak(proxy: AudioProxy) -> None:
    tracemalloc.start()
    sock = bound_socket()
    print(f"listening on {sock.getsockname()[1]}", flush=True)
    config = uvicorn.Config(DebugApp(proxy), log_level="warning", ws_ping_interval=None, lifespan="on")
    GracefulServer(config, proxy).run(sockets=[sock])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.faults.runner")
    parser.add_argument("mode", choices=["hypercorn", "soak"])
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--grace", type=float, default=2.0)
    args = parser.parse_args(argv)
    # the soak's simulator holds any number of conversations: every cycle is served at once
    # a short resume grace: the soak's dropped connections are held, then end, within its wait
    proxy = AudioProxy(ProxyConfig(upstream_url=args.upstream, chunk_duration=0.2,
                                   shutdown_grace_s=args.grace, close_timeout_s=1.0,
                                   resume_grace_s=0.5),
                       leaser=OpenLeaser(args.upstream) if args.mode == "soak" else None)
    if args.mode == "hypercorn":
        _hypercorn(proxy, args.grace)
    else:
        _soak(proxy)
    return 0


if __name__ == "__main__":
    sys.exit(main())
