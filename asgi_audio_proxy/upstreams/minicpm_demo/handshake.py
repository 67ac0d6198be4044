"""Which URL reaches a MiniCPM-o-Demo gateway's audio conversations, without I/O.

Owns: the URL forms a gateway is given by and the one ``ws(s)://`` URL each becomes:

    http://gpu-1:8006                         ws://gpu-1:8006/v1/realtime?mode=audio&session_id=<id>
    wss://demo.example/v1/realtime            as given, plus mode=audio and the session id
    ws://gpu-1:8006/v1/realtime?mode=video    refused: this kind speaks audio conversations only

The session id is the proxy session's own (the gateway takes one for its logs and recordings, so
both sides' logs name the same conversation). Also where the gateway's own routes (``/health``)
are: beside ``/v1/realtime``. Must not: open a connection.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

__all__ = ["DEFAULT_PATH", "gateway_base", "gateway_url"]

DEFAULT_PATH = "/v1/realtime"
_SCHEMES = {"ws": "ws", "wss": "wss", "http": "ws", "https": "wss"}
_UNSAFE = re.compile(r"[^A-Za-z0-9_\-]")


def gateway_url(url: str, session_id: str | None = None) -> str:
    """The URL to dial for the gateway at ``url`` (see the module docstring).

    Raises:
        ValueError: not a ``ws``, ``wss``, ``http`` or ``https`` URL with a host, or a ``mode``
            other than ``audio`` in its query.
    """
    parts = urlsplit(url)
    scheme = _SCHEMES.get(parts.scheme.lower())
    if scheme is None or not parts.hostname:
        raise ValueError(f"invalid url={url!r} for a minicpm-demo upstream: expected ws://, wss://, "
                         "http:// or https:// with a host")
    query = parse_qs(parts.query, keep_blank_values=True)
    if query.get("mode", ["audio"]) != ["audio"]:
        raise ValueError(f"invalid url={url!r} for a minicpm-demo upstream: expected mode=audio or no mode")
    extra: dict[str, str] = {}
    if "mode" not in query:
        extra["mode"] = "audio"
    if session_id and "session_id" not in query:
        extra["session_id"] = _UNSAFE.sub("_", session_id)
    added = urlencode(extra)
    full = "&".join(part for part in (parts.query, added) if part)
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") or DEFAULT_PATH, full, ""))


def gateway_base(url: str) -> str:
    """The gateway's base URL (its routes, ``/health`` among them, are below it): ``url`` without
    its query and without a trailing ``/v1/realtime``."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/").removesuffix(DEFAULT_PATH)
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))
