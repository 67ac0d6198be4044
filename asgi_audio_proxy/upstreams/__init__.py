"""Upstream adapters: the seam (:mod:`.base`) and the model servers behind it.
"""

from __future__ import annotations

__all__ = []
