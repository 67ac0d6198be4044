"""Working fakes for the seams a session has: the MiniCPM transport, the client connection and
the leaser.

They behave like tiny peers (queues in, records out), not like mocks: no call assertions.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

from asgi_audio_proxy.config import UpstreamOptions
from asgi_audio_proxy.dialects.native import NativeDialect
from asgi_audio_proxy.edge.connection import ClientGone
from asgi_audio_proxy.errors import AudioProxyError
from asgi_audio_proxy.events import ServerEvent
from asgi_audio_proxy.upstreams.kind import UpstreamKind
from asgi_audio_proxy.upstreams.minicpm.transport import BodyClosed, TransportItem
from asgi_audio_proxy.upstreams.minicpm.wire import Ack, ReplyMessage

__all__ = ["FakeClient", "FakeUpstream", "OpenLeaser", "notify_to"]


class FakeUpstream:
    """Implements the MiniCPM ``Transport`` seam: keeps every chunk, acks by script, replays events.

    Push reply events with :meth:`push`; set ``ack_reason``/``ack_error`` to change the acks;
    ``connect_error`` makes ``connect`` fail, ``connect_hangs`` never return; ``die_with`` ends
    ``events()`` with an error.
    """

    def __init__(self, version: str = "2.6") -> None:
        self.version = version
        self.options: list[UpstreamOptions] = []
        self.chunks: list[bytes] = []
        self.stops = 0
        self.closed = False
        self.ack_reason: str | None = "done"
        self.ack_error: str | None = None
        self.connect_error: AudioProxyError | None = None
        self.connect_hangs = False
        self._acks: asyncio.Queue[tuple[int, Ack]] = asyncio.Queue()
        self._events: asyncio.Queue[TransportItem | BaseException] = asyncio.Queue()
        self.chunk_arrived = asyncio.Event()

    async def connect(self, options: UpstreamOptions) -> None:
        if self.connect_hangs:
            await asyncio.Event().wait()  # never set: an upstream that accepts and says nothing
        if self.connect_error is not None:
            raise self.connect_error
        self.options.append(options)

    async def set_options(self, options: UpstreamOptions) -> None:
        self.options.append(options)

    async def send_audio(self, pcm: bytes) -> None:
        self.chunks.append(pcm)
        self.chunk_arrived.set()
        await self._acks.put((len(pcm), Ack(self.ack_reason, self.ack_error)))

    async def acks(self) -> AsyncIterator[tuple[int, Ack]]:
        while True:
            yield await self._acks.get()

    async def events(self) -> AsyncIterator[TransportItem]:
        while True:
            item = await self._events.get()
            if isinstance(item, BaseException):
                raise item
            yield item

    def push(self, *items: TransportItem | BaseException) -> None:
        for item in items:
            self._events.put_nowait(item)

    def push_reply(self, texts: list[str], audio_b64: str | None, echo_b64: str = "") -> None:
        """A whole reply: echo, one message per text, the end marker, the body's close."""
        self.push(ReplyMessage("assistant:\n", echo_b64 or None, 0))
        for i, text in enumerate(texts):
            self.push(ReplyMessage(text, audio_b64, i + 1))
        self.push(ReplyMessage("\n<end>", None, len(texts) + 1), BodyClosed())

    def stop(self) -> None:
        self.stops += 1

    async def aclose(self) -> None:
        self.closed = True


class FakeClient:
    """Implements ``ClientConnection`` over two queues; records the close."""

    def __init__(self) -> None:
        self.accepted = False
        self.incoming: asyncio.Queue[bytes | str | None] = asyncio.Queue()
        self.outgoing: asyncio.Queue[bytes | str] = asyncio.Queue()
        self.close_code: int | None = None
        self.close_reason = ""
        self.closed = asyncio.Event()

    async def accept(self, subprotocol: str | None = None) -> None:
        self.accepted = True

    async def receive(self) -> bytes | str:
        frame = await self.incoming.get()
        if frame is None:
            raise ClientGone(1000)
        return frame

    async def send(self, message: bytes | str) -> None:
        if self.closed.is_set():
            raise ClientGone(None)
        await self.outgoing.put(message)

    async def close(self, code: int, reason: str = "") -> None:
        self.close_code, self.close_reason = code, reason
        self.closed.set()

    def feed(self, *frames: bytes | str | None) -> None:
        """Frames the client sends; ``None`` is the client leaving."""
        for frame in frames:
            self.incoming.put_nowait(frame)


class OpenLease:
    """A lease on an upstream that holds any number of conversations."""

    def __init__(self, url: str, kind: UpstreamKind | None = None) -> None:
        self.url, self.kind = url, kind
        self.held_frames: list[bytes | str] = []
        self.lost = asyncio.Event()

    async def release(self, *, failed: bool = False, busy: bool = False) -> None:
        return None


class OpenLeaser:
    """Implements the leaser seam for a simulator in ``multi_conversation`` mode: a stand-in for
    a bank of model servers behind one URL, so every session is served at once (load, soak and
    bystander tests). Production entry points always lease through an ``UpstreamPool``."""

    def __init__(self, url: str, kind: UpstreamKind | None = None) -> None:
        self.url, self.kind = url, kind

    async def acquire(self, session_id: str, client: object, notify: object, *,
                      again: bool = False) -> OpenLease:
        return OpenLease(self.url, self.kind)

    async def would_wait(self) -> bool:
        return False

    async def aclose(self) -> None:
        return None


def notify_to(client: FakeClient) -> Callable[[ServerEvent], Awaitable[None]]:
    """A leaser's ``notify`` that sends each event to ``client`` in the native dialect."""
    dialect = NativeDialect(1024)

    async def notify(event: ServerEvent) -> None:
        for frame in dialect.send(event):
            await client.send(frame)

    return notify
