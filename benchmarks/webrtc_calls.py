"""CPU per call: WebRTC calls against Realtime WebSocket sessions, same load, same run.

``python -m benchmarks.webrtc_calls [--calls 1 10] [--seconds 10]``

Owns: one figure, taken from outside the proxy process (psutil): the proxy's CPU milliseconds
per call-second while N clients talk at once, each saying a 0.6 s tone every 3 s (so replies
flow too), over WebRTC (aiortc clients posting to ``/v1/realtime/calls``: Opus, SRTP, DTLS, the
data channel) and over the Realtime WebSocket (``input_audio_buffer.append`` of 100 ms, base64
PCM). The proxy (``python -m benchmarks.serve proxy --dialects``) and the load upstream run in
processes of their own; the clients run here, so their CPU is not counted.
Must not: assert anything (the tests do).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import time

import httpx
from websockets.asyncio.client import connect

from tests.signals import silence, tone
from tests.webrtc.peer import Peer

from .procs import ServerProcess, cpu_seconds, server

__all__ = ["main", "measure"]

#: what each client says, over and over: a tone, then quiet enough for the turn to end
_TURN_S = 3.0


def _utterance(rate_hz: int) -> bytes:
    return tone(440, 0.6, rate_hz) + silence(_TURN_S - 0.6, rate_hz)


async def _webrtc_client(base: str, stop: asyncio.Event) -> None:
    peer = Peer()
    try:
        response = await peer.call(base)
        if response.status_code != 201:
            raise RuntimeError(f"call refused: {response.status_code} {response.text}")
        speech = _utterance(48_000)
        while not stop.is_set():
            peer.mic.say(speech)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), _TURN_S)
    finally:
        await peer.close()


async def _websocket_client(url: str, stop: asyncio.Event) -> None:
    speech = _utterance(24_000)
    piece = 24_000 * 2 // 10
    loop = asyncio.get_running_loop()
    async with connect(url, max_size=None) as ws:
        async def drain() -> None:
            async for _ in ws:
                pass
        reader = asyncio.create_task(drain())
        start, sent = loop.time(), 0
        try:
            while not stop.is_set():
                chunk = speech[(sent * piece) % len(speech):][:piece]
                await ws.send(json.dumps({"type": "input_audio_buffer.append",
                                          "audio": base64.b64encode(chunk).decode()}))
                sent += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), max(0.0, start + sent * 0.1 - loop.time()))
        finally:
            reader.cancel()


def _loop_cpu_s(proxy: ServerProcess) -> float:
    """CPU seconds of the proxy's main thread: its event loop (aiortc codes Opus in threads)."""
    main = next(t for t in proxy.process.threads() if t.id == proxy.process.pid)
    return float(main.user_time + main.system_time)


async def measure(proxy: ServerProcess, transport: str, calls: int, seconds: float
                  ) -> tuple[float, float]:
    """The proxy's CPU ms per call-second with ``calls`` clients of ``transport`` talking: in
    all, and on its event loop."""
    stop = asyncio.Event()
    if transport == "webrtc":
        clients = [_webrtc_client(proxy.http_url, stop) for _ in range(calls)]
    else:
        clients = [_websocket_client(f"{proxy.ws_url}/v1/realtime", stop) for _ in range(calls)]
    tasks = [asyncio.create_task(c) for c in clients]
    await asyncio.sleep(2.0)  # every call set up and talking before the window opens
    before, loop_before, t0 = cpu_seconds(proxy.process), _loop_cpu_s(proxy), time.monotonic()
    await asyncio.sleep(seconds)
    used, wall = cpu_seconds(proxy.process) - before, time.monotonic() - t0
    on_loop = _loop_cpu_s(proxy) - loop_before
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    return used * 1000 / (calls * wall), on_loop * 1000 / (calls * wall)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.webrtc_calls")
    parser.add_argument("--calls", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    with server("load-upstream") as upstream, server("proxy", "--dialects", "--upstream",
                                                     upstream.http_url) as proxy:
        httpx.get(f"{proxy.http_url}/health", timeout=5)
        print("calls  transport  proxy CPU ms per call-second (all threads, event loop)")
        for calls in args.calls:
            for transport in ("websocket", "webrtc"):
                total, on_loop = asyncio.run(measure(proxy, transport, calls, args.seconds))
                print(f"{calls:5d}  {transport:9s}  {total:8.1f}  {on_loop:8.1f}", flush=True)


if __name__ == "__main__":
    main()
