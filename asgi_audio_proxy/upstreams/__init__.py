"""Upstream adapters: the seam (:mod:`.base`) and the model servers behind it.
"""

from __future__ import annotations

from .base import Emit, UpstreamAdapter, UpstreamFactory

__all__ = [
    "Emit",
    "UpstreamAdapter",
    "UpstreamFactory",
]
