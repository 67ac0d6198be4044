"""A real ``websockets`` client that talks to the proxy the way a device does."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from tests.timing import within

__all__ = ["ProxyClient", "Turn", "at_real_time"]

FRAME_BYTES = 640  # 20 ms of 16 kHz PCM16


async def at_real_time(start: float, offset_s: float) -> None:
    """Pace a sender: resume at ``start + offset_s`` on the loop clock (pacing, not syncing)."""
    loop = asyncio.get_running_loop()
    when = start + offset_s
    if when > loop.time():
        done = loop.create_future()
        handle = loop.call_at(when, _resolve, done)
        try:
            await done
        finally:
            handle.cancel()


def _resolve(done: asyncio.Future[None]) -> None:
    # a sender cancelled in the very turn its timer fires has its future cancelled already
    if not done.done():
        done.set_result(None)


@dataclass
class Turn:
    """What the client got for one reply."""

    texts: list[str] = field(default_factory=list)
    audio: bytearray = field(default_factory=bytearray)
    end: dict[str, Any] | None = None
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(self.texts)


class ProxyClient:
    """``async with ProxyClient(url) as c``: connects and reads ``ready``."""

    def __init__(self, url: str, *, expect_ready: bool = True) -> None:
        self.url = url
        self.expect_ready = expect_ready
        self.ws: ClientConnection | None = None
        self.ready: dict[str, Any] = {}

    async def __aenter__(self) -> ProxyClient:
        self.ws = await connect(self.url, max_size=2**22, open_timeout=within(10))
        if self.expect_ready:
            self.ready = await self.next_event()
            assert self.ready["type"] == "ready", self.ready
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.ws is not None
        await self.ws.close()

    @property
    def conn(self) -> ClientConnection:
        assert self.ws is not None
        return self.ws

    async def next_event(self, timeout_s: float = 10) -> dict[str, Any]:
        async with asyncio.timeout(within(timeout_s)):
            message = await self.conn.recv()
        assert isinstance(message, str), f"expected an event, got {len(message)} bytes of audio"
        event: dict[str, Any] = json.loads(message)
        return event

    async def send_paced(self, pcm: bytes, frame_bytes: int = FRAME_BYTES) -> None:
        """Send PCM in frames at real-time pace (the upstream's VAD needs it)."""
        start = asyncio.get_running_loop().time()
        for i in range(0, len(pcm), frame_bytes):
            await self.conn.send(pcm[i:i + frame_bytes])
            await at_real_time(start, (i + frame_bytes) / 32_000)

    async def say(self, pcm: bytes, timeout_s: float = 20, *, stop_after_audio: bool = False) -> Turn:
        """Send ``pcm`` at real-time pace while reading the reply, as a live client does."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.send_paced(pcm))
            reply = tg.create_task(self.read_turn(timeout_s, stop_after_audio=stop_after_audio))
        return reply.result()

    async def read_turn(self, timeout_s: float = 15, *, stop_after_audio: bool = False) -> Turn:
        """Read until ``turn_end`` (or an error); optionally send ``stop`` at the first audio."""
        turn = Turn()
        async with asyncio.timeout(within(timeout_s)):
            while turn.end is None:
                message = await self.conn.recv()
                if isinstance(message, bytes):
                    if stop_after_audio and not turn.audio:
                        await self.conn.send(json.dumps({"type": "stop"}))
                    turn.audio += message
                    continue
                event = json.loads(message)
                turn.events.append(event)
                if event["type"] == "text":
                    turn.texts.append(event["content"])
                elif event["type"] in ("turn_end", "error"):
                    turn.end = event
        return turn
