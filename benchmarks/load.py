"""One load level: N real-time sessions through a relay (the proxy or the bare relay) for a while.

Owns: starting the generator processes, a common start time, the CPU (psutil, user + system) of
the relay, upstream and generators over the steady window only, the relay's resident memory
before the sessions and with all of them live, matching each message's send time (generator) to
its arrival (load upstream) by its marker, and the validity rules below. Must not: print.

A run is **invalid**, and reported as such, never as a figure, when: a session failed to connect;
a generator fell behind (p99 lateness over :data:`MAX_LATE_P99_MS` or any frame later than
:data:`MAX_LATE_MS`); a message sent in the window never arrived; a message could not be told
apart (no marker and no declared session, a marker that disagrees with the arrival count, or an
arrival before its last frame left); or a session got an error.
"""

from __future__ import annotations

import contextlib
import json
import math
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
import numpy as np
import psutil

from .procs import ServerProcess, child_env, cpu_seconds, python_command, stop

__all__ = ["MAX_LATE_MS", "MAX_LATE_P99_MS", "LoadResult", "run_load"]

#: a generator whose frames left more than this late at p99 did not keep real time
MAX_LATE_P99_MS = 10.0
#: ... or whose worst frame was three frames late
MAX_LATE_MS = 60.0
#: an arrival this much before its message's last frame left is a numbering error, not a clock
MISNUMBERED_EARLY_MS = 20.0
#: sessions one generator process drives (above it, several processes share the load)
SESSIONS_PER_GENERATOR = 100
_READY_TIMEOUT_S = 90.0
_START_MARGIN_S = 0.3


@dataclass
class LoadResult:
    """What one load level measured (times in ms, CPU in s, memory in KiB unless named)."""

    target: str
    sessions: int
    window_s: float
    dialect: str = "native"
    phases: str = "aligned"
    valid: bool = True
    invalid_reasons: list[str] = field(default_factory=list)
    latency_ms: dict[str, float] = field(default_factory=dict)
    messages: int = 0
    lost_messages: int = 0
    relay_cpu_s: float = 0.0
    upstream_cpu_s: float = 0.0
    generator_cpu_s: float = 0.0
    cpu_s_per_audio_s: float = 0.0
    rss_before_kib: float = 0.0
    rss_live_kib: float = 0.0
    rss_per_session_kib: float = 0.0
    generator_late_ms: dict[str, float] = field(default_factory=dict)
    reply_ms: list[float] = field(default_factory=list)
    reply_e2e_ms: list[float] = field(default_factory=list)
    rss_samples: list[tuple[float, float]] = field(default_factory=list)
    #: why each session that did not open failed (``... HTTP 503`` for a refused handshake)
    connect_failures: list[str] = field(default_factory=list)
    #: error events the sessions got (the first few per generator) and closes other than 1000
    session_errors: list[str] = field(default_factory=list)
    unexpected_closes: list[int | None] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["reply_ms"] = summary(self.reply_ms) if self.reply_ms else {}
        out["reply_e2e_ms"] = summary(self.reply_e2e_ms) if self.reply_e2e_ms else {}
        return out

    def invalidate(self, reason: str) -> None:
        self.valid = False
        self.invalid_reasons.append(reason)


def summary(values: list[float] | np.ndarray) -> dict[str, float]:
    """p50, p90, p99, max and count, rounded for the report."""
    a = np.asarray(values, dtype=float)
    if a.size == 0:
        return {"n": 0}
    return {"p50": round(float(np.percentile(a, 50)), 3), "p90": round(float(np.percentile(a, 90)), 3),
            "p99": round(float(np.percentile(a, 99)), 3), "max": round(float(a.max()), 3),
            "n": int(a.size)}


