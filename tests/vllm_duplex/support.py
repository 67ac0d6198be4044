"""The proxy in front of the vLLM-Omni duplex simulator: ``async with duplex_proxy() as d``.

The simulator on a loopback port, and an ``AudioProxyMiddleware`` of the ``vllm-duplex`` kind in
front of it (native on ``/audio_proxy``, Realtime on ``/v1/realtime``, Twilio on ``/twilio``),
with its own pool made from its config, as ``serve --upstream-kind vllm-duplex --slots N`` makes
it. ``d.sim`` is the simulator (its recorder, its faults), ``d.ended`` the sessions' stats.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from asgi_audio_proxy.config import ProxyConfig
from asgi_audio_proxy.dialects.realtime import realtime_dialect
from asgi_audio_proxy.dialects.twilio import twilio_dialect
from asgi_audio_proxy.edge.middleware import AudioProxyMiddleware
from asgi_audio_proxy.simulator.vllm_duplex import DuplexSimulator
from asgi_audio_proxy.upstreams.vllm_duplex import vllm_duplex_kind
from tests.dialects.test_realtime_sdk import not_found
from tests.servers import serve_uvicorn
from tests.test_dialect_seam import Ended

from .peer import running_duplex_simulator

__all__ = ["DuplexProxy", "duplex_proxy"]


@dataclass
class DuplexProxy:
    sim: DuplexSimulator
    port: int
    ended: Ended = field(default_factory=Ended)

    def url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    @property
    def session_ids(self) -> list[str]:
        return self.sim.recorder.opened


@contextlib.asynccontextmanager
async def duplex_proxy(*, sim: dict[str, Any] | None = None, slots: int = 4,
                       kind: dict[str, Any] | None = None, **config: Any) -> AsyncIterator[DuplexProxy]:
    async with running_duplex_simulator(**(sim or {})) as up:
        ended = Ended()
        middleware = AudioProxyMiddleware(
            not_found, config=ProxyConfig(upstream_url=f"ws://127.0.0.1:{up.port}/v1/realtime", **config),
            dialects={"/v1/realtime": realtime_dialect, "/twilio": twilio_dialect},
            on_session_end=ended, kind=vllm_duplex_kind(slots, **(kind or {})))
        try:
            async with serve_uvicorn(middleware) as port:
                yield DuplexProxy(up.sim, port, ended)
        finally:
            await middleware.proxy.aclose()
