"""One ``serve`` worker against two: the same load through ``asgi-audio-proxy serve --workers N``.

Owns: running the command-line server as an operator does (``serve --workers N`` on a port of
its own, in front of the load upstream of :mod:`benchmarks.load_upstream`, ``--slots`` as many
as the sessions, so none queues), and one :func:`benchmarks.load.run_load` per worker count and
session count, the bare relay beside them for the added latency. Must not: print anything but
its table and progress lines (stderr).

The relay's CPU and memory are those of the supervisor and all its workers, added up. The
figure *sessions per core* is the session count over the cores the proxy kept busy in the
window (its CPU seconds over the window's seconds): what one core carries, whatever the number
of workers. On a two-core machine the generators and the load upstream share the cores with the
proxy, so two workers cannot have a core each; the row to read is the added p99 at each count
(goal: under 20 ms) and where one worker stops holding it.

Run: ``python -m benchmarks.workers [--sessions 100 200] [--window 5]``.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psutil

from .load import LoadResult, run_load
from .procs import ServerProcess, child_env, server, stop

__all__ = ["main"]

_START_TIMEOUT_S = 60.0


class _ProcessTree(psutil.Process):  # type: ignore[misc]  # psutil has no types
    """A process and its children, read as one: CPU times and resident memory added up."""

    def _all(self) -> list[psutil.Process]:
        return [psutil.Process(self.pid), *self.children(recursive=True)]

    def cpu_times(self) -> Any:
        parts = [p.cpu_times() for p in self._all()]
        return parts[0]._replace(user=sum(t.user for t in parts), system=sum(t.system for t in parts))

    def memory_info(self) -> Any:
        parts = [p.memory_info() for p in self._all()]
        return parts[0]._replace(rss=sum(m.rss for m in parts))


@contextlib.contextmanager
def serve_workers(workers: int, upstream_url: str, slots: int) -> Iterator[ServerProcess]:
    """``asgi-audio-proxy serve --workers N`` until the block ends, once every worker listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    argv = [sys.executable, "-m", "asgi_audio_proxy.cli", "--log-level", "warning", "serve",
            "--workers", str(workers), "--upstream", upstream_url, "--slots", str(slots),
            "--max-queue", "0", "--port", str(port), "--chunk-duration", "0.2"]
    popen = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                             env=child_env())
    announced = threading.Event()
    said: list[str] = []

    def drain() -> None:  # a full pipe would stall the server
        assert popen.stderr is not None
        for line in popen.stderr:
            said.append(line)
            if "workers on http://" in line:
                announced.set()

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        proc = ServerProcess(f"serve x{workers}", port, popen, _ProcessTree(popen.pid))
        if workers > 1 and not announced.wait(_START_TIMEOUT_S):
            raise RuntimeError(f"serve --workers {workers} did not announce its workers")
        _wait_answering(proc, said)
        yield proc
    finally:
        stop(popen)
        reader.join(5)


def _wait_answering(proc: ServerProcess, said: list[str]) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while True:
        try:
            httpx.get(proc.http_url + "/", timeout=1.0)  # 404: listening
            return
        except httpx.TransportError:
            if time.monotonic() > deadline or proc.popen.poll() is not None:
                raise RuntimeError(f"{proc.kind} never answered on port {proc.port}; it said:\n"
                                   + "".join(said[-20:])) from None
            time.sleep(0.05)  # a process starting says nothing when it listens: ask again


def run(sessions: list[int], workers: list[int], warmup_s: float, window_s: float,
        log: Any) -> list[tuple[str, int, LoadResult]]:
    rows: list[tuple[str, int, LoadResult]] = []
    with server("load-upstream") as upstream, \
            server("bare", "--upstream", upstream.http_url) as bare:
        for n in sessions:
            log(f"bare x {n} ...")
            rows.append(("bare relay", n, run_load(bare, upstream, bare.ws_url + "/relay", target="bare",
                                                   sessions=n, warmup_s=warmup_s, window_s=window_s)))
            for count in workers:
                with serve_workers(count, upstream.http_url, slots=n) as relay:
                    log(f"serve --workers {count} x {n} ...")
                    rows.append((f"serve --workers {count}", n, run_load(
                        relay, upstream, relay.ws_url + "/audio_proxy", target=f"workers-{count}",
                        sessions=n, warmup_s=warmup_s, window_s=window_s)))
    return rows


def table(rows: list[tuple[str, int, LoadResult]]) -> str:
    bare = {n: r for name, n, r in rows if name == "bare relay"}
    lines = ["| relay | sessions | valid | p50 ms | p99 ms | added p99 ms | relay CPU s/s | "
             "sessions per core |", "|---|---|---|---|---|---|---|---|"]
    for name, n, r in rows:
        busy_cores = r.relay_cpu_s / r.window_s
        added = (r.latency_ms.get("p99", float("nan")) - bare[n].latency_ms.get("p99", float("nan"))
                 if name != "bare relay" else 0.0)
        valid = "yes" if r.valid else "NO: " + "; ".join(r.invalid_reasons)
        p50, p99 = r.latency_ms.get("p50", float("nan")), r.latency_ms.get("p99", float("nan"))
        per_core = n / busy_cores if busy_cores else float("nan")
        lines.append(f"| {name} | {n} | {valid} | {p50:.2f} | {p99:.2f} | {added:+.2f} | "
                     f"{busy_cores:.2f} | {per_core:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.workers", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, nargs="+", default=[100, 200])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before the window")
    parser.add_argument("--window", type=float, default=10.0, help="seconds measured")
    args = parser.parse_args(argv)
    rows = run(args.sessions, args.workers, args.warmup, args.window,
               lambda text: print(text, file=sys.stderr, flush=True))
    print(table(rows))


if __name__ == "__main__":
    main()
