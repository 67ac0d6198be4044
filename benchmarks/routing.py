"""The reply path's compute alone: one 2.6 reply chunk (SSE data line) to client messages.

Owns: timing ``parse_reply_data`` plus ``ReplyRouter.route`` (JSON, base64, WAV, resampling 24 -> 16 kHz)
in this process, CPU time per event, best of three. Must not: do I/O.
"""

from __future__ import annotations

import json
import math
import time

from asgi_audio_proxy.upstreams.minicpm.replies import ReplyRouter
from asgi_audio_proxy.upstreams.minicpm.wire import parse_reply_data

from .load_upstream import _reply_audio_b64

__all__ = ["measure_router"]


def measure_router(*, quick: bool) -> dict[str, float]:
    """CPU milliseconds per reply event (12 800 samples at 24 kHz, ~34 KB of base64)."""
    line = json.dumps({"id": "X", "response_id": 1, "choices": [
        {"role": "assistant", "audio": _reply_audio_b64(), "text": "words", "finish_reason": "processing"}]})
    events = 50 if quick else 300
    best = math.inf
    for _ in range(3):
        router = ReplyRouter()
        router.route(parse_reply_data(line))  # the echo
        started = time.process_time()
        for _ in range(events):
            router.route(parse_reply_data(line))
        best = min(best, time.process_time() - started)
    per_event_ms = best / events * 1000
    return {"cpu_ms_per_event": round(per_event_ms, 3),
            "audio_ms_per_event": round(12_800 / 24_000 * 1000, 1),
            "x_realtime": round(12_800 / 24_000 * 1000 / per_event_ms, 1)}
