"""``VoiceClient``: the original document's facade, ``await client.start_audio_proxy(ws, config)``.

Owns: nothing but the wiring (a config from host and port, the ``http_client`` the document
closes with ``aclose()``). Must not: hold per-connection state; each call is its own session.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from ..config import ProxyConfig
from ..session.session import ProxySession
from ..session.stats import SessionStats
from ..upstreams.minicpm.adapter import new_http_client
from .connection import as_client

__all__ = ["VoiceClient"]


class VoiceClient:
    """Talks to one model server; each :meth:`start_audio_proxy` call proxies one client.

    Args:
        server_host: the model server's host.
        server_port: the model server's port.
        config: further settings; its ``upstream_url`` is replaced by host and port.
    """

    def __init__(self, server_host: str = "127.0.0.1", server_port: int = 32550, *,
                 config: ProxyConfig | None = None) -> None:
        self.server_host = server_host
        self.server_port = server_port
        host = f"[{server_host}]" if ":" in server_host else server_host
        self.config = replace(config or ProxyConfig(), upstream_url=f"http://{host}:{server_port}")
        #: shared by every conversation of this client; close it with ``await http_client.aclose()``
        self.http_client = new_http_client()

    async def start_audio_proxy(self, external_websocket: object,
                                config_data: Mapping[str, Any] | None = None) -> SessionStats:
        """Proxy one client until either side ends the conversation.

        Args:
            external_websocket: a Starlette/FastAPI ``WebSocket`` (accepted or not) or a
                ``websockets`` connection, server or client side.
            config_data: ``assistantPrompt``, ``audioFormat``, ``vadThreshold`` (and
                ``voiceClonePrompt``, ``useAudioPrompt``), as the original document has them.

        Returns:
            What the session did (bytes in and out, replies, close code).
        """
        session = ProxySession(as_client(external_websocket), self.config, self.http_client,
                               config_data=config_data)
        return await session.run()
