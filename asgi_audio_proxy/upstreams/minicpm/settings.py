"""The MiniCPM-o kind's own settings: one frozen value per kind, closed over by its factory.

Owns: :class:`MiniCPMSettings`, the tunables only the MiniCPM-o adapter and transport read,
with their named defaults and the server's rules (``UPSTREAM_PROTOCOL.md`` section 5.3: audio
goes in 200 ms messages, released every ``chunk_duration``, a multiple of them), and taking over
the values a ``ProxyConfig`` forwards under the original keywords (``chunk_duration``,
``ack_timeout_s``, ``reply_stall_timeout_s``, ``max_skipped_s``); what neutral conversation
options map to on this kind (the ``/init_options`` body, :func:`.wire.minicpm_options`). Must
not: open sockets, read the environment, or hold a conversation's state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

from ...config import MESSAGE_DURATION_S, ConversationOptions, ProxyConfig
from .wire import minicpm_options

__all__ = ["DEFAULT_CHUNK_DURATION_S", "DOCUMENT_CHUNK_DURATION_S", "MESSAGE_DURATION_S",
           "MiniCPMSettings", "upstream_ws_url"]

#: each 200 ms message goes as soon as it is whole: gathering more only delays the server's VAD
#: (measured: ``python -m benchmarks.chunk``, docs/benchmarks.md)
DEFAULT_CHUNK_DURATION_S = 0.2
#: the original document's buffering (audio waits until 1 s has gathered), kept by ``VoiceClient``
DOCUMENT_CHUNK_DURATION_S = 1.0
#: acks stall while the model prefills or generates (section 3.3); a GPU reply can take seconds
DEFAULT_ACK_TIMEOUT_S = 30.0
#: longest gap between two SSE events once a reply has started
DEFAULT_REPLY_STALL_TIMEOUT_S = 30.0
#: the server acks ``skip`` while it replies; this much skipped audio with no reply is a fault
DEFAULT_MAX_SKIPPED_S = 60.0


@dataclass(frozen=True, kw_only=True)
class MiniCPMSettings:
    """How the proxy talks to a MiniCPM-o web-demo server.

    Attributes:
        chunk_duration: seconds of audio gathered before it goes to the server; a positive
            multiple of 0.2 s. Messages are always 200 ms whatever this is (section 5.3): it
            sets how long audio waits, and how much may go at once after a wait.
        ack_timeout_s: waiting for one acknowledgement of an audio message.
        reply_stall_timeout_s: longest silence of the SSE stream once a reply has started.
        max_skipped_s: audio the server may skip in a row (``skip`` acks) with no reply coming;
            past it the server is taken as stuck (``UpstreamError``, 1011).
    """

    chunk_duration: float = DEFAULT_CHUNK_DURATION_S
    ack_timeout_s: float = DEFAULT_ACK_TIMEOUT_S
    reply_stall_timeout_s: float = DEFAULT_REPLY_STALL_TIMEOUT_S
    max_skipped_s: float = DEFAULT_MAX_SKIPPED_S

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not (isinstance(value, int | float) and not isinstance(value, bool)
                    and 0 < value < math.inf):
                raise ValueError(f"invalid {f.name}={value!r}: expected a positive finite number")
        messages = self.chunk_duration / MESSAGE_DURATION_S
        if not math.isclose(messages, round(messages), abs_tol=1e-6):
            raise ValueError(f"invalid chunk_duration={self.chunk_duration!r}: expected a positive "
                             "multiple of 0.2 seconds")

    @property
    def release_messages(self) -> int:
        """How many 200 ms messages make one ``chunk_duration``."""
        return round(self.chunk_duration / MESSAGE_DURATION_S)

    def map_options(self, conversation: ConversationOptions) -> dict[str, Any]:
        """The ``/init_options`` body neutral options map to (see :func:`.wire.minicpm_options`)."""
        return minicpm_options(conversation)

    def forwarded(self, config: ProxyConfig) -> MiniCPMSettings:
        """These settings with what ``config`` forwards under the original keywords applied
        (a keyword set there wins), checked against the proxy's buffering.

        Raises:
            ValueError: a forwarded value this kind cannot take, or ``config.max_buffered_s``
                shorter than ``chunk_duration`` (names the field).
        """
        forwarded = config.forwarded_settings
        settings = replace(self, **forwarded) if forwarded else self
        if config.max_buffered_s < settings.chunk_duration:
            raise ValueError(f"invalid max_buffered_s={config.max_buffered_s!r}: expected at least "
                             f"chunk_duration ({settings.chunk_duration})")
        return settings


def upstream_ws_url(upstream_url: str) -> str:
    """The server's WebSocket base, ``ws(s)://host:port`` plus any path prefix."""
    scheme = "wss" if upstream_url.startswith("https") else "ws"
    return scheme + upstream_url.rstrip("/")[upstream_url.index(":"):]
