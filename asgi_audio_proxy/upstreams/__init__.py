"""Upstream adapters: the seam (:mod:`.base`) and the model servers behind it.
"""

from __future__ import annotations

from .base import Emit, QueueingUpstream, QueueReport, UpstreamAdapter, UpstreamFactory
from .kind import HealthProbe, UpstreamKind, http_probe, new_http_client, origin_probe
from .registry import KIND_NAMES, named_kind, realtime_kind

__all__ = [
    "KIND_NAMES",
    "Emit",
    "HealthProbe",
    "QueueReport",
    "QueueingUpstream",
    "UpstreamAdapter",
    "UpstreamFactory",
    "UpstreamKind",
    "http_probe",
    "named_kind",
    "new_http_client",
    "origin_probe",
    "realtime_kind",
]
