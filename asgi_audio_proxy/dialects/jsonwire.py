"""A dialect's JSON text frames read with ``msgspec`` when it is installed, as ``json`` reads them.

Owns: :func:`loads`, the one parse of each client frame of the Realtime and Twilio dialects.
With the ``speed`` extra installed it is ``msgspec`` (under a microsecond for a 20 ms append,
against six with ``json``: ``python -m benchmarks.codecs``); a frame ``msgspec`` refuses is
read again by ``json``, so what is accepted, what it reads as and the error a bad frame raises
are the standard library's either way (``msgspec`` refuses ``NaN``, ``1e400`` and lone
surrogates, which ``json`` takes). ``orjson``, as fast, is not used: it reads integers past 64
bits as floats where ``json`` keeps them exact. Without the extra it is ``json.loads``.
Must not: write JSON or know any dialect's fields.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

__all__ = ["FAST", "loads"]


def _with_msgspec() -> Callable[[str], Any] | None:
    try:
        import msgspec
    except ImportError:
        return None
    fast = msgspec.json.Decoder().decode

    def loads(text: str) -> Any:
        try:
            return fast(text)
        except ValueError:  # msgspec.DecodeError, or a str that is not UTF-8
            return json.loads(text)

    return loads


_fast = _with_msgspec()
#: whether frames are read by ``msgspec`` (the ``speed`` extra is installed)
FAST = _fast is not None
#: one JSON text as Python values (``json.JSONDecodeError`` when it is not JSON)
loads: Callable[[str], Any] = _fast or json.loads
