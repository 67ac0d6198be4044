"""Ephemeral keys: ``POST /v1/realtime/client_secrets``, so a browser never holds the real key.

Owns: :class:`EphemeralKeys`, the keys of the moment (``ek_`` and 32 random characters, each
with its identity and its expiry), the admission hook that takes one in place of a real key
(:meth:`EphemeralKeys.accepting`), and the ASGI endpoint that mints one for a client the
proxy's own admission admits, answered as OpenAI's ``client_secrets`` answers. The keys live in
this process: behind several, mint and connect on the same one (or check keys of your own in
your hook). Must not: log a key, or mint one for a client admission refuses.
"""

from __future__ import annotations

import inspect
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from ..dialects.realtime import realtime_api_key
from ..errors import Denied
from .admission import Authenticator, authenticate_scope

__all__ = ["DEFAULT_TTL_S", "EphemeralKeys"]

#: how long a key may be used to connect, unless the request says otherwise (OpenAI's default)
DEFAULT_TTL_S = 600
#: the longest a request may ask for (OpenAI's limit)
MAX_TTL_S = 7200
_PREFIX = "ek_"


class EphemeralKeys:
    """Short-lived keys minted for admitted clients.

    Args:
        authenticate: the proxy's admission hook: who may mint (``None``: anyone).
        allowed_origins: the proxy's Origin allow-list, checked on minting too.
        clock: seconds since the epoch (passed in for tests).
    """

    def __init__(self, authenticate: Authenticator | None = None, *,
                 allowed_origins: Sequence[str] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._authenticate = authenticate
        self._origins = allowed_origins
        self._clock = clock
        self._keys: dict[str, tuple[object, float]] = {}

    def mint(self, identity: object, ttl_s: float = DEFAULT_TTL_S) -> tuple[str, int]:
        """A new key for ``identity``; returns it and when it expires (seconds since the epoch)."""
        now = self._clock()
        self._keys = {k: v for k, v in self._keys.items() if v[1] > now}  # expired ones go
        key = _PREFIX + secrets.token_urlsafe(24)
        expires_at = int(now + ttl_s)
        self._keys[key] = (identity, expires_at)
        return key, expires_at

    def identity(self, key: str | None) -> object | None:
        """The identity a live key was minted for (``None``: not a live key of ours)."""
        entry = self._keys.get(key or "")
        if entry is None or entry[1] <= self._clock():
            return None
        return entry[0]

    def accepting(self, authenticate: Authenticator | None) -> Authenticator:
        """The admission hook to give the proxy: a live ephemeral key admits as whoever minted
        it; anything else goes to ``authenticate`` (refused when there is none)."""
        async def check(scope: Scope) -> object:
            key = realtime_api_key(scope)
            if key is not None and key.startswith(_PREFIX):
                identity = self.identity(key)
                if identity is None:
                    raise Denied(401, "the ephemeral key is not valid or has expired")
                return identity
            if authenticate is None:
                raise Denied(401, "a key is required")
            result: Any = authenticate(scope)
            return await result if inspect.isawaitable(result) else result
        return check

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``POST /v1/realtime/client_secrets``: ``{"expires_after": {"seconds": N}}`` optional."""
        request = Request(scope, receive)
        try:
            identity = await authenticate_scope(scope, self._authenticate, self._origins)
        except Denied as denial:
            await _error(denial.message, denial.status_code, "invalid_api_key")(scope, receive, send)
            return
        ttl: Any = DEFAULT_TTL_S
        body = await request.body()
        if body.strip():
            try:
                ttl = (await request.json()).get("expires_after", {}).get("seconds", DEFAULT_TTL_S)
            except (ValueError, AttributeError):
                await _error("The body must be a JSON object.", 400, "invalid_json")(scope, receive, send)
                return
        if not isinstance(ttl, int) or not 10 <= ttl <= MAX_TTL_S:
            await _error(f"expires_after.seconds must be a whole number from 10 to {MAX_TTL_S}.",
                         400, "invalid_value")(scope, receive, send)
            return
        key, expires_at = self.mint(identity if identity is not None else "anonymous", ttl)
        await JSONResponse({"value": key, "expires_at": expires_at,
                            "session": {"type": "realtime", "object": "realtime.session"}}
                           )(scope, receive, send)


def _error(message: str, status: int, code: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": "invalid_request_error",
                                   "code": code, "param": None}}, status)
