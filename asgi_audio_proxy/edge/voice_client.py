"""``VoiceClient``: the original document's facade, ``await client.start_audio_proxy(ws, config)``.

Owns: the wiring (a config from host and port, the ``http_client`` the document closes with
``aclose()``) and the process-wide registry that makes every ``VoiceClient`` of one model
server share one pool, so two clients made per connection (as the document's FastAPI example
does) queue for the server instead of taking it over from each other. Must not: hold
per-connection state; each call is its own session.

Across processes (``uvicorn --workers``, several replicas) the registry cannot help: pass a
``leaser`` whose pool keeps its leases in Redis (``RedisLeaseStore``).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from ..config import ProxyConfig
from ..dialects.base import DialectFactory
from ..dialects.native import native_dialect
from ..pool.lease import UpstreamLeaser
from ..pool.pool import UpstreamPool
from ..session.session import ProxySession
from ..session.stats import SessionStats
from ..upstreams.kind import UpstreamKind, new_http_client
from ..upstreams.minicpm.kind import MINICPM, minicpm_kind
from ..upstreams.minicpm.settings import DOCUMENT_CHUNK_DURATION_S, MiniCPMSettings
from .connection import StarletteClient, as_client

__all__ = ["VoiceClient", "shared_pool"]

logger = logging.getLogger("asgi_audio_proxy.voice_client")
#: one pool per model server and event loop (a pool's locks and tasks belong to one loop)
_POOLS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, UpstreamPool]] = (
    weakref.WeakKeyDictionary())
#: the MiniCPM-o kind as the original document has it: audio waits until 1 s has gathered
_DOCUMENT_KIND = minicpm_kind(MiniCPMSettings(chunk_duration=DOCUMENT_CHUNK_DURATION_S))


def shared_pool(config: ProxyConfig, kind: UpstreamKind = MINICPM) -> UpstreamPool:
    """The pool of one for ``config.upstream_url`` that every ``VoiceClient`` in this process
    and event loop shares (made on first use, with ``config``'s queue settings and ``kind``'s
    slots)."""
    pools = _POOLS.setdefault(asyncio.get_running_loop(), {})
    pool = pools.get(config.upstream_url)
    if pool is None:
        pool = pools[config.upstream_url] = UpstreamPool(
            [config.upstream_url], kind=kind, max_queue=config.max_queue,
            max_wait_s=config.max_queue_wait_s)
        logger.warning("one conversation at a time on %s holds within this process only: "
                       "several processes sharing it need a pool with a RedisLeaseStore "
                       "(VoiceClient(..., leaser=UpstreamPool([...], store=RedisLeaseStore(...))))",
                       config.upstream_url)
    return pool


class VoiceClient:
    """Talks to one model server; each :meth:`start_audio_proxy` call proxies one client.

    Every ``VoiceClient`` of the same server in one process shares its lease: a second client
    waits in the queue (``queued``, then ``ready``) while the server holds a conversation.

    Args:
        server_host: the model server's host.
        server_port: the model server's port.
        config: further settings; its ``upstream_url`` is replaced by host and port (or ``url``).
        leaser: hands out the upstream (a pool with a shared store across processes); the
            process-wide pool of this server by default.
        kind: the kind of model server (MiniCPM-o's web-demo server by default, with the
            original document's 1 s ``chunk_duration``; ``config`` may forward another).
        url: the server's whole URL instead of host and port, for kinds reached at a path
            (``ws://127.0.0.1:8000/v1/realtime``).
    """

    def __init__(self, server_host: str = "127.0.0.1", server_port: int = 32550, *,
                 config: ProxyConfig | None = None, leaser: UpstreamLeaser | None = None,
                 kind: UpstreamKind = _DOCUMENT_KIND, url: str | None = None) -> None:
        self.server_host = server_host
        self.server_port = server_port
        host = f"[{server_host}]" if ":" in server_host else server_host
        self.config = replace(config or ProxyConfig(),
                              upstream_url=kind.check_url(url or f"http://{host}:{server_port}"))
        self.kind = kind.configured(self.config)
        self.leaser = leaser
        #: shared by every conversation of this client; close it with ``await http_client.aclose()``
        self.http_client = new_http_client()

    async def start_audio_proxy(self, external_websocket: object,
                                config_data: Mapping[str, Any] | None = None, *,
                                dialect: DialectFactory = native_dialect) -> SessionStats:
        """Proxy one client until either side ends the conversation.

        Args:
            external_websocket: a Starlette/FastAPI ``WebSocket`` (accepted or not) or a
                ``websockets`` connection, server or client side.
            config_data: ``assistantPrompt``, ``audioFormat``, ``vadThreshold`` (and
                ``voiceClonePrompt``, ``useAudioPrompt``), as the original document has them.
            dialect: the wire format the client speaks (the native protocol by default).

        Returns:
            What the session did (bytes in and out, replies, close code).
        """
        client = as_client(external_websocket)
        scope = client.websocket.scope if isinstance(client, StarletteClient) else {
            "type": "websocket", "path": "/", "headers": []}
        session = ProxySession(client, self.config, self.http_client,
                               dialect=dialect(scope, self.config), config_data=config_data,
                               leaser=self.leaser or shared_pool(self.config, self.kind),
                               kind=self.kind)
        return await session.run()
