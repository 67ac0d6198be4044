"""The MiniCPM-o transport against a server that stops answering: its sockets still close.

``SilentOnClose`` is a model server written on raw sockets: it answers ``/init_options`` and
opens a ``/completions`` stream as the real one does, accepts the audio WebSocket, and from then
on reads what comes but answers nothing, a close frame included, as a server whose model has
wedged its event loop would. It only watches for the proxy's end of each connection to close.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
from collections.abc import AsyncIterator

from asgi_audio_proxy.config import ProxyConfig
from asgi_audio_proxy.upstreams.minicpm.transport import MiniCPMTransport
from tests.http_clients import http_client
from tests.timing import within

_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455, section 1.3


class SilentOnClose:
    """The server; ``ws_closed`` is set once the proxy's end of the WebSocket has closed."""

    def __init__(self) -> None:
        self.ws_closed = asyncio.Event()
        self._handlers: set[asyncio.Task[None]] = set()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._handlers.add(asyncio.current_task())  # type: ignore[arg-type]
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                lines = head.decode("latin-1").split("\r\n")
                headers = {k.strip().lower(): v.strip()
                           for k, _, v in (line.partition(":") for line in lines[1:])}
                await reader.readexactly(int(headers.get("content-length", "0")))
                path = lines[0].split()[1]
                if path.startswith("/ws/"):
                    await self._silent_websocket(headers["sec-websocket-key"], reader, writer)
                    return
                if path.endswith("/completions"):  # a reply stream that waits for a turn
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                                 b"transfer-encoding: chunked\r\n\r\n")
                    await reader.read()  # until the proxy closes it
                    return
                body = json.dumps({"id": headers.get("uid"), "choices": {
                    "role": "assistant", "content": "2.6", "finish_reason": "done"}}).encode()
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                             b"content-length: %d\r\n\r\n%s" % (len(body), body))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _silent_websocket(self, key: str, reader: asyncio.StreamReader,
                                writer: asyncio.StreamWriter) -> None:
        accept = base64.b64encode(hashlib.sha1(key.encode() + _WS_GUID).digest())
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n"
                     b"connection: upgrade\r\nsec-websocket-accept: %s\r\n\r\n" % accept)
        with contextlib.suppress(ConnectionError):
            while await reader.read(4096):
                pass  # frames, the close among them, read and never answered
        self.ws_closed.set()

    async def aclose(self) -> None:
        for handler in self._handlers:
            handler.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)


@contextlib.asynccontextmanager
async def silent_upstream() -> AsyncIterator[tuple[SilentOnClose, str]]:
    silent = SilentOnClose()
    server = await asyncio.start_server(silent.serve, "127.0.0.1", 0)
    try:
        yield silent, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        await silent.aclose()
        await server.wait_closed()


async def test_the_websocket_closes_though_the_upstream_never_answers_its_close() -> None:
    # websockets gives up on the closing handshake after close_timeout_s and drops the
    # connection itself; nothing may cut that short and leave the socket open
    async with silent_upstream() as (silent, url), http_client(trust_env=False) as http:
        config = ProxyConfig(upstream_url=url, close_timeout_s=0.2)
        transport = MiniCPMTransport(config, http)
        await transport.connect(config.client_options(None))
        await transport.aclose()
        async with asyncio.timeout(within(5)):
            await silent.ws_closed.wait()


class ScriptedAcks(SilentOnClose):
    """The same server, but its audio WebSocket answers each text frame with the next of
    ``acks`` (raw text, as the server words it)."""

    def __init__(self, acks: list[str]) -> None:
        super().__init__()
        self._acks = iter(acks)

    async def _silent_websocket(self, key: str, reader: asyncio.StreamReader,
                                writer: asyncio.StreamWriter) -> None:
        accept = base64.b64encode(hashlib.sha1(key.encode() + _WS_GUID).digest())
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n"
                     b"connection: upgrade\r\nsec-websocket-accept: %s\r\n\r\n" % accept)
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                first, second = await reader.readexactly(2)
                size = second & 0x7F
                if size >= 126:
                    size = int.from_bytes(await reader.readexactly(2 if size == 126 else 8), "big")
                await reader.readexactly(4 + size)  # the client's mask, then the payload
                if first & 0x0F != 1:  # not a text frame: the close
                    return
                ack = next(self._acks).encode()
                writer.write(bytes([0x81, len(ack)]) + ack)  # unmasked text, under 126 bytes


def _ack(reason: str, uid: str = "K3Q9ZT7WBA") -> str:
    return json.dumps({"id": uid, "choices": {"role": "assistant", "content": "success",
                                              "finish_reason": reason}})


async def test_each_acknowledgement_reads_as_its_own_text_says_repeated_or_not() -> None:
    # the same texts again and again (read once, then known), then more distinct ones than are
    # kept, then an error: every one must still read as it says
    script = [_ack("done"), _ack("done"), _ack("skip"), _ack("done"), _ack("skip"),
              *(_ack("done", uid=f"UID{i:07d}") for i in range(10)), _ack("done"),
              json.dumps({"error": "UID changed in stream"})]
    server_side = ScriptedAcks(script)
    server = await asyncio.start_server(server_side.serve, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        async with http_client(trust_env=False) as http:
            config = ProxyConfig(upstream_url=url, close_timeout_s=0.2)
            transport = MiniCPMTransport(config, http)
            await transport.connect(config.client_options(None))
            acks = transport.acks()
            read = []
            async with asyncio.timeout(within(10)):
                for _ in script:
                    await transport.send_audio(bytes(6400))
                    read.append(await anext(acks))
            await acks.aclose()
            await transport.aclose()
    finally:
        server.close()
        await server_side.aclose()
        await server.wait_closed()
    assert [nbytes for nbytes, _ in read] == [6400] * len(script)
    assert [ack.reason for _, ack in read] == [
        "done", "done", "skip", "done", "skip", *["done"] * 11, None]
    assert read[-1][1].error == "UID changed in stream"
