"""The package's own commands as a benchmark's processes: ``asgi-audio-proxy serve`` and
``simulate``, and a simulator built with room for a benchmark, each on a free loopback port.

Owns: starting ``python -m asgi_audio_proxy.cli serve|simulate ... --port 0`` (the console
script's own code) and ``python -m benchmarks.simulator_app``, finding the port the process
listens on, waiting until it answers HTTP, the URL a simulator announces, and stopping exactly
that process by its pid
(:func:`benchmarks.procs.stop`). Must not: measure; callers read ``ServerProcess.process``.

The port is read from the process's listening socket (psutil): a process given port 0 says
which port it got only in uvicorn's ``info`` log, and the benchmarks run ``serve`` at
``warning``.
"""

from __future__ import annotations

import contextlib
import queue
import re
import subprocess
import threading
import time
from collections.abc import Iterator

import httpx
import psutil  # type: ignore[import-untyped]  # no stubs in the environment

from .procs import ServerProcess, child_env, python_command, stop

__all__ = ["serve_command", "simulate_command", "simulator_app"]

_START_TIMEOUT_S = 20.0
#: what ``simulate`` prints first: ``asgi-audio-proxy: <which simulator> on <URL>``
_ANNOUNCED = re.compile(r"asgi-audio-proxy: .* on (?P<scheme>\w+)://[^/\s]+(?P<path>\S*)")


@contextlib.contextmanager
def serve_command(kind: str, upstream_url: str, *extra: str, slots: int,
                  chunk_duration_s: float = 0.2) -> Iterator[ServerProcess]:
    """``asgi-audio-proxy serve --upstream-kind KIND --upstream URL --slots N [EXTRA]`` until the
    block ends.

    Logging is at ``warning``: at ``info`` every upstream HTTP request is a log line (httpx), a
    cost of the log, and of the ``minicpm`` kind's wire only.
    """
    argv = python_command("asgi_audio_proxy.cli", "--log-level", "warning", "serve",
                          "--upstream-kind", kind, "--upstream", upstream_url, "--slots", str(slots),
                          "--host", "127.0.0.1", "--port", "0", "--chunk-duration", f"{chunk_duration_s:g}",
                          *extra)
    popen = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=None, text=True, env=child_env())
    try:
        yield _serving(popen, f"serve --upstream-kind {kind}")
    finally:
        stop(popen)


@contextlib.contextmanager
def simulate_command(kind: str) -> Iterator[str]:
    """``asgi-audio-proxy simulate --kind KIND`` until the block ends; yields its URL: the scheme
    and path it announces, on the port it listens on."""
    argv = python_command("asgi_audio_proxy.cli", "--log-level", "warning", "simulate",
                          "--kind", kind, "--host", "127.0.0.1", "--port", "0")
    popen = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                             env=child_env())
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=_read_lines, args=(popen, lines), daemon=True)
    reader.start()  # it reads to the end, so a full pipe never stalls the simulator
    try:
        name = f"{kind} simulator"
        announced = _announced(popen, lines, name)
        proc = _serving(popen, name)
        yield f"{announced['scheme']}://127.0.0.1:{proc.port}{announced['path']}"
    finally:
        stop(popen)
        reader.join(timeout=5.0)
        if popen.stderr:
            popen.stderr.close()


@contextlib.contextmanager
def simulator_app(target: str, url: str, **options: int) -> Iterator[str]:
    """A simulator app class (``module:Class``) built with ``options``, until the block ends
    (:mod:`benchmarks.simulator_app`); yields ``url`` with ``{address}`` filled in."""
    argv = python_command("benchmarks.simulator_app", target, *(f"{k}={v}" for k, v in options.items()))
    popen = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=None, text=True, env=child_env())
    try:
        proc = _serving(popen, target)
        yield url.format(address=f"127.0.0.1:{proc.port}")
    finally:
        stop(popen)


def _read_lines(popen: subprocess.Popen[str], lines: queue.Queue[str]) -> None:
    assert popen.stderr is not None
    with contextlib.suppress(ValueError, OSError):  # closed by the parent at the end
        for line in popen.stderr:
            lines.put(line)


def _announced(popen: subprocess.Popen[str], lines: queue.Queue[str], name: str) -> dict[str, str]:
    deadline = time.monotonic() + _START_TIMEOUT_S
    seen: list[str] = []
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.1)
        except queue.Empty:
            if popen.poll() is not None:
                break
            continue
        seen.append(line)
        if found := _ANNOUNCED.search(line):
            return found.groupdict()
    raise RuntimeError(f"{name} did not say where it listens; it said:\n{''.join(seen[-20:])}")


def _serving(popen: subprocess.Popen[str], name: str) -> ServerProcess:
    """The process, once it listens and answers HTTP (any answer, a 404 included)."""
    process = psutil.Process(popen.pid)
    deadline = time.monotonic() + _START_TIMEOUT_S
    while not (ports := _listening_ports(process)):
        if popen.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not start listening (exit status {popen.poll()})")
        time.sleep(0.05)  # a process gives no start signal: it is asked, under the deadline
    proc = ServerProcess(name, ports[0], popen, process)
    while True:
        try:
            httpx.get(proc.http_url + "/", timeout=1.0)
            return proc
        except httpx.TransportError:
            if popen.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} on port {proc.port} never answered") from None
            time.sleep(0.05)


def _listening_ports(process: psutil.Process) -> list[int]:
    try:
        return [c.laddr.port for c in process.net_connections("tcp") if c.status == psutil.CONN_LISTEN]
    except psutil.Error:  # it exited; the caller's poll() says so
        return []
