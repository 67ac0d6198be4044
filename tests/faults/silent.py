"""A model server that accepts every connection and never answers: what an overloaded or hung
host looks like from the proxy (the TCP handshake is the kernel's; nothing after it comes)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

__all__ = ["silent_upstream"]


@contextlib.asynccontextmanager
async def silent_upstream() -> AsyncIterator[str]:
    """Yields the ``http://127.0.0.1:<port>`` of a server that reads nothing and says nothing."""
    held: list[asyncio.StreamWriter] = []
    never = asyncio.Event()

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        with contextlib.suppress(asyncio.CancelledError):
            await never.wait()  # never set: the peer hears nothing, ever

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        for writer in held:
            writer.transport.abort()
        server.close()
        await server.wait_closed()
