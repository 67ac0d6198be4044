"""``AudioProxy`` (a bare ASGI app) and ``AudioProxyMiddleware`` (the same, on one path of yours).

Owns: the scope guard, path matching with ``root_path`` removed, the one shared
``httpx.AsyncClient``, and the registry of live sessions. Must not: keep per-connection state on
``self`` (each connection gets its own :class:`~asgi_audio_proxy.session.session.ProxySession`), or touch
HTTP, lifespan or WebSocket scopes that are not its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import socket
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import httpx
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from ..config import ProxyConfig
from ..dialects.base import ClientDialect, DialectFactory
from ..dialects.native import native_dialect
from ..events import ErrorEvent
from ..metrics import ProxyMetrics, TurnTimer
from ..pool.lease import UpstreamLeaser
from ..pool.pool import UpstreamPool
from ..session.resumable import ResumableClient, ResumeWire
from ..session.resume import RESUME_FAILED, ResumeTokens
from ..session.session import ProxySession
from ..session.stats import SessionStats
from ..upstreams.base import UpstreamFactory
from ..upstreams.kind import UpstreamKind, new_http_client
from ..upstreams.minicpm.kind import MINICPM
from .admission import Authenticator, Denied, ParameterCheck, authenticate_scope
from .connection import ClientConnection, ClientGone, StarletteClient, tells_a_close_from_a_cut
from .load_monitor import LagGauge, LoopLagMonitor

__all__ = ["AudioProxy", "AudioProxyMiddleware"]

logger = logging.getLogger("asgi_audio_proxy.middleware")


class AudioProxy:
    """An ASGI app that serves one proxied conversation per WebSocket connection.

    A plain HTTP request gets ``426 Upgrade Required``. Mount it anywhere
    (``app.mount("/audio_proxy", AudioProxy(config))``: clients then connect to
    ``/audio_proxy/``), or serve it alone.

    Args:
        config: the proxy's settings; defaults throughout when omitted. What it forwards to the
            kind under the original keywords (``chunk_duration``...) is applied to ``kind`` here.
        http_client: a client to share with the app (not closed by the proxy); one is made
            otherwise, and closed by :meth:`aclose` or at lifespan shutdown.
        on_session_end: called with each session's :class:`SessionStats`.
        authenticate: admission hook, run on the handshake before accept: takes the scope,
            returns an identity (kept on the session, in its logs and stats) or raises
            :class:`~asgi_audio_proxy.edge.admission.Denied`; may be async. See
            :class:`~asgi_audio_proxy.edge.admission.TokenAuth`.
        leaser: hands each session an upstream of its own, one conversation per model server
            (an :class:`~asgi_audio_proxy.pool.UpstreamPool`). Without one, a pool of one is
            made from ``config.upstream_url``: a second client waits in its queue (``queued``,
            then ``ready``), or is refused at the handshake (503) when ``config.max_queue`` is 0.
        metrics: counts sessions, and serves them to ``GET <mount>/metrics`` (off by default).
        dialect: the wire format its clients speak (the native protocol by default; see
            :mod:`asgi_audio_proxy.dialects`).
        kind: the kind of model server behind it (:data:`~asgi_audio_proxy.upstreams.minicpm.MINICPM`,
            the MiniCPM-o web-demo server, by default; ``realtime_kind(...)`` for a server that
            speaks OpenAI Realtime): its adapter, health probe, slots per server and settings
            (MiniCPM-o's gathers 0.2 s of audio before it goes upstream). A mixed pool
            (``leaser=UpstreamPool([UpstreamServer(url, kind), ...])``) names each server's own.
        upstream_factory: an adapter factory to use instead of the kind's (custom wiring).
        admit: checks what a client says after the handshake, where a dialect has that (a
            Twilio call's ``customParameters``): ``admit(parameters, identity)`` returns the
            identity to keep or raises :class:`~asgi_audio_proxy.errors.Denied` (the session
            then ends with its close code); may be async.
        replica: this proxy's name among those behind one address, the start of each resume
            token (``replica.…``), so a load balancer can route a resume on it (letters, digits,
            ``-``, ``_``); ``host-pid-N`` by default.
    """

    def __init__(self, config: ProxyConfig | None = None, *,
                 http_client: httpx.AsyncClient | None = None,
                 on_session_end: Callable[[SessionStats], None] | None = None,
                 authenticate: Authenticator | None = None,
                 leaser: UpstreamLeaser | None = None, metrics: ProxyMetrics | None = None,
                 dialect: DialectFactory = native_dialect,
                 kind: UpstreamKind = MINICPM,
                 upstream_factory: UpstreamFactory | None = None,
                 admit: ParameterCheck | None = None, replica: str | None = None) -> None:
        self.config = config or ProxyConfig()
        kind = kind.configured(self.config)  # a bad forwarded value is refused here, not later
        self.kind = kind if upstream_factory is None else replace(kind, factory=upstream_factory)
        self.admit = admit
        self.authenticate = authenticate
        self._owns_leaser = leaser is None
        self.leaser: UpstreamLeaser = leaser or UpstreamPool(
            [self.config.upstream_url], kind=self.kind, metrics=metrics, max_queue=self.config.max_queue,
            max_wait_s=self.config.max_queue_wait_s)
        self.dialect = dialect
        self.metrics = metrics
        self._http_client = http_client
        self._owns_client = http_client is None
        self._on_session_end = on_session_end
        self.sessions: dict[str, ProxySession] = {}
        self.resume_tokens: ResumeTokens[ResumableClient] = ResumeTokens(replica or _replica_name())
        self._tasks: dict[str, asyncio.Task[Any]] = {}
        self._per_client: Counter[str] = Counter()
        self._admitted = 0
        self._draining = False
        self._idle: asyncio.Event | None = None  # made in the serving loop, on first use
        #: the event loop's lag against ``config.max_loop_lag_s`` (``None``: not measured);
        #: it starts with the first handshake (or lifespan startup) and ends in :meth:`aclose`
        self.load: LoopLagMonitor | None = (
            None if self.config.max_loop_lag_s is None
            else LoopLagMonitor(LagGauge(self.config.max_loop_lag_s)))

    @property
    def http_client(self) -> httpx.AsyncClient:
        """The one client every session of this proxy shares (connection pooling)."""
        if self._http_client is None:
            self._http_client = new_http_client()
        return self._http_client

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self.handle(WebSocket(scope, receive, send))
        elif scope["type"] == "http":
            if self.metrics is not None and scope["path"].rstrip("/").endswith("/metrics"):
                await self.metrics.asgi_app()(scope, receive, send)
                return
            response = PlainTextResponse("This endpoint speaks WebSocket only.\n", 426,
                                         headers={"Upgrade": "websocket"})
            await response(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def handle(self, websocket: WebSocket,
                     dialect: DialectFactory | None = None) -> SessionStats | None:
        """Admit and run one session on an ASGI WebSocket (accepted or not) until it ends.

        Args:
            websocket: the connection.
            dialect: its wire format (this proxy's ``dialect`` by default).

        Returns:
            the session's totals, or ``None`` when the handshake was refused.
        """
        try:
            identity = await authenticate_scope(websocket.scope, self.authenticate,
                                                self.config.allowed_origins)
            speaks = (dialect or self.dialect)(websocket.scope, self.config)
            token = websocket.query_params.get("resume")
            if token is not None:  # its session holds its place
                await self._resume(websocket, speaks, token, identity)
                return None
            address = self.reserve(websocket.scope)
        except Denied as denial:
            await self._deny(websocket, denial)
            return None
        try:
            if self.config.max_queue == 0 and await self.leaser.would_wait():
                await self._deny(websocket, Denied(503, "the model server is busy and no queue is "
                                                   "kept", retry_after_s=self.config.retry_after_s))
                return None
            return await self.run_client(StarletteClient(websocket), speaks, identity,
                                         origin=websocket.headers.get("origin"))
        finally:
            self.release(address)

    async def run_client(self, client: ClientConnection, dialect: ClientDialect,
                         identity: object, *, origin: str | None = None) -> SessionStats:
        """Run one admitted session over ``client`` (any carrier: a WebSocket, a WebRTC call)
        until it ends; the caller has taken its place with :meth:`reserve`. A WebSocket
        (``origin`` given, maybe ``None``) may be resumed after a cut, where its dialect can."""
        resume = None
        if (isinstance(client, StarletteClient) and isinstance(dialect, ResumeWire)
                and self.config.resume_grace_s > 0 and tells_a_close_from_a_cut(client.websocket)):
            resume = ResumableClient(client, self.resume_tokens, dialect, origin=origin,
                                     identity=identity, grace_s=self.config.resume_grace_s)
            client = resume
        with self.metrics.track(client) if self.metrics else contextlib.nullcontext(
                client) as client:
            return await self._run(ProxySession(
                client, self.config, self.http_client, dialect=dialect,
                on_end=self._session_ended, identity=identity, leaser=self.leaser,
                kind=self.kind, admit=self.admit, resume=resume,
                observer=TurnTimer(self.metrics) if self.metrics else None))

    async def _resume(self, websocket: WebSocket, dialect: ClientDialect, token: str,
                      identity: object) -> None:
        """A client back after a cut: its connection taken into the session it names, until it
        ends or is cut again; or ``resume_failed`` and close 1008, with nothing else touched."""
        client = StarletteClient(websocket)
        claim = self.resume_tokens.claim(token, websocket.headers.get("origin"), identity)
        if claim.holder is not None:
            if self.metrics is not None:
                self.metrics.resumes.labels(outcome="resumed").inc()
            with contextlib.suppress(ClientGone):
                await claim.holder.attach(client, websocket.query_params.get("last_event_id"))
            return
        logger.info("refused a resume: %s", claim.reason)
        if self.metrics is not None:
            self.metrics.resumes.labels(outcome="refused").inc()
        message = "this session cannot be resumed (its token is unknown, used or expired)"
        if claim.reason.startswith("the session is held by replica"):
            message = claim.reason  # another process's: saying so costs nothing, and helps
        frames = (dialect.resume_failed(message) if isinstance(dialect, ResumeWire)
                  else dialect.send(ErrorEvent(RESUME_FAILED, message, 1008, fatal=True)))
        await client.accept(dialect.subprotocol)
        with contextlib.suppress(ClientGone, TimeoutError):
            async with asyncio.timeout(self.config.close_timeout_s):
                for frame in frames:
                    await client.send(frame)
                await client.close(1008, "resume failed")

    def _session_ended(self, stats: SessionStats) -> None:
        if self.metrics is not None:
            self.metrics.session_ended(stats)
        if self._on_session_end is not None:
            self._on_session_end(stats)

    def reserve(self, scope: Scope) -> str:
        """Take a place for a new session, or refuse; no await, so the counts cannot race.

        Returns the client's address, for :meth:`release` once the session is over.

        Raises:
            Denied: shutting down (503), full (503) or too many from this client (429).
        """
        client = scope.get("client")
        address = str(client[0]) if client else "unknown"
        retry = self.config.retry_after_s
        if self._draining:
            raise Denied(503, "the server is shutting down", retry_after_s=retry)
        if self.load is not None:
            self.load.start()
            if self.load.overloaded:  # more sessions would only make every live one late
                if self.metrics is not None:
                    self.metrics.shed_sessions.inc()
                raise Denied(503, "the proxy is overloaded (event-loop lag "
                             f"{self.load.gauge.lag_s * 1000:.0f} ms); try again later",
                             retry_after_s=retry)
        if self.config.max_sessions is not None and self._admitted >= self.config.max_sessions:
            raise Denied(503, "the proxy is serving as many sessions as it can",
                         retry_after_s=retry)
        limit = self.config.max_sessions_per_client
        if limit is not None and self._per_client[address] >= limit:
            raise Denied(429, f"at most {limit} sessions per client", retry_after_s=retry)
        self._admitted += 1
        self._per_client[address] += 1
        return address

    def release(self, address: str) -> None:
        """Give back the place :meth:`reserve` took for a client at ``address``."""
        self._admitted -= 1
        self._per_client[address] -= 1
        if not self._per_client[address]:
            del self._per_client[address]

    async def _deny(self, websocket: WebSocket, denial: Denied) -> None:
        client = websocket.scope.get("client")
        logger.info("refused %s: %s", client[0] if client else "a client", denial)
        if "websocket.http.response" in websocket.scope.get("extensions", {}):
            await websocket.send_denial_response(PlainTextResponse(
                denial.message + "\n", denial.status_code, headers=denial.headers))
        else:
            await websocket.close(denial.close_code, denial.message)

    async def _run(self, session: ProxySession) -> SessionStats:
        self.sessions[session.id] = session
        task = asyncio.current_task()
        if task is not None:
            self._tasks[session.id] = task
        self._idle_event().clear()
        try:
            return await session.run()
        finally:
            del self.sessions[session.id]
            self._tasks.pop(session.id, None)
            if not self.sessions:
                self._idle_event().set()

    async def shutdown(self, grace_s: float | None = None) -> None:
        """Refuse new sessions, end live ones with 1001, wait for them; cancel stragglers.

        Args:
            grace_s: how long sessions get (``config.shutdown_grace_s`` by default).
        """
        self._draining = True
        if not self.sessions:
            return
        logger.info("shutting down: ending %d session(s)", len(self.sessions))
        for session in list(self.sessions.values()):
            session.request_shutdown()
        try:
            async with asyncio.timeout(grace_s if grace_s is not None else self.config.shutdown_grace_s):
                await self.wait_idle()
        except TimeoutError:
            logger.warning("%d session(s) did not end in time: cancelling them", len(self._tasks))
            for task in list(self._tasks.values()):
                task.cancel()

    async def wait_idle(self) -> None:
        """Return once no session is live (at once if none is)."""
        await self._idle_event().wait()

    def _idle_event(self) -> asyncio.Event:
        if self._idle is None:
            self._idle = asyncio.Event()
            if not self.sessions:
                self._idle.set()
        return self._idle

    async def aclose(self) -> None:
        """Stop measuring the loop; close the HTTP client and the pool this proxy made (not
        ones it was given)."""
        if self.load is not None:
            await self.load.aclose()
        if self._owns_client and self._http_client is not None:
            await self._http_client.aclose()
            self._http_client = None
        if self._owns_leaser:
            await self.leaser.aclose()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self.load is not None:
                    self.load.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await self.aclose()
                if not self._owns_leaser:
                    await self.leaser.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _replica_name() -> str:
    """This proxy's name in its tokens: host, process and the proxy's number in it."""
    host = "".join(c if c.isalnum() else "-" for c in socket.gethostname())[:40]
    return f"{host}-{os.getpid()}-{next(_PROXIES)}"


_PROXIES = itertools.count(1)


class AudioProxyMiddleware:
    """Pure ASGI middleware: WebSocket connections to ``path`` become proxied conversations.

    Everything else (HTTP, lifespan, other WebSocket paths) goes to ``app`` untouched.
    ``app.add_middleware(AudioProxyMiddleware, path="/audio_proxy", config=ProxyConfig(...))``.

    Args:
        app: the application to wrap.
        path: the WebSocket path of the native protocol, as the client sees it below ``root_path``.
        config: the proxy's settings.
        dialects: more paths, each with the dialect its clients speak
            (``{"/v1/realtime": realtime_dialect, "/twilio": twilio_dialect}``); every path
            shares one proxy, so one pool of upstreams and one queue serve them all.
        http_client, on_session_end, authenticate, leaser, metrics, kind, upstream_factory, admit,
        replica: see :class:`AudioProxy`.

    The middleware does not touch lifespan: to end sessions with 1001 before the server closes
    them (uvicorn closes WebSockets with 1012 on its own), call ``await middleware.proxy.shutdown()``
    from your app's shutdown.
    """

    def __init__(self, app: ASGIApp, path: str = "/audio_proxy",
                 config: ProxyConfig | None = None, *,
                 http_client: httpx.AsyncClient | None = None,
                 on_session_end: Callable[[SessionStats], None] | None = None,
                 authenticate: Authenticator | None = None,
                 leaser: UpstreamLeaser | None = None, metrics: ProxyMetrics | None = None,
                 dialects: Mapping[str, DialectFactory] | None = None,
                 kind: UpstreamKind = MINICPM,
                 upstream_factory: UpstreamFactory | None = None,
                 admit: ParameterCheck | None = None, replica: str | None = None) -> None:
        routes = {path: native_dialect, **(dialects or {})}
        for route in routes:
            if not route.startswith("/"):
                raise ValueError(f"invalid path={route!r}: expected it to start with '/'")
        self.app = app
        self.path = path.rstrip("/") or "/"
        self.routes = {route.rstrip("/") or "/": factory for route, factory in routes.items()}
        self.proxy = AudioProxy(config, http_client=http_client, on_session_end=on_session_end,
                                authenticate=authenticate, leaser=leaser, metrics=metrics,
                                kind=kind, upstream_factory=upstream_factory, admit=admit,
                                replica=replica)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        dialect = self.routes.get(self._route_path(scope)) if scope["type"] == "websocket" else None
        if dialect is None:
            await self.app(scope, receive, send)
            return
        await self.proxy.handle(WebSocket(scope, receive, send), dialect)

    @staticmethod
    def _route_path(scope: Scope) -> str:
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root):]
        return path.rstrip("/") or "/"
