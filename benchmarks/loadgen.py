"""The load generator, a process of its own: ``python -m benchmarks.loadgen`` (driven over stdio).

Owns: opening many client sessions, sending each one's 20 ms frames at real-time pace (session
``g`` of ``N`` offset by ``g/N`` of a frame, as independent clients would be), recording when the
last frame of each 200 ms message left, timing reply audio, and checking its own pace: every
frame's lateness against its schedule is kept, and a run whose generator fell behind is marked
invalid by the parent (see :data:`benchmarks.load.MAX_LATE_P99_MS`).

Protocol with the parent, one line each: the spec as JSON on stdin; ``READY <ok> <failed>`` on
stdout once every session has its ``ready``; ``GO <perf_counter>`` on stdin (the common start);
the result as one JSON line on stdout. Must not: import the proxy (it is the client side).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from .marker import FRAME_BYTES, FRAMES_PER_MESSAGE, marked_frame

__all__ = ["main"]

FRAME_S = 0.02
_SILENT_FRAME = bytes(FRAME_BYTES)
_READY_TIMEOUT_S = 30.0
_CONNECT_CONCURRENCY = 16


@dataclass
class _Session:
    index: int
    ws: ClientConnection
    phase_s: float
    message_sent_at: list[float] = field(default_factory=list)
    reply_ms: list[float] = field(default_factory=list)
    reply_e2e_ms: list[float] = field(default_factory=list)
    reply_frames: int = 0
    turn_ends: int = 0
    errors: list[str] = field(default_factory=list)
    closed_code: int | None = None
    _stamps: tuple[float, float | None] | None = None

    async def read(self) -> None:
        """Read everything the server sends; reply audio is timed against the upstream's stamp."""
        try:
            async for message in self.ws:
                now = time.perf_counter()
                if isinstance(message, bytes):
                    self.reply_frames += 1
                    if self._stamps is not None:
                        sent, arrived = self._stamps
                        self.reply_e2e_ms.append((now - sent) * 1000)
                        if arrived is not None:
                            self.reply_ms.append((now - arrived) * 1000)
                        self._stamps = None
                    continue
                event = json.loads(message)
                kind = event.get("type")
                if kind == "text":
                    self._stamps = _read_stamps(event["content"])
                elif kind == "turn_end":
                    self.turn_ends += 1
                elif kind == "error":
                    self.errors.append(str(event.get("message"))[:200])
        except ConnectionClosed as exc:
            self.closed_code = exc.rcvd.code if exc.rcvd else None


def _read_stamps(text: str) -> tuple[float, float | None] | None:
    """``"<upstream send>[|<proxy arrival>]"`` (see benchmarks.load_upstream and .serve)."""
    try:
        parts = [float(p) for p in text.split("|")]
    except ValueError:
        return None
    return parts[0], parts[1] if len(parts) > 1 else None


async def _open(url: str, index: int, total: int, gate: asyncio.Semaphore) -> _Session | str:
    async with gate:
        try:
            async with asyncio.timeout(_READY_TIMEOUT_S):
                # offer permessage-deflate as browsers do (BENCH_CLIENT_DEFLATE=1): what the server
                # then chooses is what is measured
                compression = "deflate" if os.environ.get("BENCH_CLIENT_DEFLATE") else None
                ws = await connect(url, compression=compression, ping_interval=None, max_queue=None)
                first = json.loads(await ws.recv())
        except (OSError, TimeoutError, ConnectionClosed, ValueError) as exc:
            return f"session {index}: {type(exc).__name__}: {exc}"[:200]
        if first.get("type") != "ready":
            await ws.close()
            return f"session {index}: first message {first!r}"[:200]
        return _Session(index, ws, phase_s=FRAME_S * index / total)


async def _stream(sessions: list[_Session], start: float, frames: int, reply_every: int) -> list[float]:
    """Send ``frames`` frames per session on schedule; returns each frame's lateness in seconds."""
    order = sorted(sessions, key=lambda s: s.phase_s)
    late = np.empty(frames * len(order))
    n = 0
    for frame in range(frames):
        base = start + frame * FRAME_S
        message, position = divmod(frame, FRAMES_PER_MESSAGE)
        for session in order:
            due = base + session.phase_s
            wait = due - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            if position == 0:
                wants = reply_every > 0 and (message + session.index) % reply_every == reply_every - 1
                data = marked_frame(session.index, message, wants_reply=wants)
            else:
                data = _SILENT_FRAME
            try:
                await session.ws.send(data)
            except ConnectionClosed:
                continue
            sent = time.perf_counter()
            if position == FRAMES_PER_MESSAGE - 1:
                session.message_sent_at.append(sent)
            late[n] = sent - due
            n += 1
    return late[:n].tolist()


async def _run(spec: dict[str, Any]) -> dict[str, Any]:
    total, first = int(spec["total_sessions"]), int(spec["first_index"])
    gate = asyncio.Semaphore(_CONNECT_CONCURRENCY)
    opened = await asyncio.gather(*(_open(spec["url"], first + i, total, gate)
                                    for i in range(int(spec["sessions"]))))
    sessions = [s for s in opened if isinstance(s, _Session)]
    failures = [s for s in opened if isinstance(s, str)]
    readers = [asyncio.create_task(s.read()) for s in sessions]
    print(f"READY {len(sessions)} {len(failures)}", flush=True)
    line = await asyncio.to_thread(sys.stdin.readline)
    start = float(line.split()[1])
    frames = round(float(spec["seconds"]) / FRAME_S)
    late = await _stream(sessions, start, frames, int(spec.get("reply_every", 0)))
    await asyncio.sleep(float(spec.get("tail_s", 0.5)))  # let the last replies arrive
    for session in sessions:
        with contextlib.suppress(ConnectionClosed, OSError, TimeoutError):
            async with asyncio.timeout(2.0):
                await session.ws.close()
    await asyncio.gather(*readers, return_exceptions=True)
    late_ms = np.array(late) * 1000 if late else np.zeros(1)
    return {
        "sessions": len(sessions),
        "connect_failures": failures,
        "frames_sent": len(late),
        "frames_due": frames * len(sessions),
        "late_ms": {"p50": float(np.percentile(late_ms, 50)), "p99": float(np.percentile(late_ms, 99)),
                    "max": float(late_ms.max())},
        "message_sent_at": {str(s.index): s.message_sent_at for s in sessions},
        "reply_ms": [x for s in sessions for x in s.reply_ms],
        "reply_e2e_ms": [x for s in sessions for x in s.reply_e2e_ms],
        "reply_frames": sum(s.reply_frames for s in sessions),
        "turn_ends": sum(s.turn_ends for s in sessions),
        "errors": [e for s in sessions for e in s.errors][:20],
        "unexpected_closes": [s.closed_code for s in sessions if s.closed_code not in (None, 1000)],
    }


def main() -> None:
    spec = json.loads(sys.stdin.readline())
    result = asyncio.run(_run(spec))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
