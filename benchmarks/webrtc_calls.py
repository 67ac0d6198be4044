"""WebRTC calls against Realtime WebSocket sessions: CPU per call and reply latency, same load,
same run.

``python -m benchmarks.webrtc_calls [--calls 10 50] [--seconds 12]``

Owns: three figures per transport and call count, with N clients talking at once, each saying
a 0.6 s tone every 4 s: the proxy's CPU milliseconds per call-second (read from outside with
psutil: all its threads, and its main thread, the event loop, alone); the reply latency, from
the end of the tone to the reply's first audio at the client (p50, p95); and whether the run
was valid. Between tones each client hums at -60 dBFS, under the simulator's voice detector:
the simulator replays what it heard since its last reply, which starts with that hum, so the
reply's first audio is found by its level on either transport (a call's idle track is zeros).
WebRTC clients are aiortc peers posting to ``/v1/realtime/calls`` (Opus, SRTP,
DTLS, the data channel; the reply heard on the track, paced as it plays); WebSocket clients
send ``input_audio_buffer.append`` every 100 ms and hear ``response.output_audio.delta``. The
proxy (``python -m benchmarks.serve proxy --dialects``) and the upstream (the simulator, which
replays what it heard: two chunks, about a second) run in processes of their own; the clients
run here (:mod:`benchmarks.webrtc_clients`), so their CPU is not counted, but they share
the machine.

A run is invalid when a client never connected, when the clients could not keep real time
(this process's loop more than ``MAX_CLIENT_LAG_MS`` late at p99: the load was not what it
says) or when a tenth of the turns got no reply (the proxy could not keep up).
:func:`media_work_us` times the call's own media code (the microphone's frames made PCM, the
reply's frames made) per call-second, to weigh against the loop's share.
Must not: assert anything (the tests do).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from av import AudioFrame

from asgi_audio_proxy.webrtc.playout import Playout
from asgi_audio_proxy.webrtc.tracks import MicrophoneReader
from tests.signals import tone

from .procs import ServerProcess, cpu_seconds, server
from .report import Row
from .webrtc_clients import SETTLE_S, TURN_S, CallsRun, Turns, client_lag, webrtc_client, websocket_client

__all__ = ["CallsRun", "largest_valid", "main", "measure", "measure_calls", "media_work_us", "webrtc_rows"]


def _loop_cpu_s(proxy: ServerProcess) -> float:
    """CPU seconds of the proxy's main thread: its event loop (aiortc codes Opus in threads)."""
    main = next(t for t in proxy.process.threads() if t.id == proxy.process.pid)
    return float(main.user_time + main.system_time)


async def measure(proxy: ServerProcess, upstream: ServerProcess, transport: str, calls: int,
                  seconds: float) -> CallsRun:
    """``calls`` clients of ``transport`` talking at once for ``seconds``, after they settle."""
    run, stop, lags = CallsRun(transport, calls), asyncio.Event(), list[float]()
    loop = asyncio.get_running_loop()
    opens = loop.time() + SETTLE_S
    turns = Turns(run, (opens, opens + seconds))
    if transport == "webrtc":
        clients = [webrtc_client(proxy.http_url, stop, turns) for _ in range(calls)]
    else:
        clients = [websocket_client(f"{proxy.ws_url}/v1/realtime", stop, turns) for _ in range(calls)]
    tasks = [asyncio.create_task(c) for c in clients]
    await asyncio.sleep(SETTLE_S)
    ticker = asyncio.create_task(client_lag(stop, lags))
    before, loop_before, t0 = cpu_seconds(proxy.process), _loop_cpu_s(proxy), time.monotonic()
    upstream_before = cpu_seconds(upstream.process)
    await asyncio.sleep(seconds)
    wall = time.monotonic() - t0
    run.upstream_cores = (cpu_seconds(upstream.process) - upstream_before) / wall
    run.cpu_ms = (cpu_seconds(proxy.process) - before) * 1000 / (calls * wall)
    run.loop_ms = (_loop_cpu_s(proxy) - loop_before) * 1000 / (calls * wall)
    await asyncio.sleep(TURN_S)  # the window's last turns get their replies
    stop.set()
    await asyncio.gather(ticker, *tasks, return_exceptions=True)
    run.client_lag_p99_ms = float(np.percentile(lags, 99)) if lags else 0.0
    return run


