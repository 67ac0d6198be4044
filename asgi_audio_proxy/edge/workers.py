"""``serve --workers N``: N proxy processes on one port, and the small supervisor above them.

Owns: :func:`run_workers` (the supervisor: reserve the port, fork the workers, wait for each to
listen, forward SIGTERM and SIGINT, stop everything if one dies) and what each worker runs: the
app of ``serve``, its leases in a :class:`~asgi_audio_proxy.pool.FileLeaseStore` of the run's
directory unless ``--redis`` is given, its metrics written beside the others', and a header
naming it on every response. Must not: parse argv, read the environment (the caller passes it)
or restart a worker: a worker that dies stops the whole server, with a non-zero status, so the
process manager above (systemd, a container runtime) sees it and decides.

**One socket per worker, ``SO_REUSEPORT``.** Each worker binds and listens on a socket of its
own on the same port, and the kernel spreads new connections over them evenly (a hash of each
connection's addresses). With one socket inherited by every worker instead, each connection
wakes them all and the first to ask takes it, which spreads long conversations unevenly. The
supervisor binds the port first, without listening (so it never receives a connection): port 0
becomes one port for every worker, and the port stays reserved for the whole run. Sockets are
made as TCP explicitly, or asyncio would leave Nagle's algorithm on (README, Troubleshooting).
Linux only (elsewhere ``SO_REUSEPORT`` does not spread connections, or is missing).
"""

from __future__ import annotations

import contextlib
import logging
import math
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import replace
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..pool.file_store import FileLeaseStore
from .middleware import AudioProxyMiddleware
from .serving import GracefulServer, build_server_app
from .settings import ServeSettings
from .wsflow import FlowWebSocketProtocol

__all__ = ["WORKER_HEADER", "WorkerHeader", "run_workers"]

logger = logging.getLogger("asgi_audio_proxy.workers")
#: the response header naming the worker that answered: ``<index>/<pid>``
WORKER_HEADER = "x-audio-proxy-worker"
#: the queue of connections not yet accepted, per worker (uvicorn's default)
_BACKLOG = 2048
#: how long workers get to start listening, importing and building the app included
_START_TIMEOUT_S = 60.0


