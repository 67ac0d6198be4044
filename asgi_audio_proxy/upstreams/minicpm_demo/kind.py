"""The ``minicpm-demo`` kind: the MiniCPM-o-Demo gateway's audio duplex, as one ``UpstreamKind``.

Owns: :func:`minicpm_demo_kind`. The gateway's ``GET /health`` answers 200 whenever the gateway
runs, its workers busy or not, so it is probed at any time; ``slots`` is how many conversations
the proxy sends it at once: its worker count, as the operator states (a conversation the
gateway queues all the same, its workers busy with clients of its own, waits in the gateway's
queue, and its client hears that place). Must not: know the wire.
"""

from __future__ import annotations

import httpx

from ..kind import HealthProbe, UpstreamKind, http_probe
from .adapter import minicpm_demo_upstream
from .handshake import gateway_base
from .settings import DemoSettings

__all__ = ["gateway_probe", "minicpm_demo_kind"]


def gateway_probe() -> HealthProbe:
    """``GET /health`` beside the gateway's ``/v1/realtime`` (whichever form its URL takes)."""
    health = http_probe("/health")

    async def probe(http_client: httpx.AsyncClient, url: str, timeout_s: float) -> str | None:
        return await health(http_client, gateway_base(url), timeout_s)

    return probe


def minicpm_demo_kind(settings: DemoSettings | None = None, *, slots: int = 1) -> UpstreamKind:
    """A MiniCPM-o-Demo gateway (``gateway.py``) reached at ``/v1/realtime?mode=audio``.

    Args:
        settings: the append size, the reference voices, the timeouts (defaults otherwise).
        slots: conversations one gateway holds at once: its worker count.
    """
    chosen = settings or DemoSettings()
    return UpstreamKind(name="minicpm-demo", factory=minicpm_demo_upstream(chosen), slots=slots,
                        probe=gateway_probe(), probe_while_leased=True,
                        schemes=("http", "https", "ws", "wss"), settings=chosen)
