"""The Realtime handshake: which protocol, which subprotocol, which model, which key.

Owns: :func:`realtime_dialect` (the :data:`~asgi_audio_proxy.dialects.base.DialectFactory` for
``/v1/realtime``) and :func:`realtime_api_key`, which reads the key a client presents the way
the official SDKs do, for the proxy's admission hook to check. Must not: check the key itself
(admission does), or touch the connection.

    GET /v1/realtime?model=<m>
    Authorization: Bearer <key>                       server SDKs (openai, openai-agents)
    Sec-WebSocket-Protocol: realtime,                 browsers (@openai/agents), which cannot
        openai-insecure-api-key.<key>[, openai-beta.realtime-v1]     set headers
    OpenAI-Beta: realtime=v1                          the beta protocol (else GA)
    ?resumable=1                                      resume tokens, after a cut (``resume.py``)
    ?resume=<token>                                   a resume
"""

from __future__ import annotations

from urllib.parse import parse_qs

from starlette.types import Scope

from ...config import ProxyConfig
from .dialect import RealtimeDialect
from .resume import RESUMABLE_PARAM, ResumableRealtimeDialect
from .wire import Protocol

__all__ = ["realtime_api_key", "realtime_dialect", "realtime_protocol"]

#: the model name shown in the session when the client names none
DEFAULT_MODEL = "minicpm-o"
_KEY_SUBPROTOCOL = "openai-insecure-api-key."
_BETA_SUBPROTOCOL = "openai-beta.realtime-v1"
#: a model name is echoed back: keep it short and printable
_MAX_MODEL_CHARS = 128


def realtime_dialect(scope: Scope, config: ProxyConfig) -> RealtimeDialect:
    """Make the Realtime dialect for one connection (register it on ``/v1/realtime``).

    Accepts ``?model=`` (shown back in the session), speaks beta when the client asks for it
    (``OpenAI-Beta: realtime=v1`` or the ``openai-beta.realtime-v1`` subprotocol) and GA
    otherwise, and accepts with the ``realtime`` subprotocol only if the client offered it.
    A client that asks for resume tokens (``?resumable=1``) or resumes (``?resume=<token>``)
    gets :class:`~.resume.ResumableRealtimeDialect`; any other sees OpenAI's events only.
    """
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    resumable = query.get(RESUMABLE_PARAM, [""])[0].lower() in ("1", "true") or "resume" in query
    speaks = ResumableRealtimeDialect if resumable else RealtimeDialect
    return speaks(config, protocol=realtime_protocol(scope),
                  subprotocol="realtime" if "realtime" in _subprotocols(scope) else None,
                  model=_model(scope))


def realtime_protocol(scope: Scope) -> Protocol:
    """``beta`` if the handshake asks for the beta protocol, else ``ga``."""
    beta_header = any(value.replace(" ", "").lower() == "realtime=v1"
                      for name, value in _headers(scope) if name == "openai-beta")
    return "beta" if beta_header or _BETA_SUBPROTOCOL in _subprotocols(scope) else "ga"


def realtime_api_key(scope: Scope) -> str | None:
    """The API key a Realtime client presents, or ``None``.

    Read from ``Authorization: Bearer <key>`` or, for browsers, the
    ``openai-insecure-api-key.<key>`` subprotocol. For an admission hook, e.g. a token check::

        def check(scope):
            if realtime_api_key(scope) not in allowed_keys:
                raise Denied(...)
    """
    for name, value in _headers(scope):
        if name == "authorization":
            scheme, _, key = value.strip().partition(" ")
            if scheme.lower() == "bearer" and key.strip():
                return key.strip()
    for protocol in _subprotocols(scope):
        if protocol.startswith(_KEY_SUBPROTOCOL) and len(protocol) > len(_KEY_SUBPROTOCOL):
            return protocol[len(_KEY_SUBPROTOCOL):]
    return None


def _model(scope: Scope) -> str:
    query = scope.get("query_string", b"").decode("latin-1")
    model = parse_qs(query).get("model", [DEFAULT_MODEL])[0]
    return model[:_MAX_MODEL_CHARS] if model.isprintable() and model else DEFAULT_MODEL


def _headers(scope: Scope) -> list[tuple[str, str]]:
    return [(name.decode("latin-1").lower(), value.decode("latin-1"))
            for name, value in scope.get("headers", [])]


def _subprotocols(scope: Scope) -> list[str]:
    return [str(p).strip() for p in scope.get("subprotocols", [])]
