"""``UpstreamKind``: one kind of model server, as a value chosen once and passed everywhere.

Owns: what the rest of the proxy needs to know about a kind of server without knowing its wire:
the adapter factory (which closes over the kind's own settings), how many conversations one
server holds at once (``slots``), how to tell that a server is up (its health probe, and whether
it can be probed while it holds a conversation), and which URL schemes it is reached by. The
pool, the session and the edge take an ``UpstreamKind``; only the kind's own subpackage knows its
wire. Must not: import a concrete kind (``minicpm/``, ``realtime/`` import this, not the other
way round).
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit, urlunsplit

import httpx

from ..config import ConversationOptions, ProxyConfig
from .base import UpstreamFactory

__all__ = ["HealthProbe", "OptionsMapping", "UpstreamKind", "http_probe", "new_http_client",
           "origin_probe", "websocket_tls"]

#: ``probe(http_client, url, timeout_s)``: ``None`` when the server at ``url`` is up, else why not
HealthProbe = Callable[[httpx.AsyncClient, str, float], Awaitable[str | None]]

#: idle connections kept for reuse; each live session also holds one open /completions
MAX_KEEPALIVE_CONNECTIONS = 32
#: how long an idle connection is kept for reuse: well under the keep-alive timeout of the servers
#: the model servers run on (uvicorn's and hypercorn's are 5 s, httpx's own expiry too). At equal
#: times a request can go out on a connection the server closes at that moment, and fails with
#: a ``ReadError``: a session starting then ended "cannot reach the upstream"
KEEPALIVE_EXPIRY_S = 2.0


def new_http_client() -> httpx.AsyncClient:
    """The HTTP client a proxy shares between its sessions.

    Its pool has no connection cap: every live session keeps one ``/completions`` stream open
    for its whole life, so httpx's default cap of 100 would make the 101st session wait for a
    connection until its connect timeout. Limit sessions with ``ProxyConfig.max_sessions``. An
    idle connection is not reused after :data:`KEEPALIVE_EXPIRY_S`.
    Proxy settings from the environment are ignored: the upstream is a local GPU server.
    """
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=MAX_KEEPALIVE_CONNECTIONS,
                          keepalive_expiry=KEEPALIVE_EXPIRY_S)
    return httpx.AsyncClient(trust_env=False, limits=limits, verify=_tls_context())


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """httpx's default TLS settings, made once per process and shared by every client made here.

    Making them reads the whole CA bundle: 25 ms of CPU on an idle machine, several times that
    on a busy one, spent on the event loop when a proxy makes its client (at its first session),
    and again for its pool's health checks, while every connection the server holds waits.
    """
    return httpx.create_ssl_context(trust_env=False)


def websocket_tls(url: str) -> ssl.SSLContext | None:
    """The TLS settings for a WebSocket to ``url``: ``None`` for ``ws://``; for ``wss://``, the
    ``websockets`` library's own default (the system's CA store, ``SSL_CERT_FILE`` if set), made
    once per process. Left to the library, each connection made its own: 30 ms of CPU on the
    event loop for every session a ``wss://`` model server took, while every other session's
    audio waited."""
    return _websocket_tls_context() if urlsplit(url).scheme == "wss" else None


@functools.cache
def _websocket_tls_context() -> ssl.SSLContext:
    return ssl.create_default_context()


def http_probe(path: str = "/health") -> HealthProbe:
    """A probe that wants ``200`` from ``GET <url><path>`` (the MiniCPM-o server's ``/health``)."""

    async def probe(http_client: httpx.AsyncClient, url: str, timeout_s: float) -> str | None:
        try:
            response = await http_client.get(_http_url(url) + path, timeout=timeout_s)
        except httpx.HTTPError as exc:
            return f"{path} failed: {type(exc).__name__}"
        return None if response.status_code == 200 else f"{path} answered {response.status_code}"

    return probe


def origin_probe() -> HealthProbe:
    """A probe for servers with no health route of their own: any HTTP answer from the server's
    origin (``GET /``) under 500 says it is up, since a WebSocket server answers plain HTTP with
    404 or 426; no answer, a transport error or a 5xx says it is not."""

    async def probe(http_client: httpx.AsyncClient, url: str, timeout_s: float) -> str | None:
        parts = urlsplit(_http_url(url))
        try:
            response = await http_client.get(urlunsplit((parts.scheme, parts.netloc, "/", "", "")),
                                              timeout=timeout_s)
        except httpx.HTTPError as exc:
            return f"GET / failed: {type(exc).__name__}"
        return None if response.status_code < 500 else f"GET / answered {response.status_code}"

    return probe


def _http_url(url: str) -> str:
    """``ws(s)://`` becomes ``http(s)://``: probes speak plain HTTP to the same host."""
    scheme, rest = url.split("://", 1)
    return {"ws": "http", "wss": "https"}.get(scheme, scheme) + "://" + rest.rstrip("/")


@runtime_checkable
class OptionsMapping(Protocol):
    """Settings that say what a conversation's neutral options become on their kind's wire."""

    def map_options(self, conversation: ConversationOptions) -> dict[str, Any]: ...


@dataclass(frozen=True, kw_only=True)
class UpstreamKind:
    """One kind of model server.

    Attributes:
        name: what operators call it (``minicpm``, ``realtime``); in logs and ``serve --upstream-kind``.
        factory: makes one conversation's adapter for a leased server; it closes over the
            kind's own settings.
        slots: conversations one server holds at once; each lease is one slot.
        probe: tells whether a server is up (see :func:`http_probe`, :func:`origin_probe`).
        probe_while_leased: whether a server may be probed while it holds a conversation; the
            MiniCPM-o server answers nothing, its health route included, while its model runs.
        schemes: the URL schemes its servers are given by.
        settings: the kind's own settings, for display and introspection (the factory has them);
            when they are an :class:`OptionsMapping`, they say how neutral options map onto the
            kind (:meth:`map_options`).
        adopt: makes the kind a ``ProxyConfig`` asks for: its settings with what the config
            forwards under the original keywords (``chunk_duration``...) applied; ``None``: the
            kind takes none of them. See :meth:`configured`.
    """

    name: str
    factory: UpstreamFactory
    slots: int = 1
    probe: HealthProbe = field(default_factory=http_probe)
    probe_while_leased: bool = True
    schemes: tuple[str, ...] = ("http", "https")
    settings: object = None
    adopt: Callable[[UpstreamKind, ProxyConfig], UpstreamKind] | None = None

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("-", "").isalnum():
            raise ValueError(f"invalid name={self.name!r}: expected letters, digits and dashes")
        if type(self.slots) is not int or self.slots < 1:
            raise ValueError(f"invalid slots={self.slots!r}: expected a whole number >= 1")
        if not self.schemes:
            raise ValueError("invalid schemes=(): expected at least one URL scheme")

    def with_slots(self, slots: int | None) -> UpstreamKind:
        """The same kind with ``slots`` per server (``None``: unchanged)."""
        return self if slots is None or slots == self.slots else replace(self, slots=slots)

    def configured(self, config: ProxyConfig) -> UpstreamKind:
        """This kind with what ``config`` forwards to it (``ProxyConfig(chunk_duration=...)``)
        applied, so a bad value is refused now rather than when a conversation opens.

        Raises:
            ValueError: a forwarded value this kind cannot take (names it).
        """
        return self if self.adopt is None else self.adopt(self, config)

    def map_options(self, conversation: ConversationOptions) -> dict[str, Any]:
        """What ``conversation`` becomes on this kind's wire (MiniCPM-o: the ``/init_options``
        body; Realtime: the ``session.update`` fields), as its settings say.

        Raises:
            NotImplementedError: the kind's settings do not say.
        """
        if not isinstance(self.settings, OptionsMapping):
            raise NotImplementedError(f"the {self.name} kind does not say how options map onto it")
        return self.settings.map_options(conversation)

    def check_url(self, url: str) -> str:
        """``url`` without a trailing slash, if this kind is reached by its scheme and it names a
        host; raises ``ValueError`` (naming the kind and the schemes it takes) otherwise."""
        parts = urlsplit(url)
        if parts.scheme not in self.schemes or not parts.hostname:
            raise ValueError(f"invalid url={url!r} for a {self.name} upstream: expected "
                             f"{' or '.join(s + '://' for s in self.schemes)} with a host")
        return url.rstrip("/")
