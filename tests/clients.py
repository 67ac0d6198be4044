"""A real ``websockets`` client that talks to the proxy the way a device does.

What the proxy sends is read through the native protocol's client half
(:mod:`asgi_audio_proxy.dialects.native_client`): a frame that is not a message of the protocol
fails the test with :class:`~asgi_audio_proxy.dialects.native_client.BadProxyMessage`.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from asgi_audio_proxy.dialects.native import StopControl
from asgi_audio_proxy.dialects.native_client import (
    AudioMessage,
    ErrorMessage,
    NativeClient,
    ProxyMessage,
    QueuedMessage,
    ReadyMessage,
    TextMessage,
    TurnEndMessage,
    encode_control,
)
from tests.timing import within

__all__ = ["ProxyClient", "Turn", "arrive", "at_real_time", "next_json"]

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


async def next_json(ws: ClientConnection, timeout_s: float = 10) -> dict[str, Any]:
    """The next frame of ``ws``, a text frame of any JSON dialect, as its object (under a deadline)."""
    async with asyncio.timeout(within(timeout_s)):
        frame = await ws.recv()
    assert isinstance(frame, str), f"expected a text frame, got {len(frame)} bytes"
    event = json.loads(frame)
    assert isinstance(event, dict), event
    return event


@dataclass
class Turn:
    """What the client got for one reply: ``ending`` (its ``turn_end``, or an ``error``) and
    ``messages`` (every event, audio left out), as decoded."""

    texts: list[str] = field(default_factory=list)
    audio: bytearray = field(default_factory=bytearray)
    ending: TurnEndMessage | ErrorMessage | None = None
    messages: list[ProxyMessage] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(self.texts)


class ProxyClient:
    """``async with ProxyClient(url) as c``: connects and reads ``ready``; ``c.proxy`` is what
    the connection has received so far (:class:`NativeClient`: ``c.proxy.upstream_version``...).
    Messages come decoded (:meth:`next_message`, :class:`Turn`'s ``ending`` and ``messages``).
    """

    def __init__(self, url: str, *, expect_ready: bool = True) -> None:
        self.url = url
        self.expect_ready = expect_ready
        self.ws: ClientConnection | None = None
        self.proxy = NativeClient()

    async def __aenter__(self) -> ProxyClient:
        self.ws = await connect(self.url, max_size=2**22, open_timeout=within(10))
        if self.expect_ready:
            ready = await self.next_message()
            assert isinstance(ready, ReadyMessage), ready
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.ws is not None
        await self.ws.close()

    @property
    def conn(self) -> ClientConnection:
        assert self.ws is not None
        return self.ws

    async def next_frame(self, timeout_s: float = 10) -> tuple[str | bytes, ProxyMessage]:
        """The next frame and what it says (decoded, and taken in by :attr:`proxy`)."""
        async with asyncio.timeout(within(timeout_s)):
            frame = await self.conn.recv()
        return frame, self.proxy.receive(frame)

    async def next_message(self, timeout_s: float = 10) -> ProxyMessage:
        """The next event (not audio), decoded."""
        frame, message = await self.next_frame(timeout_s)
        assert not isinstance(message, AudioMessage), f"expected an event, got {len(frame)} bytes of audio"
        return message

    async def next_position(self, timeout_s: float = 10) -> int:
        """The next event, which must be ``queued``: the client's place in the queue."""
        message = await self.next_message(timeout_s)
        assert isinstance(message, QueuedMessage), message
        return message.position

    async def queued_then_ready(self, timeout_s: float = 10) -> list[int]:
        """Read queue updates until ``ready``; returns the positions seen."""
        positions = []
        while isinstance(message := await self.next_message(timeout_s), QueuedMessage):
            positions.append(message.position)
        assert isinstance(message, ReadyMessage), message
        return positions

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
            while turn.ending is None:
                _, message = await self.next_frame(timeout_s)
                if isinstance(message, AudioMessage):
                    if stop_after_audio and not turn.audio:
                        await self.conn.send(encode_control(StopControl()))
                    turn.audio += message.pcm
                    continue
                turn.messages.append(message)
                if isinstance(message, TextMessage):
                    turn.texts.append(message.text)
                elif isinstance(message, TurnEndMessage | ErrorMessage):
                    turn.ending = message
        return turn


async def arrive(url: str, timeout_s: float = 10) -> tuple[ProxyClient, ProxyMessage]:
    """Connect and read the first event (``ready`` or ``queued``), so arrival order is fixed.
    The caller leaves with ``await client.__aexit__()``."""
    client = ProxyClient(url, expect_ready=False)
    await client.__aenter__()
    return client, await client.next_message(timeout_s)
