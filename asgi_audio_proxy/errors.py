"""The exception tree of asgi-audio-proxy, each class carrying the WebSocket close code it ends with.

Owns: every error the proxy raises on purpose. Must not: import httpx or websockets (the upstream
edge translates their exceptions into these, chained with ``from``).

    AudioProxyError                      1011  (base; a bare one means our bug)
    ├── ClientError                      1008  the client broke the protocol or a policy
    │   ├── BadClientPayload             1007  undecodable text frame, wrong JSON shape
    │   ├── MessageTooBig                1009  a frame over max_message_bytes
    │   └── ClientTooSlow                1013  the client does not read its replies
    ├── UpstreamError                    1011  the model server failed
    │   ├── UpstreamUnavailable          1011  could not connect, or the connection dropped
    │   ├── UpstreamTimeout              1011  a wait on the upstream ran out
    │   ├── UpstreamBusy                 1013  the server is full: the session waits its turn again
    │   └── UpstreamProtocolError        1014  the upstream sent something we cannot read
    ├── LeaseStoreUnavailable            1011  the lease store (Redis) failed, not the upstream
    ├── Denied                      1008|1013  a refused handshake: 1008 for 401/403, 1013 for 429/503
    ├── ClientGone                    its own  the client left: the code it closed with, 1006 if none
    ├── SessionLimitExceeded             1013  a server-side limit; try again later
    │   ├── UpstreamSessionLimit         1013  the upstream's own cap on a conversation's length
    │   └── ContextFull                  1013  the model's context is full: start a new conversation
    ├── IdleTimeout                      1000  no audio for ``idle_timeout_s``: a clean end
    └── ServerShutdown                   1001  the ASGI server is going away

``Denied`` and ``ClientGone`` never reach the client as an ``error`` event: a denial is answered
before accept (an HTTP response, or a close where the server cannot send one), and a client that
is gone cannot be told anything. They are here so that every error has a close code and a place.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette import status

__all__ = [
    "AudioProxyError",
    "BadClientPayload",
    "ClientError",
    "ClientGone",
    "ClientTooSlow",
    "ContextFull",
    "Denied",
    "IdleTimeout",
    "LeaseStoreUnavailable",
    "MessageTooBig",
    "ServerShutdown",
    "SessionLimitExceeded",
    "UpstreamBusy",
    "UpstreamError",
    "UpstreamProtocolError",
    "UpstreamSessionLimit",
    "UpstreamTimeout",
    "UpstreamUnavailable",
]


class AudioProxyError(Exception):
    """Base class. ``close_code`` is the WebSocket code a session ends with on this error.

    Args:
        message: what went wrong, in words the receiving party can act on.
        close_code: overrides the class default.
    """

    close_code: int = status.WS_1011_INTERNAL_ERROR
    #: short machine-readable name sent to the client in the ``error`` event
    kind: str = "internal_error"

    def __init__(self, message: str, *, close_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if close_code is not None:
            self.close_code = close_code

    def __str__(self) -> str:
        return f"{self.message} (close code {self.close_code})"


class ClientError(AudioProxyError):
    """The client broke the protocol or a policy."""

    close_code = status.WS_1008_POLICY_VIOLATION
    kind = "policy_violation"


class BadClientPayload(ClientError):
    """A text frame that is not UTF-8 JSON of a known shape."""

    close_code = status.WS_1007_INVALID_FRAME_PAYLOAD_DATA
    kind = "bad_payload"


class MessageTooBig(ClientError):
    """A client frame larger than ``max_message_bytes``."""

    close_code = status.WS_1009_MESSAGE_TOO_BIG
    kind = "message_too_big"


class ClientTooSlow(ClientError):
    """The client does not read its replies fast enough."""

    close_code = status.WS_1013_TRY_AGAIN_LATER
    kind = "client_too_slow"


class UpstreamError(AudioProxyError):
    """The model server failed."""

    close_code = status.WS_1011_INTERNAL_ERROR
    kind = "upstream_error"


class UpstreamUnavailable(UpstreamError):
    """The upstream could not be reached, or dropped the connection."""

    kind = "upstream_unavailable"


class UpstreamTimeout(UpstreamError):
    """A wait on the upstream ran past its configured timeout."""

    kind = "upstream_timeout"


class UpstreamBusy(UpstreamError):
    """The upstream refused a conversation for capacity: HTTP 503 at its handshake, or an
    ``error`` event coded ``resource_exhausted``, ``session_limit_reached`` or
    ``rate_limit_exceeded``.

    The pool takes it as "this server is full for now", not as a failure: the session goes back
    to its place in the queue. It reaches a client (1013) only if the wait runs out.
    """

    close_code = status.WS_1013_TRY_AGAIN_LATER
    kind = "upstream_busy"


class UpstreamProtocolError(UpstreamError):
    """The upstream sent something that does not follow its protocol."""

    close_code = status.WS_1014_BAD_GATEWAY
    kind = "upstream_protocol_error"


class LeaseStoreUnavailable(AudioProxyError):
    """The store that holds the pool's leases and queue (Redis) failed or could not be reached.

    Not an :class:`UpstreamError`: the upstream may be fine, so the session must not mark it
    down, and the client is told who failed. Closes with 1011, not 1013: 1013 is kept for limits,
    where waiting is the remedy by design; a lost store is a fault on our side, like an
    unreachable upstream, and a client told to retry later would only add to the reconnects
    when it comes back.
    """

    kind = "lease_store_unavailable"


class Denied(AudioProxyError):
    """A refused handshake, answered before ``websocket.accept``.

    Args:
        status_code: the HTTP status of the denial response (401, 403, 429, 503).
        message: one line for the client.
        retry_after_s: sent as ``Retry-After`` when given.
    """

    #: the close code used when the server cannot send a denial response
    CLOSE_CODES: Mapping[int, int] = {
        401: status.WS_1008_POLICY_VIOLATION,
        403: status.WS_1008_POLICY_VIOLATION,
        429: status.WS_1013_TRY_AGAIN_LATER,
        503: status.WS_1013_TRY_AGAIN_LATER,
    }
    close_code = status.WS_1008_POLICY_VIOLATION
    kind = "denied"

    def __init__(self, status_code: int, message: str, *, retry_after_s: int | None = None) -> None:
        super().__init__(message, close_code=self.CLOSE_CODES.get(status_code))
        self.status_code = status_code
        self.retry_after_s = retry_after_s

    @property
    def headers(self) -> dict[str, str]:
        """The denial response's extra headers: ``Retry-After`` when there is a retry time."""
        return {} if self.retry_after_s is None else {"Retry-After": str(self.retry_after_s)}

    def __str__(self) -> str:
        return f"{self.status_code}: {self.message}"


