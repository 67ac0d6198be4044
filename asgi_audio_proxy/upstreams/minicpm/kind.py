"""The MiniCPM-o web-demo model server as an :class:`~asgi_audio_proxy.upstreams.kind.UpstreamKind`.

Owns: the kind's facts: one conversation per server (a second uid takes the first one over,
``UPSTREAM_PROTOCOL.md`` sections 1 and 5.1), ``GET /health`` as its probe, never probed while it
holds a conversation (it answers nothing while its model runs), reached over ``http(s)://``.
Must not: hold per-conversation state (the adapter does).
"""

from __future__ import annotations

from ..kind import UpstreamKind, http_probe
from .adapter import minicpm_adapter

__all__ = ["MINICPM", "minicpm_kind"]


def minicpm_kind() -> UpstreamKind:
    """The MiniCPM-o web-demo server (``model_server.py``): the proxy's default kind."""
    return UpstreamKind(name="minicpm", factory=minicpm_adapter, slots=1, probe=http_probe("/health"),
                        probe_while_leased=False)


#: the default kind, made once
MINICPM = minicpm_kind()
