"""Upstream adapters: the seam (:mod:`.base`) and the model servers behind it.
"""

from __future__ import annotations

from .base import Emit, UpstreamAdapter, UpstreamFactory
from .kind import HealthProbe, UpstreamKind, http_probe, new_http_client, origin_probe

__all__ = [
    "Emit",
    "HealthProbe",
    "UpstreamAdapter",
    "UpstreamFactory",
    "UpstreamKind",
    "http_probe",
    "new_http_client",
    "origin_probe",
]