class ClientGone(AudioProxyError):
    """The client closed the connection or dropped it.

    Args:
        code: the close code the client sent; ``None`` when it sent none (the connection
            dropped, or it was already closed). ``close_code`` is then 1006, the code that
            stands for "closed without a close frame" and is never sent.
    """

    kind = "client_gone"

    def __init__(self, code: int | None) -> None:
        super().__init__("the client left",
                         close_code=status.WS_1006_ABNORMAL_CLOSURE if code is None else code)
        self.code = code


class SessionLimitExceeded(AudioProxyError):
    """A server-side limit was reached (sessions, session length, queue)."""

    close_code = status.WS_1013_TRY_AGAIN_LATER
    kind = "limit_exceeded"


class UpstreamSessionLimit(SessionLimitExceeded):
    """The upstream ended the conversation at its own cap on a conversation's length (the
    MiniCPM-o-Demo gateway's 600 s). A limit of this conversation, not a failure of the upstream:
    the pool keeps it, and a new conversation may start at once."""

    kind = "upstream_session_limit"


class ContextFull(SessionLimitExceeded):
    """The model's context is full (the MiniCPM-o-Demo gateway's 8192 tokens), so the upstream
    ended the conversation; a new one starts with an empty context."""

    kind = "context_full"


class IdleTimeout(AudioProxyError):
    """No audio arrived for ``idle_timeout_s``; the session ends cleanly."""

    close_code = status.WS_1000_NORMAL_CLOSURE
    kind = "idle_timeout"


class ServerShutdown(AudioProxyError):
    """The ASGI server is shutting down."""

    close_code = status.WS_1001_GOING_AWAY
    kind = "server_shutdown"
