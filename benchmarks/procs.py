"""Child processes: server processes started, waited for, read (psutil) and stopped by pid.

Owns: starting ``python -m benchmarks.serve`` and ``python -m benchmarks.loadgen`` children,
reading the port a server chose, a deadline on every wait, and stopping exactly the processes
this run started. Must not: measure; callers read ``ServerProcess.process`` themselves.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import psutil

__all__ = ["PLACEMENT", "ServerProcess", "cpu_seconds", "place", "server"]

_START_TIMEOUT_S = 20.0
#: the stand-in model servers: on a deployment they are other machines
_UPSTREAMS = frozenset({"load-upstream", "simulator"})
#: the relays under test, one process each
_RELAYS = frozenset({"proxy", "bare"})
#: where the processes of a run go, from ``BENCH_PLACEMENT``: ``split`` (the default, on two
#: CPUs or more) runs the stand-in upstream on the last CPU and the relay under test on the
#: others, as a deployment runs the model server on another machine; the load generators go
#: where the kernel puts them. ``shared`` lets the kernel put everything anywhere. On a shared
#: core each write a relay makes to a sleeping upstream wakes the upstream onto the relay's own
#: core, where it runs before the relay's next frame: at 100 aligned sessions the proxy was
#: switched out about 3 500 times in 10 s against about 200 split, and the herd's added p50
#: was 4.3 ms against 0.4 (the machine's doing, not the relay's).
PLACEMENT = os.environ.get("BENCH_PLACEMENT") or ("split" if (os.cpu_count() or 1) >= 2 else "shared")


@dataclass
class ServerProcess:
    kind: str
    port: int
    popen: subprocess.Popen[str]
    process: psutil.Process

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"


def python_command(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def place(pid: int, kind: str) -> None:
    """Put server ``pid`` of ``kind`` where :data:`PLACEMENT` says it runs."""
    cpus = sorted(os.sched_getaffinity(0))
    if PLACEMENT != "split" or len(cpus) < 2:
        return
    where = cpus[-1:] if kind in _UPSTREAMS else cpus[:-1] if kind in _RELAYS else None
    if where is not None:
        with contextlib.suppress(ProcessLookupError):  # it exited already: its own error follows
            os.sched_setaffinity(pid, where)


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONASYNCIODEBUG", None)  # debug mode would slow every child several times over
    return env


@contextlib.contextmanager
def server(kind: str, *args: str, cwd: str | None = None) -> Iterator[ServerProcess]:
    """Run ``python -m benchmarks.serve KIND ARGS`` until the block ends.

    ``cwd``: run it from another checkout (its ``benchmarks`` and ``asgi_audio_proxy`` come
    first on the path), as :mod:`benchmarks.against` does.
    """
    popen = subprocess.Popen(python_command("benchmarks.serve", kind, *args), stdout=subprocess.PIPE,
                             stderr=None, text=True, env=child_env(), cwd=cwd)
    try:
        line = popen.stdout.readline() if popen.stdout else ""
        if not line.startswith("PORT "):
            raise RuntimeError(f"{kind} server did not start (said {line!r})")
        place(popen.pid, kind)
        proc = ServerProcess(kind, int(line.split()[1]), popen, psutil.Process(popen.pid))
        _wait_serving(proc)
        yield proc
    finally:
        stop(popen)


def stop(popen: subprocess.Popen[str], timeout_s: float = 5.0) -> None:
    """Terminate one child by its pid, then kill it if it lingers."""
    if popen.poll() is None:
        popen.terminate()
        try:
            popen.wait(timeout_s)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait(timeout_s)
    if popen.stdout:
        popen.stdout.close()


def _wait_serving(proc: ServerProcess) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while True:
        try:
            httpx.get(f"{proc.http_url}/health", timeout=1.0)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline or proc.popen.poll() is not None:
                raise RuntimeError(f"{proc.kind} server on port {proc.port} never answered") from None
            time.sleep(0.05)


def cpu_seconds(process: psutil.Process) -> float:
    """User plus system CPU seconds of one process (its threads included)."""
    times = process.cpu_times()
    return float(times.user + times.system)
