"""Run an app with the proxy on uvicorn, with a graceful shutdown that ends sessions with 1001.

Owns: :func:`serve`, a uvicorn run whose shutdown first asks the proxy's live sessions to end
(stop upstream, close upstream, close the client with 1001) within ``shutdown_grace_s``, and
only then lets uvicorn close what is left (with its own 1012); and :func:`build_server_app`,
the app ``asgi-audio-proxy serve`` runs, wired from its :class:`ServeSettings`. Must not: parse
argv, read the environment or set up logging (``cli`` and ``settings`` do).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import threading
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from types import FrameType
from typing import Any, cast

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from ..config import ProxyConfig
from ..dialects.base import DialectFactory
from ..dialects.realtime import realtime_dialect
from ..dialects.twilio import twilio_dialect
from ..metrics import ProxyMetrics
from ..pool import LeaseStore, UpstreamPool, UpstreamServer
from ..upstreams.registry import named_kind
from ..vad.bargein import BargeInPolicy
from .admission import Authenticator, TokenAuth
from .client_secrets import EphemeralKeys
from .collector import settle_collector
from .middleware import AudioProxy, AudioProxyMiddleware
from .pool_file import read_pool_file
from .settings import ServeSettings
from .wsflow import FlowWebSocketProtocol

__all__ = ["GracefulServer", "build_server_app", "serve"]

logger = logging.getLogger("asgi_audio_proxy.serving")
#: the Prometheus text exposition format
_PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


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
            by default frames are capped at ``max_message_bytes`` and not compressed, and
            read by :class:`~.wsflow.FlowWebSocketProtocol`.
    """
    uvicorn_options.setdefault("ws_max_size", proxy.config.max_message_bytes)
    uvicorn_options.setdefault("ws", FlowWebSocketProtocol)  # reading paused by watermark
    # PCM does not compress; permessage-deflate (uvicorn's default, browsers offer it) cost 32%
    # more CPU at 100 sessions in benchmarks, for nothing
    uvicorn_options.setdefault("ws_per_message_deflate", False)
    uvicorn_options.setdefault("timeout_graceful_shutdown", proxy.config.shutdown_grace_s + 1)
    server = GracefulServer(uvicorn.Config(app, **uvicorn_options), proxy)
    if threading.current_thread() is not threading.main_thread():
        server.run()  # a thread of a process someone else runs: its collector is theirs
        return
    settle_collector()  # start-up is over: its objects out of every later collection
    # once shut down, uvicorn raises the signal that stopped it again under the handler it found;
    # SIGTERM's default handler would then kill the process (status -15) after a graceful stop
    previous = signal.signal(signal.SIGTERM, _ignore)
    try:
        server.run()
    finally:
        signal.signal(signal.SIGTERM, previous)


def _ignore(signum: int, frame: FrameType | None) -> None:
    """A SIGTERM re-raised after the graceful shutdown: already handled."""


