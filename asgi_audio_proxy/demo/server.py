"""The demo behind ``asgi-audio-proxy demo``: the voice page, the proxy and a simulator on one port.

Owns: the demo's Starlette app (the page at ``/``, its files under ``/static``, its settings at
``/demo.json``, the proxy's WebSocket at ``/audio_proxy``, WebRTC calls at
``/v1/realtime/calls`` with the webrtc extra, and, unless a real model server is given, the upstream simulator
mounted at ``/upstream``, which the proxy dials over loopback like any upstream), and serving it
with uvicorn on a socket bound first so port 0 works and the URL printed is the real one.
Must not: hold proxy logic (it only wires :class:`AudioProxyMiddleware` in), or act on import.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..config import ProxyConfig
from ..dialects.realtime import realtime_dialect
from ..dialects.twilio import twilio_dialect
from ..edge.middleware import AudioProxyMiddleware
from ..edge.wsflow import FlowWebSocketProtocol
from ..simulator.app import UpstreamSimulator
from ..simulator.minicpm_demo import GatewaySimulator
from ..simulator.vllm_duplex import DuplexSimulator
from ..upstreams.kind import UpstreamKind, new_http_client
from ..upstreams.minicpm.kind import MINICPM
from ..vad.bargein import BargeInPolicy

__all__ = ["DEMO_PAGE_DIR", "DemoServer", "HealthChecksUnlogged", "build_demo_app", "run_demo"]

logger = logging.getLogger("asgi_audio_proxy.demo")

#: the page's files ship inside the package, so an installed demo finds them
DEMO_PAGE_DIR = Path(__file__).with_name("page")
PROXY_PATH = "/audio_proxy"
#: the page's settings (``{"webrtc", "calls", "resumeGraceS"}``), read once as it loads
SETTINGS_PATH = "/demo.json"
SIMULATOR_PREFIX = "/upstream"
#: the kinds the demo has a simulator for, mounted at SIMULATOR_PREFIX when no upstream is given
DUPLEX_KIND = "vllm-duplex"
GATEWAY_KIND = "minicpm-demo"
SIMULATED_KINDS = (MINICPM.name, DUPLEX_KIND, GATEWAY_KIND)
#: the gateway simulator's model takes a GPU's time for each second of audio
DEMO_GATEWAY_STEP_S = 0.2
_Simulator = UpstreamSimulator | DuplexSimulator | GatewaySimulator
REALTIME_PATH = "/v1/realtime"
TWILIO_PATH = "/twilio"
#: the built-in simulator replies at about a GPU's pace (a 0.5 s chunk every 0.4 s), so a reply
#: is still being made while it plays, and talking over it can cut it
DEMO_FIRST_CHUNK_S = 0.3
DEMO_CHUNK_PACE_S = 0.4
#: a demo is for talking: talking over a reply interrupts it (browsers cancel their own echo)
DEMO_BARGE_IN: BargeInPolicy = "voice"
#: a demo is for talking: send every 200 ms message at once rather than gathering 1 s of them
DEMO_CHUNK_DURATION_S = 0.2
#: open replies and SSE streams get this long to end on Ctrl-C before they are cut
SHUTDOWN_GRACE_S = 2


def build_demo_app(upstream_url: str, *, simulator: _Simulator | None = None,
                   chunk_duration: float = DEMO_CHUNK_DURATION_S,
                   barge_in: BargeInPolicy = DEMO_BARGE_IN,
                   kind: UpstreamKind = MINICPM) -> AudioProxyMiddleware:
    """The demo's ASGI app: page, its settings, static files, the proxy at ``/audio_proxy`` (and
    its Realtime and Twilio dialects at ``/v1/realtime`` and ``/twilio``, and WebRTC calls at
    ``/v1/realtime/calls`` with the webrtc extra), maybe the simulator.

    Args:
        upstream_url: the model server the proxy talks to (the mounted simulator's URL when
            ``simulator`` is given: ``http://127.0.0.1:<port>/upstream``).
        simulator: a simulator to mount at ``/upstream``, or ``None`` for a real upstream.
        chunk_duration: the proxy's ``chunk_duration``.
        barge_in: how a reply is interrupted (talking over it, by default).
        kind: what the model server is (the simulator plays the MiniCPM-o web-demo server,
            vLLM-Omni's duplex server for the ``vllm-duplex`` kind, or the MiniCPM-o-Demo gateway
            for the ``minicpm-demo`` kind).
    """
    http_client = new_http_client()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            # the middleware leaves lifespan to the app: its pool (health checks, and the HTTP
            # client they use) stops here, or a check's connection stays open
            await middleware.proxy.aclose()  # the middleware below, made before any lifespan
            await http_client.aclose()
            if simulator is not None:
                simulator.close()

    async def index(request: object) -> FileResponse:
        return FileResponse(DEMO_PAGE_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    calls_path: str | None = None  # set below once the calls route is known to be served

    async def settings(request: object) -> JSONResponse:
        # what the page cannot find out alone: whether it may call over WebRTC, and how long
        # the proxy holds a cut session for its resume
        return JSONResponse({"webrtc": calls_path is not None, "calls": calls_path,
                             "resumeGraceS": config.resume_grace_s},
                            headers={"Cache-Control": "no-cache"})

    routes: list[Route | Mount] = [
        Route("/", index),
        Route(SETTINGS_PATH, settings),
        Mount("/static", StaticFiles(directory=DEMO_PAGE_DIR), name="static"),
    ]
    if simulator is not None:
        routes.append(Mount(SIMULATOR_PREFIX, simulator))
    config = ProxyConfig(upstream_url=upstream_url, chunk_duration=chunk_duration, barge_in=barge_in)
    middleware = AudioProxyMiddleware(
        Starlette(routes=routes, lifespan=lifespan), path=PROXY_PATH, config=config,
        http_client=http_client, dialects={REALTIME_PATH: realtime_dialect, TWILIO_PATH: twilio_dialect},
        kind=kind)
    try:  # browsers' WebRTC calls beside the Realtime WebSocket, with the webrtc extra
        from ..edge.calls import add_calls_route
    except ImportError as exc:
        logger.info("WebRTC calls are off: %s", exc)
    else:
        add_calls_route(middleware, REALTIME_PATH)
        calls_path = f"{REALTIME_PATH}/calls"
    return middleware


class HealthChecksUnlogged(logging.Filter):
    """Leaves the proxy pool's ``GET /health`` of the mounted simulator (one every 5 s) out of
    uvicorn's access log, where it would bury the sessions' own lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args  # uvicorn's access line: (client, method, path, HTTP version, status)
        return not (isinstance(args, tuple) and len(args) >= 3 and args[1] == "GET"
                    and str(args[2]).endswith("/health"))


class _Server(uvicorn.Server):
    """uvicorn's server, telling us once it listens (and only then: the URL must work)."""

    def __init__(self, config: uvicorn.Config, on_started: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_started = on_started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self._on_started()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio turns Nagle off (TCP_NODELAY) only on sockets that say TCP;
    # with Nagle on, reply audio waits for the client's next frame to carry the ACK (~20 ms)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _loopback(host: str) -> str:
    """Where this process reaches its own server bound on ``host``."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


class DemoServer:
    """Serves the demo on ``host:port`` inside the running event loop.

    ``async with DemoServer(...) as demo:`` returns once the server listens; ``demo.url`` is the
    page, ``demo.proxy_url`` the WebSocket, ``demo.simulator`` the in-process upstream (or
    ``None``). ``await demo.serve()`` instead runs until Ctrl-C (uvicorn handles the signal).

    Args:
        host: address to bind.
        port: port to bind; 0 picks a free one.
        upstream_url: a real model server, or ``None`` to mount a simulator.
        simulator: the simulator to mount when ``upstream_url`` is ``None`` (a default one else:
            vLLM-Omni's duplex server for the ``vllm-duplex`` kind, the MiniCPM-o-Demo gateway for
            ``minicpm-demo``, else MiniCPM-o's).
        chunk_duration: the proxy's ``chunk_duration``.
        log_level: uvicorn's log level.
        kind: what the model server is.

    Raises:
        ValueError: a kind with no simulator of its own (``realtime``) and no ``upstream_url``.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 8001, *, upstream_url: str | None = None,
                 simulator: _Simulator | None = None,
                 chunk_duration: float = DEMO_CHUNK_DURATION_S, log_level: str = "warning",
                 barge_in: BargeInPolicy = DEMO_BARGE_IN, kind: UpstreamKind = MINICPM) -> None:
        if upstream_url is None and kind.name not in SIMULATED_KINDS:
            raise ValueError(f"a {kind.name} upstream needs its URL (--upstream URL); the built-in "
                             f"simulators play {' and '.join(SIMULATED_KINDS)} servers only")
        self._sock = _bind(host, port)
        self.port: int = self._sock.getsockname()[1]
        local = f"{_loopback(host)}:{self.port}"
        self.url = f"http://{local}/"
        self.proxy_url = f"ws://{local}{PROXY_PATH}"
        self.realtime_url = f"ws://{local}{REALTIME_PATH}"
        self.twilio_url = f"ws://{local}{TWILIO_PATH}"
        self.simulator: _Simulator | None = None
        if upstream_url is None and kind.name == DUPLEX_KIND:  # its WebSocket route, below the mount
            self.simulator = simulator or DuplexSimulator(max_sessions=kind.slots)
            upstream_url = f"ws://{local}{SIMULATOR_PREFIX}/v1/realtime"
        elif upstream_url is None and kind.name == GATEWAY_KIND:  # one worker per slot
            self.simulator = simulator or GatewaySimulator(workers=kind.slots, step_s=DEMO_GATEWAY_STEP_S)
            upstream_url = f"http://{local}{SIMULATOR_PREFIX}/v1/realtime"
        elif upstream_url is None:
            self.simulator = simulator or UpstreamSimulator(first_chunk_delay_s=DEMO_FIRST_CHUNK_S,
                                                            chunk_delay_s=DEMO_CHUNK_PACE_S)
        self.upstream_url = upstream_url or f"http://{local}{SIMULATOR_PREFIX}"
        app = build_demo_app(self.upstream_url, simulator=self.simulator,
                             chunk_duration=chunk_duration, barge_in=barge_in, kind=kind)
        self._proxy = app.proxy
        config = uvicorn.Config(app, log_level=log_level, lifespan="on",
                                timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
                                ws_per_message_deflate=False,  # PCM does not compress
                                ws=FlowWebSocketProtocol)
        self._server = _Server(config, self._started)
        self._listening: list[Callable[[], None]] = []

    def _started(self) -> None:
        logger.info("demo listening on %s (upstream %s)", self.url, self.upstream_url)
        for callback in self._listening:
            callback()

    async def serve(self, on_started: Callable[[], None] | None = None) -> None:
        """Serve until Ctrl-C or :meth:`shutdown`; ``on_started`` runs once it listens."""
        if on_started is not None:
            self._listening.append(on_started)
        try:
            await self._server.serve(sockets=[self._sock])
        finally:
            self._sock.close()

    async def wait_idle(self) -> None:
        """Return once no session is live: a client's close is heard before its session has
        ended and given its lease back, so a client that has left may still hold the model
        server for a moment."""
        await self._proxy.wait_idle()

    def shutdown(self) -> None:
        """Ask the server to stop (as Ctrl-C does)."""
        self._server.should_exit = True

    async def __aenter__(self) -> DemoServer:
        started = asyncio.Event()
        self._task = asyncio.create_task(self.serve(started.set))
        waiter = asyncio.create_task(started.wait())
        done, _ = await asyncio.wait({waiter, self._task}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if self._task in done:  # it failed to start: show why
            self._task.result()
            raise RuntimeError("the demo server stopped before it listened")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.shutdown()
        await self._task


def run_demo(host: str = "127.0.0.1", port: int = 8001, *, upstream_url: str | None = None,
             chunk_duration: float = DEMO_CHUNK_DURATION_S, log_level: str = "warning",
             on_started: Callable[[DemoServer], None] | None = None,
             barge_in: BargeInPolicy = DEMO_BARGE_IN, kind: UpstreamKind = MINICPM) -> None:
    """Serve the demo until Ctrl-C (blocks); ``on_started`` gets the server once it listens."""

    async def main() -> None:
        demo = DemoServer(host, port, upstream_url=upstream_url, chunk_duration=chunk_duration,
                          log_level=log_level, barge_in=barge_in, kind=kind)
        await demo.serve(None if on_started is None else lambda: on_started(demo))

    asyncio.run(main())
