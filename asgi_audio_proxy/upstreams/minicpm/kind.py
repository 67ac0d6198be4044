"""The MiniCPM-o web-demo model server as an :class:`~asgi_audio_proxy.upstreams.kind.UpstreamKind`.

Owns: the kind's facts: one conversation per server (a second uid takes the first one over,
``UPSTREAM_PROTOCOL.md`` sections 1 and 5.1), ``GET /health`` as its probe, never probed while it
holds a conversation (it answers nothing while its model runs), reached over ``http(s)://``; its
:class:`.MiniCPMSettings`, which its factory closes over, and taking over what a ``ProxyConfig``
forwards under the original keywords. Must not: hold per-conversation state (the adapter does).
"""

from __future__ import annotations

from dataclasses import replace

from ...config import ProxyConfig
from ..kind import UpstreamKind, http_probe
from .adapter import minicpm_upstream
from .settings import MiniCPMSettings

__all__ = ["MINICPM", "minicpm_kind"]


def minicpm_kind(settings: MiniCPMSettings | None = None, *, slots: int = 1) -> UpstreamKind:
    """The MiniCPM-o web-demo server (``model_server.py``): the proxy's default kind.

    Args:
        settings: the kind's settings (``chunk_duration`` 0.2 s and the rest by default).
        slots: conversations one server holds; the web-demo server holds one.
    """
    settings = settings or MiniCPMSettings()
    return UpstreamKind(name="minicpm", factory=minicpm_upstream(settings), slots=slots,
                        probe=http_probe("/health"), probe_while_leased=False, settings=settings,
                        adopt=_adopt)


def _adopt(kind: UpstreamKind, config: ProxyConfig) -> UpstreamKind:
    """``kind`` with what ``config`` forwards applied to its settings (checked now, not later)."""
    current = kind.settings if isinstance(kind.settings, MiniCPMSettings) else MiniCPMSettings()
    settings = current.forwarded(config)
    if settings == kind.settings:
        return kind
    return replace(kind, settings=settings, factory=minicpm_upstream(settings))


#: the default kind, made once
MINICPM = minicpm_kind()
