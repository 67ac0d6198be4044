"""The load generator, a process of its own: ``python -m benchmarks.loadgen`` (driven over stdio).

Owns: opening many client sessions, sending each one's 20 ms frames at real-time pace (session
``g`` of ``N`` offset by ``g/N`` of a frame, as independent clients would be), recording when the
last frame of each 200 ms message left, timing reply audio, and checking its own pace: every
frame's lateness against its schedule is kept, and a run whose generator fell behind is marked
invalid by the parent (see :data:`benchmarks.load.MAX_LATE_P99_MS`).

Message phases: ``aligned`` (every session starts on the same frame, so all 200 ms message
boundaries fall inside one 20 ms window: clients that started together) or ``random`` (each
session starts 0-9 frames late, ten sessions per slot in a fixed shuffled order, so boundaries
spread over the whole 200 ms). The frame spread is the same in both.

Dialects (see :mod:`benchmarks.dialect_wire`): ``native`` (binary PCM, the marker in each
message), ``realtime`` (``input_audio_buffer.append``, base64 PCM16 24 kHz, after a
``session.update``) and ``twilio`` (``connected``, ``start``, then μ-law 8 kHz ``media``). The
last two declare their session in the assistant prompt (see :mod:`benchmarks.marker`).

Protocol with the parent, one line each: the spec as JSON on stdin; ``READY <ok> <failed>`` on
stdout once every session is open (its dialect's opening done: ``ready``, ``session.updated``,
or ``start`` sent); ``GO <perf_counter>`` on stdin (the common start);
the result as one JSON line on stdout. A native server's frames are read through the protocol's
client half (:mod:`asgi_audio_proxy.dialects.native_client`): a frame it does not have is a
session error, which invalidates the run. Must not: import the proxy's server side (it is the
client side).
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
from websockets.exceptions import ConnectionClosed, InvalidStatus

from asgi_audio_proxy.dialects.native_client import (
    AudioMessage,
    BadProxyMessage,
    ErrorMessage,
    TextMessage,
    TurnEndMessage,
    decode_message,
)

from .dialect_wire import ClientWire, HandshakeFailed, client_wire
from .marker import FRAMES_PER_MESSAGE

__all__ = ["main", "message_offsets"]

FRAME_S = 0.02
_READY_TIMEOUT_S = 30.0
_CONNECT_CONCURRENCY = 16
#: the shuffle of the random message phases: fixed, so every run and generator agrees
_PHASE_SEED = 11


def message_offsets(total: int, phases: str) -> list[int]:
    """Frames each session starts late: none when ``aligned``, 0-9 (ten per slot) when ``random``."""
    if phases == "aligned":
        return [0] * total
    if phases != "random":
        raise ValueError(f"invalid phases={phases!r}: expected 'aligned' or 'random'")
    slots = np.arange(total) % FRAMES_PER_MESSAGE
    np.random.default_rng(_PHASE_SEED).shuffle(slots)
    return [int(k) for k in slots]


@dataclass
class _Session:
    index: int
    ws: ClientConnection
    wire: ClientWire
    phase_s: float
    skip_frames: int = 0  # starts this many frames after the common start (its message phase)
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
            async for frame in self.ws:
                now = time.perf_counter()
                if self.wire.dialect != "native":
                    if isinstance(frame, str) and (
                            error := self.wire.error_of(json.loads(frame))) is not None:
                        self.errors.append(error)
                    continue
                match decode_message(frame):
                    case AudioMessage():
                        self._reply_audio(now)
                    case TextMessage(text=text):
                        self._stamps = _read_stamps(text)
                    case TurnEndMessage():
                        self.turn_ends += 1
                    case ErrorMessage(message=message):
                        self.errors.append(message[:200])
        except BadProxyMessage as exc:
            self.errors.append(f"session {self.index}: {exc}"[:200])
        except ConnectionClosed as exc:
            self.closed_code = exc.rcvd.code if exc.rcvd else None

    def _reply_audio(self, now: float) -> None:
        self.reply_frames += 1
        if self._stamps is not None:
            sent, arrived = self._stamps
            self.reply_e2e_ms.append((now - sent) * 1000)
            if arrived is not None:
                self.reply_ms.append((now - arrived) * 1000)
            self._stamps = None


def _read_stamps(text: str) -> tuple[float, float | None] | None:
    """``"<upstream send>[|<proxy arrival>]"`` (see benchmarks.load_upstream and .serve)."""
    try:
        parts = [float(p) for p in text.split("|")]
    except ValueError:
        return None
    return parts[0], parts[1] if len(parts) > 1 else None


async def _open(spec: dict[str, Any], index: int, gate: asyncio.Semaphore,
                skip_frames: int) -> _Session | str:
    wire = client_wire(spec.get("dialect", "native"), index, declare=bool(spec.get("declare")))
    async with gate:
        ws = None
        try:
            async with asyncio.timeout(_READY_TIMEOUT_S):
                # offer permessage-deflate as browsers do (BENCH_CLIENT_DEFLATE=1): what the server
                # then chooses is what is measured
                compression = "deflate" if os.environ.get("BENCH_CLIENT_DEFLATE") else None
                ws = await connect(spec["url"], compression=compression, ping_interval=None,
                                   max_queue=None)
                await wire.open(ws)
        except (OSError, TimeoutError, ConnectionClosed, InvalidStatus, ValueError,
                HandshakeFailed) as exc:  # InvalidStatus: refused at admission (503)
            if ws is not None:
                await ws.close()
            return f"session {index}: {type(exc).__name__}: {exc}"[:200]
        return _Session(index, ws, wire, phase_s=FRAME_S * index / int(spec["total_sessions"]),
                        skip_frames=skip_frames)


async def _stream(sessions: list[_Session], start: float, frames: int, reply_every: int) -> list[float]:
    """Send ``frames`` frames per session on schedule; returns each frame's lateness in seconds."""
    order = sorted(sessions, key=lambda s: s.phase_s)
    late = np.empty(frames * len(order))
    n = 0
    for frame in range(frames):
        base = start + frame * FRAME_S
        for session in order:
            if frame < session.skip_frames:
                continue  # not started yet: its messages end later than the others'
            message, position = divmod(frame - session.skip_frames, FRAMES_PER_MESSAGE)
            due = base + session.phase_s
            wait = due - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            wants = reply_every > 0 and (message + session.index) % reply_every == reply_every - 1
            data = session.wire.frame(message, position, wants_reply=wants and position == 0)
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
    offsets = message_offsets(total, spec.get("phases", "aligned"))
    opened = await asyncio.gather(*(_open(spec, first + i, gate, offsets[first + i])
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
        "frames_due": sum(frames - s.skip_frames for s in sessions),
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
