"""The Realtime client's handshake: which URL to dial and which headers to send, without I/O.

Owns: the URL forms a Realtime server is given by and the one ``ws(s)://`` URL each becomes, with
``?model=``; the ``Authorization`` and ``OpenAI-Beta`` headers. The server half of this handshake
is :mod:`asgi_audio_proxy.dialects.realtime.handshake`. Must not: open a connection.

    ws://host:8000/v1/realtime?duplex=1   as given (its query kept), plus &model=<model>
    http://host:8000                      ws://host:8000/v1/realtime?model=<model>
    https://api.example/v1                wss://api.example/v1/realtime?model=<model>  (an SDK base URL)
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from .settings import RealtimeSettings

__all__ = ["DEFAULT_PATH", "handshake_headers", "websocket_url"]

#: where the OpenAI API and the servers that copy it answer the Realtime protocol
DEFAULT_PATH = "/v1/realtime"
_SCHEMES = {"ws": "ws", "wss": "wss", "http": "ws", "https": "wss"}


def websocket_url(url: str, model: str | None) -> str:
    """The URL to dial for the server at ``url``.

    ``http``/``https`` become ``ws``/``wss``. No path means :data:`DEFAULT_PATH`; a path ending
    in ``/v1`` (the base URL the SDKs take) gets ``/realtime``; any other path is kept. ``model``
    is added as ``?model=`` unless the query already names one; the rest of the query is kept as
    it was written.

    Raises:
        ValueError: not a ``ws``, ``wss``, ``http`` or ``https`` URL with a host.
    """
    parts = urlsplit(url)
    scheme = _SCHEMES.get(parts.scheme.lower())
    if scheme is None or not parts.hostname:
        raise ValueError(f"invalid url={url!r} for a Realtime upstream: expected ws://, wss://, "
                         "http:// or https:// with a host")
    path = parts.path.rstrip("/")
    if not path:
        path = DEFAULT_PATH
    elif path.endswith("/v1"):
        path += "/realtime"
    query = parts.query
    if model is not None and "model" not in parse_qs(query, keep_blank_values=True):
        query = (query + "&" if query else "") + urlencode({"model": model})
    return urlunsplit((scheme, parts.netloc, path, query, ""))


def handshake_headers(settings: RealtimeSettings) -> dict[str, str]:
    """``Authorization: Bearer <key>`` when there is a key; ``OpenAI-Beta: realtime=v1`` for beta."""
    headers: dict[str, str] = {}
    if settings.api_key is not None:
        headers["Authorization"] = f"Bearer {settings.api_key}"
    if settings.beta:
        headers["OpenAI-Beta"] = "realtime=v1"
    return headers
