"""The OpenAI Realtime dialect: existing Realtime apps talk to the proxy by changing a URL.

Register :func:`realtime_dialect` on a path (``/v1/realtime`` is what the SDKs expect after
their base URL), and let an admission hook check :func:`realtime_api_key` if keys matter.
See ``docs/realtime.md`` for the supported events, and for resuming after a cut
(``?resumable=1``).
"""

from __future__ import annotations

from .dialect import RealtimeDialect
from .handshake import realtime_api_key, realtime_dialect, realtime_protocol
from .resume import ResumableRealtimeDialect
from .wire import RealtimeRequestError

__all__ = [
    "RealtimeDialect",
    "RealtimeRequestError",
    "ResumableRealtimeDialect",
    "realtime_api_key",
    "realtime_dialect",
    "realtime_protocol",
]
