"""The I/O edge to the model server: the seam, and the MiniCPM-o adapter behind it.

Owns: the call order the server needs (``/init_options`` with all five keys, then
``/completions``, then the WebSocket; sections 2, 3, 5.1), one pipelined WebSocket sender whose
acknowledgements are read in order (3.3), the SSE reader that reopens ``/completions`` as soon
as a body closes (5.5), a ``/stop`` that never blocks the caller (section 8), timeouts, and the
translation of every httpx, httpx-sse, websockets and OS error into :mod:`.errors`, chained.
Must not: decide what the client is told, or let a library exception out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
from httpx_sse import EventSource, SSEError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from ...config import ProxyConfig, UpstreamOptions
from ...errors import UpstreamError, UpstreamProtocolError, UpstreamTimeout, UpstreamUnavailable
from ..kind import websocket_tls
from .settings import MiniCPMSettings, upstream_ws_url
from .wire import (
    COMPLETIONS_BODY,
    Ack,
    AudioMessages,
    UpstreamEvent,
    init_options_body,
    make_uid,
    parse_ack,
    parse_reply_data,
    parse_version,
)

__all__ = ["BodyClosed", "MiniCPMTransport", "Transport", "TransportItem"]

logger = logging.getLogger("asgi_audio_proxy.upstream")
#: messages sent but not yet acknowledged; 10 x 200 ms is two seconds of audio in flight
MAX_IN_FLIGHT = 10
#: acknowledgement texts read once per conversation and then known: the server words each
#: outcome the same way every time (its uid in it), so a few cover every ack, and JSON is not
#: parsed again for each of the five a second; the bound keeps odd ones from piling up
_KNOWN_ACKS = 8
_TRANSPORT_ERRORS = (OSError, httpx.TransportError, SSEError, ConnectionClosed, InvalidHandshake)


@dataclass(frozen=True, slots=True)
class BodyClosed:
    """A ``/completions`` body ended (after ``<end>``, a stop, or nothing at all)."""


TransportItem = UpstreamEvent | BodyClosed


class Transport(Protocol):
    """The MiniCPM-o server's calls, as the adapter makes them: the seam tests put a fake behind."""

    version: str

    async def connect(self, options: UpstreamOptions) -> None: ...
    async def set_options(self, options: UpstreamOptions) -> None: ...
    async def send_audio(self, pcm: bytes) -> None: ...
    def acks(self) -> AsyncIterator[tuple[int, Ack]]: ...
    def events(self) -> AsyncIterator[TransportItem]: ...
    def stop(self) -> None: ...
    async def aclose(self) -> None: ...


