"""A proxy process for the cross-process tests: ``AudioProxy`` with a Redis-backed pool, on uvicorn.

``python -m tests.pool_app --redis URL --prefix P --ttl S --health-interval S UPSTREAM...``
binds a free loopback port, prints ``port <n>`` once it listens, and serves until SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import socket

import uvicorn

from asgi_audio_proxy.config import ProxyConfig
from asgi_audio_proxy.edge.middleware import AudioProxy
from asgi_audio_proxy.metrics import ProxyMetrics
from asgi_audio_proxy.pool.pool import UpstreamPool
from asgi_audio_proxy.pool.redis_store import RedisLeaseStore
from tests.servers import bound_socket

__all__ = ["main"]


async def serve(args: argparse.Namespace, sock: socket.socket) -> None:
    store = RedisLeaseStore.from_url(args.redis, prefix=args.prefix, ttl_s=args.ttl)
    pool = UpstreamPool(args.upstreams, store=store, health_interval_s=args.health_interval)
    proxy = AudioProxy(ProxyConfig(chunk_duration=0.2), leaser=pool, metrics=ProxyMetrics())
    await pool.start()
    server = uvicorn.Server(uvicorn.Config(proxy, log_level="warning", lifespan="off",
                                          ws_ping_interval=None))
    try:
        await server.serve(sockets=[sock])
    finally:
        await proxy.aclose()
        await pool.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--redis", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--ttl", type=float, required=True)
    parser.add_argument("--health-interval", type=float, default=0.2)
    parser.add_argument("upstreams", nargs="+")
    args = parser.parse_args()
    sock = bound_socket()
    print(f"port {sock.getsockname()[1]}", flush=True)
    asyncio.run(serve(args, sock))


if __name__ == "__main__":
    main()
