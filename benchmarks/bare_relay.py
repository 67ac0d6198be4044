"""Baseline (a): the bare relay, the least any relay to this upstream must do.

Owns: one Starlette WebSocket endpoint that gathers client audio into 200 ms pieces and forwards
each as one raw binary frame to an upstream WebSocket (``/bench/raw`` of the load upstream),
reading and discarding the acknowledgements. No WAV, base64, JSON, SSE or resampling. It sends
the client one ``ready`` text frame, as the proxy does (made once, by the native protocol's own
encoder), so the load generator drives both alike.
Must not: do anything the proxy's uplink could skip.
"""

from __future__ import annotations

import asyncio
import contextlib

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from asgi_audio_proxy.dialects.native import NativeDialect
from asgi_audio_proxy.events import Ready

__all__ = ["bare_relay_app"]

_PIECE_BYTES = 6_400  # 200 ms of 16 kHz PCM16
#: what the proxy says first, word for word (no session behind it, no upstream version)
_READY = NativeDialect(max_text_bytes=0).send(Ready(session_id="bare-relay", upstream_version=""))[0]


def bare_relay_app(upstream_ws_url: str) -> Starlette:
    """The relay as an ASGI app; clients connect to ``/relay``."""

    async def relay(websocket: WebSocket) -> None:
        await websocket.accept()
        async with connect(f"{upstream_ws_url}/bench/raw", compression=None,
                           ping_interval=None) as upstream:
            drain = asyncio.create_task(_discard_acks(upstream))
            await websocket.send_text(str(_READY))
            pending = bytearray()
            try:
                while True:
                    message = await websocket.receive()
                    if message["type"] == "websocket.disconnect":
                        return
                    pending += message.get("bytes") or b""
                    while len(pending) >= _PIECE_BYTES:
                        await upstream.send(bytes(pending[:_PIECE_BYTES]))
                        del pending[:_PIECE_BYTES]
            except (WebSocketDisconnect, ConnectionClosed):
                return
            finally:
                drain.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await drain

    return Starlette(routes=[WebSocketRoute("/relay", relay)])


async def _discard_acks(upstream: ClientConnection) -> None:
    with contextlib.suppress(ConnectionClosed):
        async for _ in upstream:
            pass