def media_work_us(frames: int = 2_000) -> tuple[float, float, float]:
    """Microseconds of a call's own media code per 20 ms frame, in this process: the
    microphone's decoded frame (48 kHz stereo, as aiortc hands it) made 24 kHz PCM, a reply
    frame taken from the playout and made an ``AudioFrame``, and the microphone's work handed
    to a thread and awaited, as a loop would. CPU time, not wall: a busy machine preempts the
    loop, which is not the code's cost."""
    reader, playout = MicrophoneReader(24_000), Playout(24_000)
    stereo = np.tile(np.frombuffer(tone(440, 0.02, 48_000), "<i2"), 2).reshape(1, -1)
    decoded = AudioFrame.from_ndarray(stereo, format="s16", layout="stereo")
    decoded.sample_rate = 48_000
    start = time.process_time()
    for _ in range(frames):
        reader.pcm(decoded)
    mic = (time.process_time() - start) / frames * 1e6
    with ThreadPoolExecutor(1) as thread:
        start = time.process_time()
        for _ in range(frames):
            thread.submit(reader.pcm, decoded).result()
        in_thread = (time.process_time() - start) / frames * 1e6
    playout.response("resp")
    playout.push(tone(440, frames * 0.02, 24_000))
    start = time.process_time()
    for _ in range(frames):
        frame = AudioFrame(format="s16", layout="mono", samples=480)
        frame.planes[0].update(playout.take())
        playout.events()
    return mic, (time.process_time() - start) / frames * 1e6, in_thread


def webrtc_rows(runs: list[CallsRun]) -> list[Row]:
    """Each WebRTC run beside the WebSocket run at the same call count."""
    rows: list[Row] = []
    by = {(r.transport, r.calls): r for r in runs}
    for (transport, calls), run in sorted(by.items()):
        if transport != "webrtc":
            continue
        base = by.get(("websocket", calls))
        reasons = run.invalid_reasons + (base.invalid_reasons if base else [])
        note = "INVALID: " + "; ".join(reasons) if reasons else ""
        ratio = round(run.cpu_ms / base.cpu_ms, 2) if base and base.cpu_ms else None
        rows.append(Row(f"webrtc CPU per call-second x{calls}", round(run.cpu_ms, 1), "ms",
                        round(base.cpu_ms, 1) if base else None, ratio, note=note))
        rows.append(Row(f"webrtc CPU per call-second on the loop x{calls}", round(run.loop_ms, 1), "ms",
                        round(base.loop_ms, 1) if base else None, note=note))
        for q in (50, 95):
            value, b = run.latency(q), base.latency(q) if base else None
            added = None if value is None or b is None else round(value - b)
            rows.append(Row(f"webrtc reply latency p{q} x{calls}", None if value is None else round(value),
                            "ms", None if b is None else round(b), note=(f"+{added} ms; " if added is not None
                                                                         else "") + note))
    mic, reply, in_thread = media_work_us()
    rows.append(Row("webrtc call's own media work per call-second", round((mic + reply) * 50 / 1000, 2),
                    "ms", note=f"microphone {mic:.0f} us + reply {reply:.0f} us per 20 ms frame"))
    rows.append(Row("webrtc microphone work in a thread, per frame", round(in_thread), "us", round(mic),
                    round(in_thread / mic, 2), note="CPU with the hop to a thread and back, against inline"))
    return rows


def measure_calls(counts: list[int], seconds: float, log: Callable[[str], None] = print) -> list[CallsRun]:
    """Both transports at each of ``counts``, on one proxy and one simulator, in turn."""
    runs: list[CallsRun] = []
    with server("simulator", "--reply-chunks", "2") as upstream, \
            server("proxy", "--dialects", "--upstream", upstream.http_url) as proxy:
        for calls in counts:
            for transport in ("websocket", "webrtc"):
                run = asyncio.run(measure(proxy, upstream, transport, calls, seconds))
                runs.append(run)
                log(f"{calls:3d} {transport:9s}: {run.cpu_ms:6.1f} ms CPU per call-second "
                    f"({run.loop_ms:.1f} on the loop), reply p50 {run.latency(50) or 0:.0f} ms "
                    f"p95 {run.latency(95) or 0:.0f} ms, {len(run.latencies_ms)}/{run.turns} "
                    f"turns answered, clients {run.client_lag_p99_ms:.0f} ms late p99, "
                    f"proxy {run.cpu_ms * calls / 1000:.2f} cores, simulator {run.upstream_cores:.2f}"
                    + ("" if not run.invalid_reasons else "; INVALID: " + "; ".join(run.invalid_reasons)))
    return runs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.webrtc_calls")
    parser.add_argument("--calls", type=int, nargs="+", default=[10, 50])
    parser.add_argument("--seconds", type=float, default=12.0)
    args = parser.parse_args(argv)
    runs = measure_calls(args.calls, args.seconds, lambda line: print(line, flush=True))
    for row in webrtc_rows(runs):
        print(f"{row.figure:48s} {row.value!s:>8} {row.unit:3s} (WebSocket {row.baseline}) {row.note}")
    print(largest_valid(runs))


def largest_valid(runs: list[CallsRun]) -> str:
    """The largest call count at which both transports' runs were valid, and why the next was not."""
    counts = sorted({r.calls for r in runs})
    valid = [n for n in counts if all(not r.invalid_reasons for r in runs if r.calls == n)]
    best = max(valid, default=None)
    above = [n for n in counts if best is None or n > best]
    why = "; ".join(f"{r.transport}: {', '.join(r.invalid_reasons)}" for r in runs
                    if above and r.calls == above[0] and r.invalid_reasons)
    return (f"largest valid call count: {best}" + (f" ({above[0]} calls: {why})" if above else ""))


if __name__ == "__main__":
    main()
