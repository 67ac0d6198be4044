"""WebRTC calls: browsers (``@openai/agents``' WebRTC transport) on ``POST /v1/realtime/calls``.

A call's ``oai-events`` data channel carries the Realtime events, spoken by the same dialect as
``/v1/realtime``; its audio is Opus both ways. The HTTP endpoint is
:class:`asgi_audio_proxy.edge.calls.RealtimeCalls`. Needs the ``webrtc`` extra
(``pip install 'asgi-audio-proxy[webrtc]'``); see ``docs/webrtc.md``.
"""

from __future__ import annotations

try:
    import aiortc  # noqa: F401
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the install
    raise ImportError("WebRTC calls need the webrtc extra: "
                      "pip install 'asgi-audio-proxy[webrtc]'") from exc

from .call import EVENTS_CHANNEL, CallTimeouts, WebRTCCall
from .dialect import WebRTCDialect
from .offer import CallRefused, Offer, advertise, error_body, read_offer
from .playout import Playout

__all__ = ["EVENTS_CHANNEL", "CallRefused", "CallTimeouts", "Offer", "Playout", "WebRTCCall", "WebRTCDialect",
           "advertise", "error_body", "read_offer"]