def run_load(relay: ServerProcess, upstream: ServerProcess, client_url: str, *, target: str,
             sessions: int, warmup_s: float, window_s: float, reply_every: int = 0,
             rss_every_s: float = 0.0, dialect: str = "native", phases: str = "aligned",
             declare: bool = False,
             on_sample: Callable[[float, float], None] | None = None) -> LoadResult:
    """Run one level and return its figures; ``reply_every`` > 0 asks for replies (see marker).

    ``dialect`` is what the clients speak (see :mod:`benchmarks.dialect_wire`), ``phases`` where
    their message boundaries fall (see :mod:`benchmarks.loadgen`); ``declare`` makes native
    sessions declare themselves as well, so the upstream checks its count against the marker.
    """
    result = LoadResult(target=target, sessions=sessions, window_s=window_s, dialect=dialect,
                        phases=phases)
    httpx.get(f"{upstream.http_url}/bench/arrivals", timeout=10)  # forget older arrivals
    result.rss_before_kib = relay.process.memory_info().rss / 1024
    count = max(1, math.ceil(sessions / SESSIONS_PER_GENERATOR))
    shares = [sessions // count + (1 if i < sessions % count else 0) for i in range(count)]
    generators: list[subprocess.Popen[str]] = []
    try:
        first = 0
        for share in shares:
            gen = subprocess.Popen(python_command("benchmarks.loadgen"), stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, text=True, env=child_env())
            spec = {"url": client_url, "sessions": share, "first_index": first,
                    "total_sessions": sessions, "seconds": warmup_s + window_s,
                    "reply_every": reply_every, "dialect": dialect, "phases": phases,
                    "declare": declare, "tail_s": 0.5 if reply_every else 0.1}
            assert gen.stdin is not None
            gen.stdin.write(json.dumps(spec) + "\n")
            gen.stdin.flush()
            generators.append(gen)
            first += share
        ready = [_ready_line(gen) for gen in generators]
        connected = sum(ok for ok, _ in ready)
        if connected != sessions:
            result.invalidate(f"{sessions - connected} of {sessions} sessions failed to connect")
        if dialect == "twilio":
            _wait_declared(upstream, connected, result)
        gen_procs = [psutil.Process(g.pid) for g in generators]
        start = time.perf_counter() + _START_MARGIN_S
        for gen in generators:
            assert gen.stdin is not None
            gen.stdin.write(f"GO {start!r}\n")
            gen.stdin.flush()
        window_start, window_end = start + warmup_s, start + warmup_s + window_s
        _sleep_until(window_start)
        cpu0 = [cpu_seconds(p) for p in (relay.process, upstream.process, *gen_procs)]
        if rss_every_s > 0:
            next_sample = window_start + rss_every_s
            while next_sample < window_end:
                _sleep_until(next_sample)
                rss = relay.process.memory_info().rss / 1024
                result.rss_samples.append((round(next_sample - window_start, 1), rss))
                if on_sample is not None:
                    on_sample(next_sample - window_start, rss)
                next_sample += rss_every_s
        _sleep_until(window_end)
        cpu1 = [cpu_seconds(p) for p in (relay.process, upstream.process, *gen_procs)]
        result.rss_live_kib = relay.process.memory_info().rss / 1024
        outputs = [_result_line(gen, warmup_s + window_s + 30) for gen in generators]
    finally:
        for gen in generators:
            stop(gen)
    used = [b - a for a, b in zip(cpu0, cpu1, strict=True)]
    result.relay_cpu_s, result.upstream_cpu_s = round(used[0], 3), round(used[1], 3)
    result.generator_cpu_s = round(sum(used[2:]), 3)
    result.cpu_s_per_audio_s = used[0] / (window_s * max(sessions, 1))
    result.rss_per_session_kib = round((result.rss_live_kib - result.rss_before_kib) / max(sessions, 1), 1)
    _judge_generators(result, outputs)
    _match_arrivals(result, upstream, outputs, window_start, window_end)
    return result


def _wait_declared(upstream: ServerProcess, sessions: int, result: LoadResult) -> None:
    """Until every session's conversation is open upstream and declared (options applied).

    Twilio is told nothing when its stream is ready, so a caller streams from ``start`` on; the
    proxy reads that audio once its upstream is connected, and its real-time pacer, whose clock
    starts at the first audio read, then keeps the whole call that late. The load starts once
    every call is up, so the figure is the dialect's steady cost, not its start-up.
    """
    deadline = time.monotonic() + _READY_TIMEOUT_S
    while True:
        streams = httpx.get(f"{upstream.http_url}/bench/streams", timeout=10).json()
        if streams["declared"] >= sessions:
            return
        if time.monotonic() > deadline:
            result.invalidate(f"only {streams['declared']} of {sessions} sessions reached the upstream")
            return
        time.sleep(0.05)


def _judge_generators(result: LoadResult, outputs: list[dict[str, Any]]) -> None:
    late_p99 = max(o["late_ms"]["p99"] for o in outputs)
    late_max = max(o["late_ms"]["max"] for o in outputs)
    result.generator_late_ms = {"p99": round(late_p99, 3), "max": round(late_max, 3)}
    if late_p99 > MAX_LATE_P99_MS or late_max > MAX_LATE_MS:
        result.invalidate(f"load generator fell behind (late p99 {late_p99:.1f} ms, "
                          f"max {late_max:.1f} ms)")
    for o in outputs:
        result.connect_failures.extend(o["connect_failures"])
        result.session_errors.extend(o["errors"])
        result.unexpected_closes.extend(o["unexpected_closes"])
        if o["frames_sent"] < o["frames_due"]:
            result.invalidate(f"{o['frames_due'] - o['frames_sent']} frames not sent")
        if o["errors"] or o["unexpected_closes"]:
            result.invalidate(f"session errors {o['errors'][:3]}, closes {o['unexpected_closes'][:3]}")
        result.reply_ms.extend(o["reply_ms"])
        result.reply_e2e_ms.extend(o["reply_e2e_ms"])


def _match_arrivals(result: LoadResult, upstream: ServerProcess, outputs: list[dict[str, Any]],
                    window_start: float, window_end: float) -> None:
    body = httpx.get(f"{upstream.http_url}/bench/arrivals", timeout=30).json()
    arrived = {(s, m): t for s, m, t in body["arrivals"]}
    latencies, lost = [], 0
    for o in outputs:
        for session, sent_times in o["message_sent_at"].items():
            for message, sent in enumerate(sent_times):
                if not window_start <= sent < window_end:
                    continue
                at = arrived.get((int(session), message))
                if at is None:
                    lost += 1
                else:
                    latencies.append((at - sent) * 1000)
    result.messages, result.lost_messages = len(latencies), lost
    result.latency_ms = summary(latencies)
    if lost:
        result.invalidate(f"{lost} messages sent in the window never reached the upstream")
    if body["unmarked"]:
        result.invalidate(f"{body['unmarked']} messages reached the upstream without a marker "
                          "or a declared session")
    if body.get("misnumbered"):
        result.invalidate(f"{body['misnumbered']} messages' markers disagree with their arrival count")
    # a message numbered one off arrives 200 ms early; a few ms early is only the generator
    # reading its clock after the send returned, once the relay already had the frame
    early = sum(x < -MISNUMBERED_EARLY_MS for x in latencies)
    if early:
        result.invalidate(f"{early} messages arrived over {MISNUMBERED_EARLY_MS:g} ms before their "
                          "last frame was sent (misnumbered)")


def _ready_line(gen: subprocess.Popen[str]) -> tuple[int, int]:
    line = _read_line(gen, _READY_TIMEOUT_S)
    if not line.startswith("READY "):
        raise RuntimeError(f"load generator did not get ready: {line!r}")
    ok, failed = line.split()[1:3]
    return int(ok), int(failed)


def _result_line(gen: subprocess.Popen[str], timeout_s: float) -> dict[str, Any]:
    line = _read_line(gen, timeout_s)
    try:
        out: dict[str, Any] = json.loads(line)
    except ValueError as exc:
        raise RuntimeError(f"load generator gave no result: {line[:200]!r}") from exc
    return out


def _read_line(gen: subprocess.Popen[str], timeout_s: float) -> str:
    """One stdout line under a deadline (a thread, so a hung child cannot hang the run)."""
    import concurrent.futures

    assert gen.stdout is not None
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        future = pool.submit(gen.stdout.readline)
        try:
            return future.result(timeout=timeout_s)
        except concurrent.futures.TimeoutError:
            with contextlib.suppress(OSError):
                gen.kill()
            raise RuntimeError(f"load generator silent for {timeout_s} s") from None


def _sleep_until(t: float) -> None:
    delay = t - time.perf_counter()
    if delay > 0:
        time.sleep(delay)
