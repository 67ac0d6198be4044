"""The I/O edge to a Realtime server: one ``websockets`` client connection and its errors.

Owns: the handshake (the URL and headers :mod:`.handshake` makes, under ``connect_timeout_s``),
sending and receiving text events, the close under ``close_timeout_s``, and the translation of
every ``websockets`` and OS error into :mod:`~asgi_audio_proxy.errors`, chained with ``from``:

    HTTP 503 or 429 at the handshake, a close with 1013    UpstreamBusy (try again later)
    the handshake ran past connect_timeout_s                UpstreamTimeout
    refused, reset, any other status, a close               UpstreamUnavailable
    a binary frame, an event over MAX_EVENT_BYTES           UpstreamProtocolError

Must not: parse events, decide what to send, or let a library exception out.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Protocol

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from ...errors import (
    UpstreamBusy,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from ..kind import websocket_tls
from .handshake import handshake_headers, websocket_url
from .settings import RealtimeSettings

__all__ = ["MAX_EVENT_BYTES", "RealtimeTransport", "Transport"]

logger = logging.getLogger("asgi_audio_proxy.upstream")
#: the largest server event read: 8 s of 24 kHz audio in one delta, after base64 (servers send
#: 20 ms to 1 s); a larger one closes the connection
MAX_EVENT_BYTES = 2**20
#: handshake answers that mean "full for now": the pool puts the session back in its queue
_BUSY_STATUSES = frozenset({429, 503})
_TRY_AGAIN_LATER = 1013
_MESSAGE_TOO_BIG = 1009


class Transport(Protocol):
    """A Realtime connection as the adapter uses it: the seam tests put another behind."""

    async def open(self) -> None: ...
    async def send(self, text: str) -> None: ...
    async def receive(self) -> str: ...
    async def aclose(self) -> None: ...


class RealtimeTransport:
    """One WebSocket connection to a Realtime server.

    Args:
        url: the server (see :func:`.handshake.websocket_url` for the forms taken).
        settings: the key, the model, beta or GA, the timeouts.
        log: a session-tagged logger.

    Raises:
        ValueError: ``url`` is not a URL a Realtime server is reached by.
    """

    def __init__(self, url: str, settings: RealtimeSettings,
                 log: logging.LoggerAdapter[logging.Logger] | None = None) -> None:
        self.url = websocket_url(url, settings.model)
        self._settings = settings
        self._log = log or logging.LoggerAdapter(logger, {})
        self._ws: ClientConnection | None = None

    async def open(self) -> None:
        """Make the WebSocket handshake.

        Raises:
            UpstreamBusy, UpstreamTimeout, UpstreamUnavailable.
        """
        async with self._translated("handshake"):
            self._ws = await connect(
                self.url, additional_headers=handshake_headers(self._settings),
                open_timeout=self._settings.connect_timeout_s,
                close_timeout=self._settings.close_timeout_s,
                compression=None,  # base64 PCM barely compresses; deflate would only cost CPU
                max_size=MAX_EVENT_BYTES, ssl=websocket_tls(self.url))
        self._log.debug("upstream %s open", self._safe_url)

    async def send(self, text: str) -> None:
        """Send one client event.

        Raises:
            UpstreamBusy, UpstreamUnavailable, UpstreamProtocolError: the connection is closed.
        """
        ws = self._require_ws()
        async with self._translated("send"):
            await ws.send(text)

    async def receive(self) -> str:
        """The next server event's text.

        Raises:
            UpstreamBusy, UpstreamUnavailable: the connection closed.
            UpstreamProtocolError: a binary frame, or an event too big to read.
        """
        ws = self._require_ws()
        async with self._translated("receive"):
            frame = await ws.recv()
        if isinstance(frame, bytes):
            raise UpstreamProtocolError(f"the upstream sent a binary frame of {len(frame)} bytes; "
                                        "the Realtime protocol has text events only")
        return frame

    async def aclose(self) -> None:
        """Close the connection, under ``close_timeout_s``; idempotent, never raises."""
        ws, self._ws = self._ws, None
        if ws is None:
            return
        with contextlib.suppress(ConnectionClosed, OSError, TimeoutError):
            # websockets gives up on the close handshake after close_timeout itself
            await ws.close()

    @property
    def _safe_url(self) -> str:
        return self.url.split("?", 1)[0]  # some servers take a token in the query: not for logs

    def _require_ws(self) -> ClientConnection:
        if self._ws is None:
            raise RuntimeError("the Realtime upstream is not open; call open() first")
        return self._ws

    @contextlib.asynccontextmanager
    async def _translated(self, what: str) -> AsyncIterator[None]:
        """Map library errors to ours at this one boundary, chained with ``from``."""
        where = self._safe_url
        try:
            yield
        except InvalidStatus as exc:
            status = exc.response.status_code
            body = exc.response.body.decode("utf-8", "replace")[:200] if exc.response.body else ""
            kind = UpstreamBusy if status in _BUSY_STATUSES else UpstreamUnavailable
            raise kind(f"{what}: {where} answered HTTP {status}: {body.strip()}") from exc
        except TimeoutError as exc:  # open_timeout; a caller's own asyncio.timeout is outside
            raise UpstreamTimeout(f"{what}: no answer from {where} within "
                                  f"{self._settings.connect_timeout_s} s") from exc
        except ConnectionClosed as exc:
            raise _closed_error(exc, where) from exc
        except (InvalidHandshake, InvalidURI) as exc:
            raise UpstreamUnavailable(f"{what}: the handshake with {where} failed: {exc}") from exc
        except OSError as exc:
            raise UpstreamUnavailable(f"{what}: cannot reach the upstream at {where}: {exc!r}") from exc


def _closed_error(exc: ConnectionClosed, where: str) -> UpstreamError:
    rcvd, sent = exc.rcvd, exc.sent
    detail = f"code {rcvd.code}, reason {rcvd.reason!r}" if rcvd else "no close frame"
    if sent is not None and sent.code == _MESSAGE_TOO_BIG:
        return UpstreamProtocolError(f"{where} sent an event over {MAX_EVENT_BYTES} bytes")
    if rcvd is not None and rcvd.code == _TRY_AGAIN_LATER:
        return UpstreamBusy(f"{where} closed the conversation: try again later ({detail})")
    return UpstreamUnavailable(f"{where} closed the conversation ({detail})")