class MiniCPMTransport:
    """One conversation with a MiniCPM-o model server.

    Args:
        config: the proxy's settings (URL, connect and close timeouts).
        http_client: the proxy's shared client; never closed here.
        log: a session-tagged logger.
        settings: the kind's settings (acknowledgement and reply-stall timeouts); its defaults
            when omitted, with what ``config`` forwards applied over them.
    """

    def __init__(self, config: ProxyConfig, http_client: httpx.AsyncClient,
                 log: logging.LoggerAdapter[logging.Logger] | None = None, *,
                 settings: MiniCPMSettings | None = None) -> None:
        self._config = config
        self._settings = (settings or MiniCPMSettings()).forwarded(config)
        self._http = http_client
        self._log = log or logging.LoggerAdapter(logger, {})
        self.uid = make_uid()
        self._messages = AudioMessages(self.uid)
        self.version = "unknown"
        self._base = config.upstream_url.rstrip("/")
        self._ws: ClientConnection | None = None
        self._body: httpx.Response | None = None
        self._in_flight: asyncio.Queue[int] = asyncio.Queue(MAX_IN_FLIGHT)
        self._stop_task: asyncio.Task[None] | None = None
        self._closed = False

    async def connect(self, options: UpstreamOptions) -> None:
        """Post the options, open the first ``/completions``, then the audio WebSocket.

        Raises:
            UpstreamUnavailable, UpstreamTimeout, UpstreamProtocolError.
        """
        await self.set_options(options)
        self._body = await self._open_completions()
        url = f"{upstream_ws_url(self._config.upstream_url)}/ws/stream?uid={self.uid}"
        async with self._translated("WebSocket connect"):
            self._ws = await connect(url, open_timeout=self._config.connect_timeout_s,
                                     close_timeout=self._config.close_timeout_s,
                                     compression=None, max_size=2**20, ping_interval=None,
                                     ssl=websocket_tls(url))
        self._log.debug("upstream %s ready: version %s, uid %s", self._base, self.version, self.uid)

    async def set_options(self, options: UpstreamOptions) -> None:
        """Post ``/init_options``; options are global on the server, so every session resends them."""
        response = await self._post("/api/v1/init_options", init_options_body(options))
        self.version = parse_version(_json_body(response))

    async def send_audio(self, pcm: bytes) -> None:
        """Send one 200 ms message; waits only while ``MAX_IN_FLIGHT`` are unacknowledged."""
        ws = self._require_ws()
        await self._in_flight.put(len(pcm))
        text = self._messages.message(pcm, int(time.time() * 1000))
        async with self._translated("WebSocket send"):
            await ws.send(text)

    async def acks(self) -> AsyncIterator[tuple[int, Ack]]:
        """Yield ``(pcm_bytes, ack)`` for each message sent, in order.

        Raises:
            UpstreamTimeout: an acknowledgement took longer than ``ack_timeout_s``.
        """
        ws = self._require_ws()
        known: dict[str | bytes, Ack] = {}
        while True:
            nbytes = await self._in_flight.get()
            try:
                async with asyncio.timeout(self._settings.ack_timeout_s):
                    raw = await ws.recv()
            except TimeoutError as exc:
                raise UpstreamTimeout(
                    f"no acknowledgement within {self._settings.ack_timeout_s} s") from exc
            except ConnectionClosed as exc:
                raise _closed_error(exc) from exc
            ack = known.get(raw)
            if ack is None:
                ack = parse_ack(raw)
                if len(known) < _KNOWN_ACKS:
                    known[raw] = ack
            yield nbytes, ack

    async def events(self) -> AsyncIterator[TransportItem]:
        """Yield every reply event, turn after turn, reopening ``/completions`` after each body.

        Raises:
            UpstreamTimeout: a started reply stalled for ``reply_stall_timeout_s``.
        """
        while True:
            body = self._body or await self._open_completions()
            self._body = body
            started = False
            sse = EventSource(body).aiter_sse()
            try:
                while True:
                    try:
                        # before the reply starts the body waits for end of speech: no deadline
                        deadline = self._settings.reply_stall_timeout_s if started else None
                        async with asyncio.timeout(deadline), self._translated("SSE read"):
                            event = await anext(sse)
                    except StopAsyncIteration:
                        break
                    except TimeoutError as exc:
                        raise UpstreamTimeout("the reply stream stalled for "
                                              f"{self._settings.reply_stall_timeout_s} s") from exc
                    started = True
                    if event.data:
                        yield parse_reply_data(event.data)
            finally:
                await sse.aclose()
                await body.aclose()
                self._body = None
            await self._settle_stop()
            self._body = await self._open_completions()  # at once: it lifts the echo guard (5.5)
            yield BodyClosed()

    def stop(self) -> None:
        """Ask the upstream to stop the current reply, without waiting for its answer."""
        if self._stop_task is None or self._stop_task.done():
            self._stop_task = asyncio.create_task(self._post_stop())

    async def aclose(self) -> None:
        """Close the WebSocket and the SSE body, each under ``close_timeout_s``; idempotent."""
        if self._closed:
            return
        self._closed = True
        await self._settle_stop()
        if self._body is not None:
            with contextlib.suppress(*_TRANSPORT_ERRORS, TimeoutError):
                async with asyncio.timeout(self._config.close_timeout_s):
                    await self._body.aclose()
        if self._ws is not None:
            try:
                with contextlib.suppress(*_TRANSPORT_ERRORS):
                    # under close_timeout_s already (given at connect): past it, websockets drops
                    # the connection itself; a deadline of ours here would interrupt that, and a
                    # peer that never answers the close would keep the socket open
                    await self._ws.close()
            finally:
                self._ws.transport.abort()  # interrupted all the same (cancelled), it closes

    async def _post_stop(self) -> None:
        try:
            async with asyncio.timeout(self._config.close_timeout_s):
                await self._post("/api/v1/stop", None)
        except (UpstreamError, TimeoutError) as exc:
            self._log.warning("upstream /stop failed: %s", exc)

    async def _settle_stop(self) -> None:
        # a /stop still queued upstream must land before the next /completions clears its flag
        if self._stop_task is not None:
            await asyncio.shield(self._stop_task)

    async def _open_completions(self) -> httpx.Response:
        request = self._http.build_request(
            "POST", f"{self._base}/api/v1/completions", json=COMPLETIONS_BODY,
            headers=self._headers(), timeout=self._sse_timeout())
        async with self._translated("/completions"):
            response = await self._http.send(request, stream=True)
        if response.status_code != 200:
            await response.aread()
            await response.aclose()
            raise _status_error("/completions", response)
        return response

    async def _post(self, path: str, body: dict[str, Any] | None) -> httpx.Response:
        timeout = httpx.Timeout(self._config.connect_timeout_s)
        async with self._translated(path):
            response = await self._http.post(f"{self._base}{path}", json=body,
                                             headers=self._headers(), timeout=timeout)
        if response.status_code != 200:
            raise _status_error(path, response)
        return response

    def _headers(self) -> dict[str, str]:
        return {"uid": self.uid}

    def _sse_timeout(self) -> httpx.Timeout:
        # no read timeout: the body is silent until the user stops talking; stalls are
        # caught per event in events() once a reply has started
        return httpx.Timeout(connect=self._config.connect_timeout_s, read=None,
                             write=self._config.connect_timeout_s,
                             pool=self._config.connect_timeout_s)

    def _require_ws(self) -> ClientConnection:
        if self._ws is None:
            raise RuntimeError("upstream not connected; call connect() first")
        return self._ws

    @contextlib.asynccontextmanager
    async def _translated(self, what: str) -> AsyncIterator[None]:
        """Map library errors to ours at this one boundary, chained with ``from``."""
        try:
            yield
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout(f"{what}: timed out reaching {self._base}") from exc
        except TimeoutError as exc:  # websockets' open_timeout; a caller's asyncio.timeout is outside
            raise UpstreamTimeout(f"{what}: timed out reaching {self._base}") from exc
        except SSEError as exc:
            raise UpstreamProtocolError(f"{what}: not an event stream: {exc}") from exc
        except ConnectionClosed as exc:
            raise _closed_error(exc) from exc
        except (InvalidHandshake, InvalidURI) as exc:
            raise UpstreamUnavailable(f"{what}: handshake with {self._base} failed: {exc}") from exc
        except (httpx.TransportError, OSError) as exc:
            raise UpstreamUnavailable(
                f"{what}: cannot reach the upstream at {self._base}: {exc!r}") from exc


def _closed_error(exc: ConnectionClosed) -> UpstreamError:
    rcvd = exc.rcvd
    detail = f"code {rcvd.code}, reason {rcvd.reason!r}" if rcvd else "no close frame"
    return UpstreamUnavailable(f"the upstream closed the audio WebSocket ({detail})")


def _status_error(path: str, response: httpx.Response) -> UpstreamError:
    text = response.text[:200]
    if response.status_code >= 500 or response.status_code == 429:
        return UpstreamUnavailable(f"{path} answered {response.status_code}: {text}")
    return UpstreamProtocolError(f"{path} answered {response.status_code}: {text}")


def _json_body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise UpstreamProtocolError(f"non-JSON answer: {response.text[:120]!r}") from exc


