"""One time unit for every test deadline; raise ``TEST_TIME_UNIT`` on a slow machine."""

from __future__ import annotations

import os

__all__ = ["UNIT", "within"]

UNIT = float(os.environ.get("TEST_TIME_UNIT", "1.0"))


def within(seconds: float) -> float:
    """A deadline of ``seconds`` scaled by the unit."""
    return seconds * UNIT