def build_server_app(settings: ServeSettings, environ: Mapping[str, str] | None = None, *,
                     store: LeaseStore | None = None,
                     metrics_dir: Path | None = None) -> AudioProxyMiddleware:
    """The app of ``asgi-audio-proxy serve``: the proxy on ``settings.path``, 404 elsewhere.

    One upstream and no Redis is the proxy's own pool of one; several upstreams, a pool file, or
    Redis make an :class:`~asgi_audio_proxy.pool.UpstreamPool` (leases in Redis when given).
    Either way a model server holds at most its kind's slots (or ``--slots``) conversations at
    once and later clients queue. ``environ`` is where a pool file's ``api_key_env`` is read.
    ``store`` (when Redis is not given) and ``metrics_dir`` are what the workers of
    ``serve --workers`` share: their leases, and the directory their metrics are summed from.

    Raises:
        ValueError: a setting the proxy refuses (names it).
        ImportError: ``--redis`` without the redis extra, or ``--metrics`` without the metrics one.
    """
    kind = named_kind(settings.upstream_kind, api_key=settings.upstream_api_key,
                      model=settings.upstream_model, slots=settings.slots)
    servers: list[UpstreamServer] = (
        read_pool_file(settings.upstreams_file, environ or {}) if settings.upstreams_file
        else [UpstreamServer(kind.check_url(url)) for url in settings.upstream])
    config = ProxyConfig(upstream_url=servers[0].url, chunk_duration=settings.chunk_duration,
                         max_sessions=settings.max_sessions, allowed_origins=settings.allow_origin,
                         max_loop_lag_s=settings.max_loop_lag or None,  # 0.0: off
                         max_queue=settings.max_queue, max_queue_wait_s=settings.max_queue_wait,
                         shutdown_grace_s=settings.shutdown_grace,
                         resume_grace_s=settings.resume_grace,
                         barge_in=cast(BargeInPolicy, settings.barge_in))
    metrics = _metrics(metrics_dir) if settings.metrics else None
    pool = None
    if len(servers) > 1 or settings.redis or settings.upstreams_file or store is not None:
        pool = UpstreamPool(servers, kind=kind, store=_redis_store(settings) or store, metrics=metrics,
                            max_queue=config.max_queue, max_wait_s=config.max_queue_wait_s)
    else:
        # several processes on one model server would each hold "the" conversation
        logger.warning("leases are kept in this process: one conversation per model server holds "
                       "only within this process unless --redis is set")
    tokens = [line.strip() for line in settings.token_file.read_text().splitlines()
              if line.strip()] if settings.token_file else []
    authenticate: Authenticator | None = (
        TokenAuth({t: f"token#{i}" for i, t in enumerate(tokens, 1)}) if tokens else None)
    # ephemeral keys, minted at <realtime_path>/client_secrets for a client admitted by a real one
    keys = EphemeralKeys(authenticate, allowed_origins=config.allowed_origins)
    if authenticate is not None:
        authenticate = keys.accepting(authenticate)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if pool is not None:
            await pool.start()  # an unreachable Redis stops the start-up, not the first client
        try:
            yield
        finally:  # after GracefulServer has ended the sessions
            await proxy.aclose()
            await proxy.leaser.aclose()

    routes = []
    if metrics is not None:  # the middleware passes HTTP on, so the scrape is a route of ours
        async def scrape(request: Request) -> Response:
            return Response(metrics.exposition(), media_type=_PROMETHEUS_TEXT)

        routes.append(Route(settings.path.rstrip("/") + "/metrics", scrape))
    # Starlette answers every other path with 404 (HTTP) or a close (WebSocket)
    # the other client dialects, each on a path of its own beside settings.path
    dialects: dict[str, DialectFactory] = {}
    if settings.realtime_path:
        dialects[settings.realtime_path] = realtime_dialect
    if settings.twilio_path:
        dialects[settings.twilio_path] = twilio_dialect
    middleware = AudioProxyMiddleware(Starlette(routes=routes, lifespan=lifespan), path=settings.path,
                                      config=config, authenticate=authenticate, leaser=pool,
                                      metrics=metrics, dialects=dialects, kind=kind,
                                      replica=settings.replica)
    proxy = middleware.proxy
    if settings.realtime_path:
        cast(Starlette, middleware.app).router.routes.append(Route(
            settings.realtime_path.rstrip("/") + "/client_secrets", keys, methods=["POST"]))
        _add_calls(middleware, settings)
    return middleware


def _add_calls(middleware: AudioProxyMiddleware, settings: ServeSettings) -> None:
    """``POST <realtime_path>/calls``: WebRTC calls, when the webrtc extra is installed."""
    try:
        from .calls import WebRTCSettings, add_calls_route
    except ImportError as exc:
        logger.info("WebRTC calls are off: %s", exc)
        return
    add_calls_route(middleware, settings.realtime_path, WebRTCSettings(
        ice_servers=settings.webrtc_ice_server or (),
        advertise_address=settings.webrtc_advertise_address))


def _metrics(multiprocess_dir: Path | None) -> ProxyMetrics:
    try:
        return ProxyMetrics(multiprocess_dir=multiprocess_dir)
    except ModuleNotFoundError as exc:
        raise ImportError("--metrics needs the metrics extra: "
                          "pip install 'asgi-audio-proxy[metrics]'") from exc


def _redis_store(settings: ServeSettings) -> Any:
    if not settings.redis:
        return None
    from ..pool import RedisLeaseStore  # needs the redis extra, which says so if missing

    return RedisLeaseStore.from_url(settings.redis, prefix=settings.redis_prefix)
