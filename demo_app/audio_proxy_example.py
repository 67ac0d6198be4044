"""The original document's example server: a FastAPI app with the audio proxy at ``/audio_proxy``.

Run it (the model server, or ``asgi-audio-proxy simulate``, on 127.0.0.1:32550)::

    uvicorn demo_app.audio_proxy_example:app --host 0.0.0.0 --port 8001
    python demo_app/audio_proxy_example.py

then talk to it with ``asgi-audio-proxy client --proxy-url ws://localhost:8001/audio_proxy``.
The model server's address comes from ``VOICE_SERVER_HOST`` / ``VOICE_SERVER_PORT`` (an example
may read the environment; the library never does). Needs FastAPI: ``pip install
'asgi-audio-proxy[demo]'``.
"""

from __future__ import annotations

import logging
import os

from fastapi import FastAPI, WebSocket

from asgi_audio_proxy import VoiceClient

__all__ = ["app"]

logger = logging.getLogger("demo_app.audio_proxy_example")

SERVER_HOST = os.environ.get("VOICE_SERVER_HOST", "127.0.0.1")
SERVER_PORT = int(os.environ.get("VOICE_SERVER_PORT", "32550"))

app = FastAPI(title="Audio proxy example")


@app.websocket("/audio_proxy")
async def audio_proxy_endpoint(websocket: WebSocket) -> None:
    """One proxied conversation per connection, as the original document writes it."""
    await websocket.accept()

    voice_client = VoiceClient(server_host=SERVER_HOST, server_port=SERVER_PORT)

    try:
        stats = await voice_client.start_audio_proxy(websocket)
        logger.info("conversation ended: %s", stats)
    finally:
        await voice_client.http_client.aclose()


@app.get("/")
async def index() -> dict[str, str]:
    """Say where the WebSocket is, for anyone who opens the server in a browser."""
    return {"audio_proxy": "ws://<this host>:8001/audio_proxy", "upstream": f"{SERVER_HOST}:{SERVER_PORT}"}


if __name__ == "__main__":
    import uvicorn

    logging.basicConfig(level=logging.INFO)
    uvicorn.run(app, host="0.0.0.0", port=8001)
