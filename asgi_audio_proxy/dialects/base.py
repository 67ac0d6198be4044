"""The client-dialect seam: one object per connection that speaks one wire format.

Owns: the :class:`ClientDialect` protocol and :data:`DialectFactory`. A dialect is sans-I/O (as
``h11`` and ``wsproto`` are): it turns each received frame into neutral
:mod:`~asgi_audio_proxy.events` and each neutral event into the frames its client expects, and
keeps whatever state the format needs (ids, sequence numbers, marks). The session does the
I/O, resamples reply audio to :attr:`ClientDialect.output_rate_hz` before :meth:`send`, and
paces it when :attr:`ClientDialect.playback_lead_ms` is set.
Must not: await, touch a socket, read a clock, or know the upstream.

Errors: :meth:`ClientDialect.receive` raises a :class:`~asgi_audio_proxy.errors.ClientError` for a
frame it cannot take; the session then hands the dialect an
:class:`~asgi_audio_proxy.events.ErrorEvent` to tell its client in its own words, and goes on
unless the error's close code ends the session.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from starlette.types import Scope

from ..config import ProxyConfig
from ..events import ClientEvent, ServerEvent

__all__ = ["ClientDialect", "DialectFactory", "Frame"]

#: one WebSocket message: text (``str``) or binary (``bytes``)
Frame = str | bytes


class ClientDialect(Protocol):
    """One connection's wire format. Made per connection by a :data:`DialectFactory`.

    A dialect may also have a ``wants_speech_cuts`` attribute, read as each piece of audio comes:
    when it is ``True``, speech over a reply cuts it under the proxy's ``barge_in="control"`` too
    (the client asked for it: a Realtime session's ``interrupt_response``). Optional, so dialects
    written before it keep working."""

    @property
    def name(self) -> str:
        """Short name for logs and metrics (``native``, ``realtime``, ``twilio``)."""
        ...

    @property
    def subprotocol(self) -> str | None:
        """The WebSocket subprotocol to accept the connection with (``None``: none)."""
        ...

    @property
    def output_rate_hz(self) -> int:
        """The sample rate reply audio must have when handed to :meth:`send` (it may change
        during a session, e.g. when a client picks another format)."""
        ...

    @property
    def playback_lead_ms(self) -> float | None:
        """Reply audio goes out at most this far ahead of real time (``None``: as it comes);
        a client whose player buffer must stay short (a phone line) sets it, so a stop is
        cheap."""
        ...

    @property
    def wants_speech_events(self) -> bool:
        """The client expects to be told when its user starts and stops speaking (the proxy
        then runs its voice detector even when speech does not cut replies)."""
        ...

    @property
    def binary_pcm_rate_hz(self) -> int | None:
        """Set when every binary frame is bare PCM16 mono at one rate (the native protocol):
        the session then takes binary frames as audio itself, without :meth:`receive`, on its
        hot path (50 frames a second). ``None``: every frame goes to :meth:`receive`."""
        ...

    def receive(self, frame: Frame) -> list[ClientEvent]:
        """Decode one client frame into events (possibly none).

        Raises:
            ClientError: the frame breaks the dialect (bad JSON, unknown type, bad audio...).
        """
        ...

    def send(self, event: ServerEvent) -> list[Frame]:
        """Encode one event into the frames the client expects (possibly none)."""
        ...


#: makes a connection's dialect from its handshake scope (path, headers, query, subprotocols) and
#: the proxy's settings (limits, defaults); may raise ``admission.Denied`` to refuse the handshake
DialectFactory = Callable[[Scope, ProxyConfig], ClientDialect]