class WorkerHeader:
    """Pure ASGI middleware: adds ``x-audio-proxy-worker: <value>`` to every HTTP response and
    WebSocket handshake, so an operator (and a test) can tell which worker answered."""

    def __init__(self, app: ASGIApp, value: str) -> None:
        self.app = app
        self._header = (WORKER_HEADER.encode(), value.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return

        async def send_named(message: Message) -> None:
            if message["type"] in ("http.response.start", "websocket.accept",
                                   "websocket.http.response.start"):
                message = {**message, "headers": [*message.get("headers", []), self._header]}
            await send(message)

        await self.app(scope, receive, send_named)


def run_workers(settings: ServeSettings, environ: Mapping[str, str], *, workers: int,
                log_level: str, announce: Callable[[str], None]) -> int:
    """Serve with ``workers`` processes on one port until SIGTERM or SIGINT; the exit status.

    Args:
        settings: what ``serve`` was asked for (``port`` 0 picks one port for all).
        environ: where a pool file's ``api_key_env`` is read.
        workers: how many processes.
        log_level: uvicorn's.
        announce: told one line once every worker listens (the URL and the workers' pids).

    Returns:
        0 once every worker has ended gracefully after a signal; 1 if one died or did not start;
        2 if one refused a setting (it says which on stderr).

    Raises:
        OSError: the port cannot be bound, or this system has no ``SO_REUSEPORT``.
    """
    if not hasattr(socket, "SO_REUSEPORT"):
        raise OSError("--workers needs SO_REUSEPORT (Linux)")
    reserved = _reuseport_socket(settings.host, settings.port)  # bound, never listening
    port = reserved.getsockname()[1]
    run_dir = Path(tempfile.mkdtemp(prefix="asgi-audio-proxy-"))
    context = multiprocessing.get_context("fork")  # nothing runs yet in this process to fork
    ready_in, ready_out = context.Pipe(duplex=False)
    processes: list[BaseProcess] = []
    stop_signals: list[int] = []

    def stop(signum: int, frame: FrameType | None) -> None:
        stop_signals.append(signum)
        # the first signal asks for a graceful stop; another one (a second Ctrl-C) forces it
        forwarded = signal.SIGTERM if len(stop_signals) == 1 else signal.SIGINT
        for process in processes:
            if process.pid is not None and process.exitcode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, forwarded)

    previous = {signum: signal.signal(signum, stop) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        for index in range(workers):
            worker = context.Process(target=_worker, name=f"asgi-audio-proxy worker {index}", args=(
                index, settings, environ, run_dir, port, log_level, ready_out))
            worker.start()
            processes.append(worker)
        ready_out.close()
        failed_to_start = not _all_listening(processes, ready_in) and not stop_signals
        if failed_to_start:
            logger.error("a worker failed to start; stopping the others")
            stop(signal.SIGTERM, None)
        elif not stop_signals:
            pids = ", ".join(str(p.pid) for p in processes)
            announce(f"asgi-audio-proxy: {workers} workers on http://{settings.host}:{port} (pids {pids})")
        status = _supervise(processes, stop_signals, stop, run_dir)
        if failed_to_start:  # a setting the workers refuse ends with 2, as a single serve's does
            return 2 if any(p.exitcode == 2 for p in processes) else 1
        return status
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for process in processes:  # only after an unexpected error here: each has been waited for
            if process.exitcode is None:
                process.kill()
                process.join()
        ready_in.close()
        reserved.close()
        shutil.rmtree(run_dir, ignore_errors=True)


def _all_listening(processes: list[BaseProcess], ready: multiprocessing.connection.Connection) -> bool:
    """Wait until every worker says it listens; ``False`` as soon as one exits (or time runs out)."""
    listening: set[int] = set()
    while len(listening) < len(processes):
        waitables: list[Any] = [ready, *(p.sentinel for p in processes)]
        done = multiprocessing.connection.wait(waitables, timeout=_START_TIMEOUT_S)
        if not done:
            logger.error("the workers did not all listen within %.0f s", _START_TIMEOUT_S)
            return False
        if any(p.exitcode is not None for p in processes):
            return False
        if ready in done:
            try:
                listening.add(ready.recv())
            except EOFError:  # every worker has closed its end: each exited, its status not yet reaped
                return False
    return True


def _supervise(processes: list[BaseProcess], stop_signals: list[int],
               stop: Callable[[int, FrameType | None], None], run_dir: Path) -> int:
    """Wait for every worker to end; the first to end unasked stops the others. The status."""
    status = 0
    running = list(processes)
    while running:
        multiprocessing.connection.wait([p.sentinel for p in running])
        for process in [p for p in running if p.exitcode is not None]:
            running.remove(process)
            _forget_gauges(run_dir / "metrics", process.pid)
            if not stop_signals:
                logger.error("%s (pid %s) exited with status %s; stopping the others",
                             process.name, process.pid, process.exitcode)
                status = 1
                stop(signal.SIGTERM, None)
            elif process.exitcode != 0:
                logger.error("%s (pid %s) ended with status %s", process.name, process.pid,
                             process.exitcode)
                status = 1
    return status


def _worker(index: int, settings: ServeSettings, environ: Mapping[str, str], run_dir: Path,
            port: int, log_level: str, ready: multiprocessing.connection.Connection) -> None:
    """One worker's life: the app of ``serve`` on its own socket until SIGTERM."""
    # the supervisor's handlers were inherited: until uvicorn installs its own, a signal is
    # noted and stops the server as soon as it has started; one uvicorn raises again once it has
    # stopped gracefully is already handled
    stop_asked: list[int] = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda signum, frame: stop_asked.append(signum))
    if settings.replica:  # each worker holds its own sessions: a name of its own
        settings = replace(settings, replica=f"{settings.replica}-{index}")
    try:
        app = _worker_app(settings, environ, run_dir)
    except (ValueError, ImportError, OSError) as exc:
        print(f"asgi-audio-proxy: error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    sock = _reuseport_socket(settings.host, port)
    sock.listen(_BACKLOG)
    config = uvicorn.Config(WorkerHeader(app, f"{index}/{os.getpid()}"), host=settings.host,
                            port=port, log_level=log_level,
                            ws_max_size=app.proxy.config.max_message_bytes, ws=FlowWebSocketProtocol,
                            ws_per_message_deflate=False,  # as serve(): PCM does not compress
                            timeout_graceful_shutdown=math.ceil(app.proxy.config.shutdown_grace_s) + 1)

    def listening() -> None:
        ready.send(index)
        if stop_asked:
            server.should_exit = True

    server = _WorkerServer(config, app.proxy, listening)
    server.run(sockets=[sock])
    if not server.started:
        raise SystemExit(1)


def _worker_app(settings: ServeSettings, environ: Mapping[str, str],
                run_dir: Path) -> AudioProxyMiddleware:
    metrics_dir = None
    if settings.metrics:
        metrics_dir = run_dir / "metrics"
        metrics_dir.mkdir(exist_ok=True)
        # prometheus_client picks where values live when first imported, which is below
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    # without --redis, the workers share leases and the queue through a file of the run's
    store = None if settings.redis else FileLeaseStore(run_dir / "leases")
    return build_server_app(settings, environ, store=store, metrics_dir=metrics_dir)


class _WorkerServer(GracefulServer):
    """Tells the supervisor once it listens."""

    def __init__(self, config: uvicorn.Config, proxy: Any, on_listening: Callable[[], None]) -> None:
        super().__init__(config, proxy)
        self._on_listening = on_listening

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self._on_listening()


def _reuseport_socket(host: str, port: int) -> socket.socket:
    family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                  flags=socket.AI_PASSIVE)[0]
    # IPPROTO_TCP named: asyncio turns Nagle's algorithm off only on sockets it knows are TCP
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    return sock


def _forget_gauges(metrics_dir: Path, pid: int | None) -> None:
    """A worker's live gauges leave the sums once it has ended; its counters stay."""
    for path in metrics_dir.glob(f"gauge_live*_{pid}.db"):
        path.unlink(missing_ok=True)
