"""vLLM-Omni's full-duplex server (MiniCPM-o 4.5) as an :class:`~..kind.UpstreamKind`.

Owns: the kind's facts: ``duplex_session.max_sessions`` conversations per server (4 in the
MiniCPM-o 4.5 deploy), ``GET /health`` as its probe, at any time (the server answers it while
it holds sessions), reached over ``ws(s)://`` (or ``http(s)://``, which means
``/v1/realtime``). Must not: hold per-conversation state (the adapter does).
"""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import urlsplit, urlunsplit

import httpx

from ..kind import HealthProbe, UpstreamKind
from .adapter import duplex_upstream
from .settings import DuplexSettings, OverlapPolicy

__all__ = ["DEFAULT_SLOTS", "health_probe", "vllm_duplex_kind"]

#: ``duplex_session.max_sessions`` in vLLM-Omni's ``minicpmo_4_5.yaml``
DEFAULT_SLOTS = 4


def health_probe(path: str = "/health") -> HealthProbe:
    """A probe that wants ``200`` from ``GET <origin><path>``: the server's own ``/health``, at
    its origin, whatever path its WebSocket URL names (``ws://host:8099/v1/realtime`` is probed
    at ``http://host:8099/health``)."""

    async def probe(http_client: httpx.AsyncClient, url: str, timeout_s: float) -> str | None:
        parts = urlsplit(url)
        scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
        try:
            response = await http_client.get(urlunsplit((scheme, parts.netloc, path, "", "")),
                                              timeout=timeout_s)
        except httpx.HTTPError as exc:
            return f"{path} failed: {type(exc).__name__}"
        return None if response.status_code == 200 else f"{path} answered {response.status_code}"

    return probe


def vllm_duplex_kind(slots: int = DEFAULT_SLOTS, *, model: str | None = None, ref_audio: bytes | None = None,
                     overlap_policy: OverlapPolicy = "listen_only",
                     heartbeat_interval_s: float | None = 30.0,
                     settings: DuplexSettings | None = None) -> UpstreamKind:
    """vLLM-Omni serving a full-duplex model on ``/v1/realtime?duplex=1``.

    Args:
        slots: sessions one server holds (its ``duplex_session.max_sessions``).
        model: the served model (``openbmb/MiniCPM-o-4_5`` by default).
        ref_audio: the assistant's voice, a WAV file's bytes (a packaged one by default).
        overlap_policy, heartbeat_interval_s: as :class:`.DuplexSettings`.
        settings: every setting at once (then the three above must be left as they are).

    Raises:
        ValueError: a setting out of range, naming it.
    """
    if settings is None:
        settings = DuplexSettings(ref_audio=ref_audio, overlap_policy=overlap_policy,
                                  heartbeat_interval_s=heartbeat_interval_s)
        if model is not None:
            settings = replace(settings, model=model)
    elif model is not None or ref_audio is not None:
        raise ValueError("give either settings or model and ref_audio, not both")
    return UpstreamKind(name="vllm-duplex", factory=duplex_upstream(settings), slots=slots,
                        probe=health_probe(), probe_while_leased=True,
                        schemes=("ws", "wss", "http", "https"), settings=settings)
