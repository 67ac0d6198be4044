"""A ``wss://`` model server: every connection to it is verified, with TLS settings made once per
process (``upstreams/kind.py``'s ``websocket_tls``), not once per session on the event loop."""

from __future__ import annotations

import asyncio
import shutil
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from websockets.asyncio.server import ServerConnection, serve

from asgi_audio_proxy.errors import UpstreamUnavailable
from asgi_audio_proxy.upstreams.kind import websocket_tls
from asgi_audio_proxy.upstreams.realtime import RealtimeSettings
from asgi_audio_proxy.upstreams.realtime.transport import RealtimeTransport
from tests.timing import within


def test_wss_gets_the_one_verifying_context_and_ws_none() -> None:
    first, second = websocket_tls("wss://gpu0:8091/v1/realtime"), websocket_tls("wss://gpu1/v1/realtime")
    assert first is not None and first is second
    assert first.verify_mode == ssl.CERT_REQUIRED and first.check_hostname
    assert websocket_tls("ws://127.0.0.1:8091/v1/realtime") is None


@asynccontextmanager
async def self_signed_server(tmp_path: Path) -> AsyncIterator[int]:
    """A WebSocket server on loopback behind a certificate no CA signed."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed: no certificate to serve")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    made = await asyncio.create_subprocess_exec(
        "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
        "-addext", "subjectAltName=IP:127.0.0.1",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    assert await asyncio.wait_for(made.wait(), within(20)) == 0
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)

    async def handler(ws: ServerConnection) -> None:
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0, ssl=tls) as server:
        yield server.sockets[0].getsockname()[1]


async def test_each_session_to_a_wss_server_is_verified_without_making_new_tls_settings(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[ssl.SSLContext] = []
    create = ssl.create_default_context

    def counted(*args: object, **kwargs: object) -> ssl.SSLContext:
        made.append(create(*args, **kwargs))  # type: ignore[arg-type]
        return made[-1]

    monkeypatch.setattr(ssl, "create_default_context", counted)
    async with self_signed_server(tmp_path) as port:
        for _ in range(3):  # three sessions
            transport = RealtimeTransport(f"wss://127.0.0.1:{port}/v1/realtime", RealtimeSettings())
            with pytest.raises(UpstreamUnavailable, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify"):
                await transport.open()
    assert len(made) <= 1  # the process's one (none if an earlier test made it), not one each
