"""The duplex session's connection: one socket at a time, and ``session.resume`` when it drops.

Owns: :class:`DuplexLink`: the WebSocket (a Realtime kind's
:class:`~asgi_audio_proxy.upstreams.realtime.transport.RealtimeTransport`, dialled at the duplex
URL), what the session is across sockets (its id, its resume token, rotated at each resume,
whether it can be resumed, the last ``server_event_seq`` read), the parse of each event with the
replay after a resume read past (an event whose sequence was already read is dropped), and the
resume itself: a new socket, ``session.resume`` from the last sequence read,
tried again with backoff until ``resume_timeout_s`` while the server cannot be reached. A refusal
(``session_resume_expired``, ``session.resync_required``) ends it at once, as an
``UpstreamSessionLimit`` that says the session could not be resumed: the server answered, so it
is not taken for down.
Must not: decide what to send, or let a library exception out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ...errors import (
    UpstreamError,
    UpstreamProtocolError,
    UpstreamSessionLimit,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from ..realtime.settings import RealtimeSettings
from ..realtime.transport import RealtimeTransport, Transport
from ..realtime.wire import ServerError
from .settings import DuplexSettings
from .wire import (
    DuplexMessage,
    DuplexSession,
    SessionEnded,
    SessionResumed,
    duplex_url,
    parse_duplex_event,
    session_resume,
)

__all__ = ["DuplexLink", "TransportFactory"]

logger = logging.getLogger("asgi_audio_proxy.upstream")
#: the first retry of a resume waits this long, each next one twice as long, at most a second
_FIRST_RETRY_S = 0.05
_MAX_RETRY_S = 1.0

#: makes the connection to a URL (a test puts another behind it)
TransportFactory = Callable[[str], Transport]


class DuplexLink:
    """The connection to one duplex session, across the sockets it takes.

    Args:
        url: the server, as the kind is given it.
        settings: the kind's settings (model, timeouts).
        log: a session-tagged logger.
        transport_factory: makes each socket (a :class:`RealtimeTransport` by default).

    Raises:
        ValueError: ``url`` is not a URL a duplex server is reached by.
    """

    def __init__(self, url: str, settings: DuplexSettings,
                 log: logging.LoggerAdapter[logging.Logger] | None = None, *,
                 transport_factory: TransportFactory | None = None) -> None:
        self._url = duplex_url(url, settings.model)
        self._settings = settings
        self._log = log or logging.LoggerAdapter(logger, {})
        # the model is in the URL already: the socket's settings name none
        socket_settings = RealtimeSettings(connect_timeout_s=settings.connect_timeout_s,
                                           close_timeout_s=settings.close_timeout_s)
        self._make: TransportFactory = transport_factory or (
            lambda to: RealtimeTransport(to, socket_settings, self._log))
        self._transport: Transport | None = None
        self.session_id: str | None = None
        self.resume_token: str | None = None
        self.can_resume = False
        self.last_seq = 0
        self.resumes = 0

    @property
    def is_open(self) -> bool:
        return self._transport is not None

    async def open(self) -> None:
        """Dial the server for a new session. Raises ``UpstreamError`` subclasses."""
        transport = self._make(self._url)
        await transport.open()
        self._transport = transport

    async def send(self, text: str) -> None:
        await self._require().send(text)

    async def receive(self) -> str:
        return await self._require().receive()

    def parse(self, frame: str) -> DuplexMessage | None:
        """What one event means; ``None`` for one already read (a resume's replay)."""
        seq, message = parse_duplex_event(frame)
        if seq is not None:
            if seq <= self.last_seq:
                return None
            self.last_seq = seq
        if isinstance(message, DuplexSession):
            self.session_id = message.session_id or self.session_id
            self.resume_token = message.resume_token or self.resume_token
            self.can_resume = self.can_resume or message.supports_resume
        elif isinstance(message, SessionResumed):
            self.resume_token = message.resume_token or self.resume_token
        return message

    async def resume(self, cause: UpstreamUnavailable) -> None:
        """Re-attach the session on a new socket after ``cause`` dropped the last one.

        Raises:
            UpstreamUnavailable: ``cause``, when the session cannot be resumed (no token, or the
                server does not resume sessions); or it could not be reached in time.
            UpstreamSessionLimit: the server answered, but the session is over (expired, or
                its replay journal cannot bridge the gap): a new conversation may start at once.
            UpstreamProtocolError: the server did not take the session's own resume token.
        """
        old, self._transport = self._transport, None
        if old is not None:
            await old.aclose()
        if not (self.session_id and self.resume_token and self.can_resume):
            raise cause
        self._log.info("upstream socket dropped (%s): resuming session %s from event %d",
                       cause, self.session_id, self.last_seq)
        delay_s = _FIRST_RETRY_S
        failure: UpstreamError = cause
        try:
            async with asyncio.timeout(self._settings.resume_timeout_s):
                while True:
                    try:
                        await self._attach(cause)
                        self.resumes += 1
                        return
                    except (UpstreamUnavailable, UpstreamTimeout) as exc:  # not there yet: again
                        failure = exc
                    await asyncio.sleep(delay_s)
                    delay_s = min(2 * delay_s, _MAX_RETRY_S)
        except TimeoutError:
            raise UpstreamUnavailable(
                f"the upstream socket dropped and session {self.session_id} could not be resumed "
                f"within {self._settings.resume_timeout_s} s: {failure}") from cause

    async def _attach(self, cause: UpstreamUnavailable) -> None:
        transport = self._make(self._url)
        attached = False
        try:
            await transport.open()
            assert self.session_id is not None and self.resume_token is not None
            await transport.send(session_resume(self.session_id, self.resume_token, self.last_seq))
            while not attached:
                message = self._refusal(await transport.receive(), cause)
                if isinstance(message, SessionResumed):
                    self.resume_token = message.resume_token or self.resume_token
                    self._transport, attached = transport, True
                    self._log.info("session %s resumed", self.session_id)
        finally:
            if not attached:
                await transport.aclose()

    def _refusal(self, frame: str, cause: UpstreamUnavailable) -> DuplexMessage:
        _, message = parse_duplex_event(frame)  # no sequence is read before the resume is answered
        said = (f"{message.code or message.type}: {message.message}" if isinstance(message, ServerError)
                else f"{message.type} ({message.reason})" if isinstance(message, SessionEnded) else "")
        if not said:
            return message
        text = f"the upstream socket dropped and session {self.session_id} could not be resumed: {said}"
        if isinstance(message, ServerError) and message.code == "invalid_resume_token":
            raise UpstreamProtocolError(text) from cause
        # the server answered: it is up, and only this conversation is over (not a failure of it)
        raise UpstreamSessionLimit(text) from cause

    def _require(self) -> Transport:
        if self._transport is None:
            raise UpstreamUnavailable("the duplex session has no open socket")
        return self._transport

    async def aclose(self) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            await transport.aclose()
