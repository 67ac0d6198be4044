"""Mounting: the bare app, the middleware's pass-through, FastAPI and Starlette, VoiceClient."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.websockets import WebSocket  # FastAPI's own WebSocket
from websockets.asyncio.client import connect

from asgi_audio_proxy import AudioProxy, AudioProxyMiddleware, ProxyConfig, VoiceClient
from asgi_audio_proxy.dialects.native_client import ErrorMessage, TurnEndMessage, decode_message
from tests.clients import ProxyClient
from tests.conftest import Upstream
from tests.http_clients import http_client
from tests.servers import serve
from tests.signals import dominant_frequency_hz, silence, tone

if TYPE_CHECKING:
    from fastapi import FastAPI


def fastapi_app() -> FastAPI:
    """A FastAPI app; fastapi is imported here, not when the tests are collected (0.4 s a worker)."""
    from fastapi import FastAPI

    return FastAPI()


UTTERANCE = tone(440, 1.0) + silence(1.4)


async def echo_ws(websocket: Any) -> None:
    await websocket.accept()
    await websocket.send_text("echo:" + await websocket.receive_text())
    await websocket.close()


async def test_plain_http_gets_426(upstream: Upstream) -> None:
    proxy = AudioProxy(ProxyConfig(upstream_url=upstream.url))
    async with serve("uvicorn", proxy) as port, http_client() as http:
        response = await http.get(f"http://127.0.0.1:{port}/anything")
    assert response.status_code == 426
    assert response.headers["upgrade"] == "websocket"
    assert response.text.count("\n") == 1


async def test_middleware_passes_everything_else_through(server: str, upstream: Upstream) -> None:
    app = fastapi_app()

    @app.get("/hello")
    async def hello() -> dict[str, str]:
        return {"hello": "world"}

    @app.websocket("/other")
    async def other(websocket: WebSocket) -> None:
        await echo_ws(websocket)

    app.add_middleware(AudioProxyMiddleware, path="/audio_proxy",
                       config=ProxyConfig(upstream_url=upstream.url, chunk_duration=0.2))
    async with serve(server, app) as port:
        async with http_client() as http:
            response = await http.get(f"http://127.0.0.1:{port}/hello")
            assert response.json() == {"hello": "world"}
            assert (await http.get(f"http://127.0.0.1:{port}/audio_proxy")).status_code == 404
        async with connect(f"ws://127.0.0.1:{port}/other") as ws:
            await ws.send("hi")
            assert await ws.recv() == "echo:hi"
        async with ProxyClient(f"ws://127.0.0.1:{port}/audio_proxy") as client:
            turn = await client.say(UTTERANCE)
    assert dominant_frequency_hz(bytes(turn.audio)) == pytest.approx(440, abs=5)


async def test_middleware_honours_root_path(upstream: Upstream) -> None:
    inner = Starlette(routes=[Route("/x", lambda request: PlainTextResponse("x"))])
    app = AudioProxyMiddleware(inner, path="/audio_proxy",
                               config=ProxyConfig(upstream_url=upstream.url))
    # as behind a reverse proxy that strips /prefix: uvicorn puts it back in scope["path"]
    async with serve("uvicorn", app, root_path="/prefix") as port, \
            ProxyClient(f"ws://127.0.0.1:{port}/audio_proxy") as client:
        assert client.proxy.is_ready


@pytest.mark.parametrize("framework", ["fastapi", "starlette"])
async def test_mount_under_a_path(framework: str, upstream: Upstream) -> None:
    proxy = AudioProxy(ProxyConfig(upstream_url=upstream.url))
    if framework == "fastapi":
        app: Any = fastapi_app()
        app.mount("/audio_proxy", proxy)
    else:
        app = Starlette(routes=[Mount("/audio_proxy", app=proxy),
                                WebSocketRoute("/other", echo_ws)])
    async with serve("uvicorn", app) as port, \
            ProxyClient(f"ws://127.0.0.1:{port}/audio_proxy/") as client:
        assert client.proxy.upstream_version == "2.6"
    await proxy.aclose()


async def test_route_recipe_serves_the_bare_path(upstream: Upstream) -> None:
    proxy = AudioProxy(ProxyConfig(upstream_url=upstream.url))

    async def audio_proxy(websocket: Any) -> None:
        await proxy.handle(websocket)

    app = Starlette(routes=[WebSocketRoute("/audio_proxy", audio_proxy)])
    async with serve("uvicorn", app) as port, \
            ProxyClient(f"ws://127.0.0.1:{port}/audio_proxy") as client:
        assert client.proxy.is_ready
    await proxy.aclose()


async def test_voice_client_as_the_original_documents_fastapi_example(upstream: Upstream) -> None:
    port_of_upstream = int(upstream.url.rsplit(":", 1)[1])
    app = fastapi_app()

    @app.websocket("/audio_proxy")
    async def audio_proxy_endpoint(websocket: WebSocket) -> None:
        await websocket.accept()
        voice_client = VoiceClient(server_port=port_of_upstream)  # the document's, bar the port
        try:
            await voice_client.start_audio_proxy(websocket, {
                "assistantPrompt": "You are a helpful AI assistant.",
                "audioFormat": "wav",
                "vadThreshold": 0.5,
            })
        finally:
            await voice_client.http_client.aclose()

    async with serve("uvicorn", app) as port, \
            ProxyClient(f"ws://127.0.0.1:{port}/audio_proxy") as client:
        turn = await client.say(UTTERANCE)
    assert dominant_frequency_hz(bytes(turn.audio)) == pytest.approx(440, abs=5)
    options = upstream.sim.recorder.options[-1]
    assert options["vad_threshold"] == 0.5
    assert options["assistant_prompt"] == "You are a helpful AI assistant."


async def test_voice_client_over_a_websockets_server_connection(upstream: Upstream) -> None:
    from websockets.asyncio.server import serve as ws_serve

    port_of_upstream = int(upstream.url.rsplit(":", 1)[1])
    voice_client = VoiceClient("127.0.0.1", port_of_upstream)

    async def handler(connection: Any) -> None:
        await voice_client.start_audio_proxy(connection)

    async with ws_serve(handler, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        async with ProxyClient(f"ws://127.0.0.1:{port}") as client:
            turn = await client.say(UTTERANCE)
    await voice_client.http_client.aclose()
    assert turn.ending == TurnEndMessage("complete")


async def test_bad_config_data_is_refused_with_1008(upstream: Upstream) -> None:
    port_of_upstream = int(upstream.url.rsplit(":", 1)[1])
    voice_client = VoiceClient("127.0.0.1", port_of_upstream)

    async def endpoint(websocket: Any) -> None:
        await voice_client.start_audio_proxy(websocket, {"vadThreshold": 7})

    app = Starlette(routes=[WebSocketRoute("/audio_proxy", endpoint)])
    async with serve("uvicorn", app) as port, connect(f"ws://127.0.0.1:{port}/audio_proxy") as ws:
        event = decode_message(await ws.recv())
    await voice_client.http_client.aclose()
    assert isinstance(event, ErrorMessage) and event.code == 1008 and "vad_threshold" in event.message


def test_middleware_path_must_be_absolute() -> None:
    with pytest.raises(ValueError, match="path"):
        AudioProxyMiddleware(Starlette(), path="audio_proxy")
