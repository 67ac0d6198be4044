"""Who may open a session: checks run on the handshake, before ``websocket.accept``.

Owns: the Origin allow-list (exact and wildcard entries), the token check
(:class:`TokenAuth`, header or query parameter) and the live-session limits' arithmetic; a refusal
raises :class:`~asgi_audio_proxy.errors.Denied`, which carries the HTTP status and close code.
Must not: send anything (the middleware answers) or log a token.
"""

from __future__ import annotations

import fnmatch
import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs

from starlette.types import Scope

# in the error tree; exported from here too, where admission raises it, so older imports work
from ..errors import Denied

# the post-handshake hook runs in the session; named here too, beside the handshake's own
from ..session.admit import ParameterCheck, admit_parameters

__all__ = [
    "Authenticator",
    "Denied",
    "ParameterCheck",
    "TokenAuth",
    "admit_parameters",
    "authenticate_scope",
    "origin_allowed",
]

#: the hook: returns an identity (anything but ``None``) to admit, or raises :class:`Denied`
Authenticator = Callable[[Scope], object | Awaitable[object]]


def origin_allowed(origin: str | None, allowed: Sequence[str] | None) -> bool:
    """``allowed`` entries are exact origins, wildcards (``https://*.example.com``) or ``*``.

    ``None`` allows everything; a missing Origin (a non-browser client) passes only then or
    with ``*``.
    """
    if allowed is None or "*" in allowed:
        return True
    if origin is None:
        return False
    origin = origin.lower().rstrip("/")
    return any(fnmatch.fnmatchcase(origin, entry.lower().rstrip("/")) for entry in allowed)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


#: the subprotocol a browser's OpenAI Realtime client carries its key in
_KEY_SUBPROTOCOL = "openai-insecure-api-key."


class TokenAuth:
    """Bearer tokens, from the ``Authorization`` header, a query parameter, or the
    ``openai-insecure-api-key.<token>`` WebSocket subprotocol (how browser apps written for the
    OpenAI Realtime API present their key).

    Args:
        tokens: token -> identity (what the session keeps and logs; never the token).
        query_param: query parameter also read (browsers cannot set headers on a WebSocket);
            ``None`` to read the header only.
    """

    def __init__(self, tokens: Mapping[str, object], *, query_param: str | None = "token") -> None:
        self._tokens = dict(tokens)
        self._query_param = query_param

    def __call__(self, scope: Scope) -> object:
        token = None
        header = _header(scope, b"authorization")
        if header and header.lower().startswith("bearer "):
            token = header[7:].strip()
        elif self._query_param:
            values = parse_qs(bytes(scope.get("query_string", b"")).decode("latin-1")).get(
                self._query_param)
            token = values[0] if values else None
        if token is None:
            token = next((p[len(_KEY_SUBPROTOCOL):] for p in scope.get("subprotocols") or ()
                          if p.startswith(_KEY_SUBPROTOCOL) and len(p) > len(_KEY_SUBPROTOCOL)), None)
        if token is None:
            raise Denied(401, "a token is required")
        identity = self._tokens.get(token)
        if identity is None:
            raise Denied(401, "the token is not valid")
        return identity


async def authenticate_scope(scope: Scope, authenticate: Authenticator | None,
                             allowed_origins: Sequence[str] | None) -> object:
    """Run the Origin check and the hook; returns the identity.

    Raises:
        Denied: a foreign Origin (403) or a refusal of the hook (401 unless it says otherwise).
    """
    if not origin_allowed(_header(scope, b"origin"), allowed_origins):
        raise Denied(403, "this Origin is not allowed")
    if authenticate is None:
        return None
    identity: Any = authenticate(scope)
    if inspect.isawaitable(identity):
        identity = await identity
    if identity is None:
        raise Denied(401, "not authenticated")
    return identity
