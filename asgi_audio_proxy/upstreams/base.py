"""The upstream-adapter seam: one object per conversation that speaks to one kind of model server.

Owns: the :class:`UpstreamAdapter` protocol and :data:`UpstreamFactory`. An adapter takes PCM16
mono at its :attr:`~UpstreamAdapter.input_rate_hz` (the session resamples client audio to it,
once) and hands back neutral :mod:`~asgi_audio_proxy.events` (reply started, text, audio at the
rate the server made it, ended; and what became of each byte of audio, for the ledger).
Everything about the server's wire (framing, acknowledgements, echo, end markers, stop
quirks, option names) stays inside the adapter. A server with a queue of its own (the
MiniCPM-o-Demo gateway) may queue a conversation while it connects: such an adapter is also a
:class:`QueueingUpstream`, and says each place it is given through the session's
:data:`QueueReport`. Must not: know the client or its dialect.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol, runtime_checkable

import httpx

from ..config import ProxyConfig, UpstreamOptions
from ..events import UpstreamEvent, UpstreamQueued

__all__ = ["Emit", "QueueReport", "QueueingUpstream", "Reconfigurable", "TurnOwner", "UpstreamAdapter",
           "UpstreamFactory", "takes_options_mid_call"]

#: how an adapter hands an event to its session (called from the adapter's own tasks)
Emit = Callable[[UpstreamEvent], None]
#: how an adapter tells its session, while it connects, that the server queued the conversation
#: (awaited: the client hears of its place before the adapter waits on)
QueueReport = Callable[[UpstreamQueued], Awaitable[None]]


class UpstreamAdapter(Protocol):
    """One conversation with one model server."""

    @property
    def version(self) -> str:
        """The server's version, known once connected (``"2.6"``, ``"4.5"``...)."""
        ...

    @property
    def input_rate_hz(self) -> int:
        """The sample rate of the PCM16 :meth:`send_audio` takes."""
        ...

    async def connect(self, options: UpstreamOptions) -> None:
        """Open the conversation. Raises ``UpstreamError`` subclasses."""
        ...

    async def configure(self, options: UpstreamOptions) -> None:
        """Apply new options: before the first audio, or later when the adapter is
        :class:`Reconfigurable`. Raises ``UpstreamError`` subclasses."""
        ...

    async def send_audio(self, pcm: bytes) -> None:
        """Take client audio; waits while the adapter's bounded buffer is full (back-pressure)."""
        ...

    async def commit(self) -> None:
        """Manual turns: the utterance so far is complete; make the server reply now."""
        ...

    def clear(self) -> int:
        """Manual turns: drop audio not yet sent; returns the bytes dropped."""
        ...

    def stop(self, resend_from_ms: float | None = None) -> bool:
        """Cut the reply being played, at once; returns whether one was playing.

        ``resend_from_ms`` (ms of audio since the conversation started): the client spoke over
        the reply from there; audio the server ignored since then is sent again once it listens,
        so the model hears the interruption whole.
        """
        ...

    async def run(self, emit: Emit) -> None:
        """Move audio and replies until the conversation fails (raises) or is cancelled."""
        ...

    def leftover(self) -> Mapping[str, int]:
        """After the end: audio never accounted for by an outcome, bytes by reason."""
        ...

    async def aclose(self) -> None:
        """Stop a reply still playing and close every connection, under deadlines; idempotent."""
        ...


@runtime_checkable
class QueueingUpstream(Protocol):
    """An adapter whose server may queue the conversation at :meth:`UpstreamAdapter.connect`
    and keep it waiting there, its place held, instead of refusing it as busy."""

    def report_queue(self, report: QueueReport) -> None:
        """Call ``report`` on each place the server gives the conversation while it connects."""
        ...


@runtime_checkable
class TurnOwner(Protocol):
    """An adapter whose model decides the user's turns (a full-duplex server): it emits
    ``SpeechStarted`` and ``SpeechStopped`` itself when :attr:`owns_turns` is true, and the
    session's voice detector then tells the client none of its own."""

    @property
    def owns_turns(self) -> bool: ...


@runtime_checkable
class Reconfigurable(Protocol):
    """An adapter that says whether its server takes new options mid-conversation, after the
    first audio (:attr:`reconfigurable`); an adapter that is not one takes them only before."""

    @property
    def reconfigurable(self) -> bool: ...


def takes_options_mid_call(upstream: UpstreamAdapter) -> bool:
    """Whether ``upstream`` applies a :meth:`~UpstreamAdapter.configure` after the first audio."""
    return isinstance(upstream, Reconfigurable) and upstream.reconfigurable


#: makes a conversation's adapter for the leased server ``url``
UpstreamFactory = Callable[[str, ProxyConfig, httpx.AsyncClient, "logging.LoggerAdapter[logging.Logger]"],
                           UpstreamAdapter]
