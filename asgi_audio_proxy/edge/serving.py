"""Run an app with the proxy on uvicorn, with a graceful shutdown that ends sessions with 1001.

Owns: :func:`serve`, a uvicorn run whose shutdown first asks the proxy's live sessions to end
(stop upstream, close upstream, close the client with 1001) within ``shutdown_grace_s``, and
only then lets uvicorn close what is left (with its own 1012). Must not: parse argv or set up
logging (``cli`` does).
"""

from __future__ import annotations

import signal
import socket
import threading
from types import FrameType
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from .middleware import AudioProxy

__all__ = ["GracefulServer", "serve"]


class GracefulServer(uvicorn.Server):
    """A ``uvicorn.Server`` that drains the proxy's sessions before its own shutdown."""

    def __init__(self, config: uvicorn.Config, proxy: AudioProxy) -> None:
        super().__init__(config)
        self.proxy = proxy

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()  # no new connections while the sessions drain
        await self.proxy.shutdown()
        await super().shutdown(sockets)


def serve(app: ASGIApp, proxy: AudioProxy, **uvicorn_options: Any) -> None:
    """Serve ``app`` (which mounts or wraps ``proxy``) on uvicorn until SIGINT or SIGTERM.

    Args:
        app: the ASGI app.
        proxy: the :class:`AudioProxy` inside it, drained on shutdown.
        **uvicorn_options: passed to ``uvicorn.Config`` (``host``, ``port``, ``log_level``...);
            by default frames are capped at ``max_message_bytes`` and not compressed.
    """
    uvicorn_options.setdefault("ws_max_size", proxy.config.max_message_bytes)
    # PCM does not compress; permessage-deflate (uvicorn's default, browsers offer it) cost 32%
    # more CPU at 100 sessions in benchmarks, for nothing
    uvicorn_options.setdefault("ws_per_message_deflate", False)
    uvicorn_options.setdefault("timeout_graceful_shutdown", proxy.config.shutdown_grace_s + 1)
    server = GracefulServer(uvicorn.Config(app, **uvicorn_options), proxy)
    if threading.current_thread() is not threading.main_thread():
        server.run()
        return
    # once shut down, uvicorn raises the signal that stopped it again under the handler it found;
    # SIGTERM's default handler would then kill the process (status -15) after a graceful stop
    previous = signal.signal(signal.SIGTERM, _ignore)
    try:
        server.run()
    finally:
        signal.signal(signal.SIGTERM, previous)


def _ignore(signum: int, frame: FrameType | None) -> None:
    """A SIGTERM re-raised after the graceful shutdown: already handled."""
