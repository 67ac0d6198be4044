"""The voice webhook: TwiML that connects a phone call to the proxy's Twilio stream.

Owns: :class:`TwimlEndpoint`, a plain ASGI HTTP app (mount it in Starlette, FastAPI or any ASGI
router) that answers Twilio's voice webhook with ``<Response><Connect><Stream url="wss://...">``
and its ``<Parameter>`` values, built with the ``twilio`` package's ``VoiceResponse`` (the
optional ``twilio`` extra), and checks ``X-Twilio-Signature`` when given the account's auth token.
Must not: touch the stream itself (the dialect and the session do), or import ``twilio`` before
an endpoint is made (the package works without the extra).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import Receive, Scope, Send

__all__ = ["DEFAULT_STREAM_PATH", "MAX_WEBHOOK_BODY_BYTES", "TwimlEndpoint"]

#: where ``serve`` and ``demo`` put the Twilio stream
DEFAULT_STREAM_PATH = "/twilio"
#: a voice webhook's form is a few dozen short fields: well under 8 KiB
MAX_WEBHOOK_BODY_BYTES = 64 * 1024

#: the webhook's form fields (``CallSid``, ``From``, ``To``...) -> the stream's parameters
ParameterSource = Mapping[str, str] | Callable[[Mapping[str, str]], Mapping[str, str]]


class TwimlEndpoint:
    """Answers Twilio's voice webhook (POST, or GET if the number is set so) with TwiML.

    Args:
        stream_path: the proxy's Twilio stream path on this host; the URL is ``wss://`` + the
            request's ``Host`` + this (Twilio streams only to ``wss://``).
        stream_url: the whole stream URL instead, when the proxy is elsewhere.
        parameters: ``<Parameter>`` values sent to the stream in ``start.customParameters``
            (``assistantPrompt``... become the call's options): a mapping, or a function of the
            webhook's form fields returning one (a prompt per dialled number, say).
        auth_token: the Twilio account's auth token; when given, a request whose
            ``X-Twilio-Signature`` does not match is refused with 403.
        webhook_url: the URL Twilio calls, as configured on the number, for the signature (the
            one seen here differs behind a proxy that terminates TLS); default: rebuilt from the
            request.

    Raises:
        ImportError: the ``twilio`` package is not installed.
    """

    def __init__(self, stream_path: str = DEFAULT_STREAM_PATH, *, stream_url: str | None = None,
                 parameters: ParameterSource | None = None, auth_token: str | None = None,
                 webhook_url: str | None = None) -> None:
        try:
            from twilio.request_validator import (  # type: ignore[import-untyped,import-not-found,unused-ignore]
                RequestValidator,
            )
            from twilio.twiml.voice_response import (  # type: ignore[import-untyped,import-not-found,unused-ignore]
                Connect,
                VoiceResponse,
            )
        except ImportError as exc:
            raise ImportError("TwimlEndpoint builds TwiML with the 'twilio' package, which is not "
                              "installed: pip install 'asgi-audio-proxy[twilio]'") from exc
        if stream_url is not None and not stream_url.startswith("wss://"):
            raise ValueError(f"invalid stream_url={stream_url!r}: Twilio streams only to wss:// URLs")
        if not stream_path.startswith("/"):
            raise ValueError(f"invalid stream_path={stream_path!r}: expected a path starting with /")
        self._connect, self._voice_response = Connect, VoiceResponse
        self._validator = RequestValidator(auth_token) if auth_token else None
        self._stream_path = stream_path
        self._stream_url = stream_url
        self._parameters = parameters
        self._webhook_url = webhook_url

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            raise RuntimeError(f"TwimlEndpoint answers HTTP requests, not {scope['type']!r}")
        if scope["method"] not in ("GET", "POST"):
            await _respond(send, 405, "text/plain", b"Twilio calls a voice webhook with GET or POST",
                           [(b"allow", b"GET, POST")])
            return
        body = await _read_body(receive)
        if body is None:
            await _respond(send, 413, "text/plain", b"a voice webhook's form is a few fields")
            return
        headers = {name.decode("latin-1"): value.decode("latin-1")
                   for name, value in scope["headers"]}
        query = scope.get("query_string", b"").decode("latin-1")
        form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        if self._validator is not None and not self._validator.validate(
                self._webhook_url or _request_url(scope, headers, query), form,
                headers.get("x-twilio-signature", "")):
            await _respond(send, 403, "text/plain", b"X-Twilio-Signature does not match")
            return
        host = headers.get("host")
        if self._stream_url is None and not host:
            await _respond(send, 400, "text/plain", b"no Host header to build the stream URL from")
            return
        fields = {**dict(parse_qsl(query, keep_blank_values=True)), **form}
        twiml = self.twiml(self._stream_url or f"wss://{host}{self._stream_path}", fields)
        await _respond(send, 200, "text/xml", twiml.encode())

    def twiml(self, stream_url: str, fields: Mapping[str, str]) -> str:
        """The TwiML document for one call.

        Args:
            stream_url: the ``wss://`` URL of the proxy's Twilio stream.
            fields: the webhook's form fields, for a ``parameters`` function.
        """
        parameters = self._parameters(fields) if callable(self._parameters) else self._parameters
        response: Any = self._voice_response()
        connect: Any = self._connect()
        stream = connect.stream(url=stream_url)
        for name, value in (parameters or {}).items():
            stream.parameter(name=name, value=value)
        response.append(connect)
        return str(response.to_xml())


async def _read_body(receive: Receive) -> bytes | None:
    """The request body, or ``None`` past :data:`MAX_WEBHOOK_BODY_BYTES`."""
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return bytes(body)
        body += message.get("body", b"")
        if len(body) > MAX_WEBHOOK_BODY_BYTES:
            return None
        if not message.get("more_body", False):
            return bytes(body)


def _request_url(scope: Scope, headers: Mapping[str, str], query: str) -> str:
    scheme = "https" if scope.get("scheme") in ("https", "wss") else "http"
    url = f"{scheme}://{headers.get('host', '')}{scope['path']}"
    return f"{url}?{query}" if query else url


async def _respond(send: Send, status: int, content_type: str, body: bytes,
                   extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = [(b"content-type", content_type.encode()),
               (b"content-length", str(len(body)).encode()), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
