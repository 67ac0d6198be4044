"""The clients of :mod:`benchmarks.webrtc_calls`: WebRTC calls and Realtime WebSockets that
say the same turns, and what they record.

Owns: :class:`CallsRun` (one transport at one call count: its figures and whether it was
valid), the turns each client says (a 0.6 s tone every 4 s, a -60 dBFS hum between), how each
finds its reply's first audio, and the lag of the clients' own loop. Must not: read the proxy
(the benchmark does).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
import numpy as np
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidHandshake

from tests.signals import tone
from tests.webrtc.peer import Peer

__all__ = ["MAX_CLIENT_LAG_MS", "SETTLE_S", "TURN_S", "CallsRun", "Turns", "client_lag", "webrtc_client",
           "websocket_client"]

#: each client's turn: a tone, then quiet for the turn to end and the reply to play
TURN_S, _WORDS_S = 4.0, 0.6
#: the hum between tones (-60 dBFS: the simulator's detector starts at -40, and at -50 the
#: turns ended two seconds late), and the level that tells a reply's audio from a call's idle
#: track
_HUM_AMPLITUDE, _REPLY_LEVEL = 0.001, 15
#: the clients' own loop may run this late at p99 and still keep real time
MAX_CLIENT_LAG_MS = 50.0
#: turns that may go unanswered in a valid run
MAX_UNANSWERED = 0.1
#: before the window opens: every call set up (50 offers take a few seconds) and talking
SETTLE_S = 6.0


@dataclass
class CallsRun:
    """One transport at one call count."""

    transport: str
    calls: int
    cpu_ms: float = 0.0  # per call-second, all threads
    loop_ms: float = 0.0  # per call-second, the event loop's thread
    latencies_ms: list[float] = field(default_factory=list)
    turns: int = 0
    refused: int = 0  # answered with an error, or never answered (timed out, failed)
    client_lag_p99_ms: float = 0.0
    upstream_cores: float = 0.0  # the simulator's CPU, in cores: a saturated one answers late

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "latency_p50_ms": self.latency(50), "latency_p95_ms": self.latency(95),
                "invalid_reasons": self.invalid_reasons, "latencies_ms": None}

    def latency(self, q: float) -> float | None:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else None

    @property
    def invalid_reasons(self) -> list[str]:
        reasons = []
        if self.refused:
            reasons.append(f"{self.refused} of {self.calls} never connected")
        if self.client_lag_p99_ms > MAX_CLIENT_LAG_MS:
            reasons.append(f"the clients ran {self.client_lag_p99_ms:.0f} ms late (p99)")
        if self.turns and len(self.latencies_ms) < (1 - MAX_UNANSWERED) * self.turns:
            reasons.append(f"{self.turns - len(self.latencies_ms)} of {self.turns} turns unanswered")
        return reasons


def _turn(rate_hz: int) -> bytes:
    return tone(440, _WORDS_S, rate_hz) + tone(200, TURN_S - _WORDS_S, rate_hz, _HUM_AMPLITUDE)


def _is_reply(pcm: bytes) -> bool:
    return bool(pcm) and int(np.abs(np.frombuffer(pcm, "<i2")).max()) > _REPLY_LEVEL


class Turns:
    """The turns a client spoke inside the window, and the latency of each one answered."""

    def __init__(self, run: CallsRun, window: tuple[float, float]) -> None:
        self.run, self.window = run, window

    def spoke(self, words_end: float, first_loud: float | None) -> None:
        if self.window[0] <= words_end <= self.window[1]:
            self.run.turns += 1
            if first_loud is not None:
                self.run.latencies_ms.append((first_loud - words_end) * 1000)


async def webrtc_client(base: str, stop: asyncio.Event, turns: Turns) -> None:
    peer = Peer()
    loop = asyncio.get_running_loop()
    try:
        try:
            response = await peer.call(base, timeout_s=SETTLE_S * 2)
            await peer.wait_for("session.created", timeout_s=SETTLE_S * 2)
        except (httpx.HTTPError, AssertionError):
            response = None
        if response is None or response.status_code != 201:
            turns.run.refused += 1
            return
        speech = _turn(48_000)
        while not stop.is_set():
            said = loop.time()
            peer.mic.say(speech)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), TURN_S)
            words_end = said + _WORDS_S
            first = next((when for when, pcm in peer.heard if when > words_end and _is_reply(pcm)), None)
            turns.spoke(words_end, first if not stop.is_set() else None)
            peer.heard.clear()
    finally:
        await peer.close()


async def websocket_client(url: str, stop: asyncio.Event, turns: Turns) -> None:
    speech = _turn(24_000)
    piece = 24_000 * 2 // 10
    loop = asyncio.get_running_loop()
    heard: list[float] = []
    try:
        ws = await connect(url, max_size=None, open_timeout=SETTLE_S * 2)
    except (OSError, TimeoutError, InvalidHandshake):
        turns.run.refused += 1
        return
    async with ws:
        async def listen() -> None:
            async for message in ws:
                event = json.loads(message)
                kind = event["type"]
                if kind == "response.output_audio.delta" and _is_reply(base64.b64decode(event["delta"])):
                    heard.append(loop.time())

        reader = asyncio.create_task(listen())
        start, sent = loop.time(), 0
        try:
            while not stop.is_set():
                at = (sent * piece) % len(speech)
                if at == 0 and sent:
                    words_end = start + (sent * 0.1) - TURN_S + _WORDS_S
                    turns.spoke(words_end, next((t for t in heard if t > words_end), None))
                    heard.clear()
                await ws.send(json.dumps({"type": "input_audio_buffer.append",
                                          "audio": base64.b64encode(speech[at:at + piece]).decode()}))
                sent += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), max(0.0, start + sent * 0.1 - loop.time()))
        finally:
            reader.cancel()


async def client_lag(stop: asyncio.Event, lags: list[float]) -> None:
    """How late this process's loop wakes a 20 ms timer (its clients' real time)."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        start = loop.time()
        await asyncio.sleep(0.02)  # a measuring tick
        lags.append((loop.time() - start - 0.02) * 1000)
