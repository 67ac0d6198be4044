"""What a ``POST /v1/realtime/calls`` carries: the SDP offer, and how a bad one is answered.

Owns: reading the offer from its body (``application/sdp``, or OpenAI's unified
``multipart/form-data`` with ``sdp`` and an optional ``session`` JSON), the checks an offer must
pass before a peer connection is made for it (an SDP, an audio section, a data channel section),
the OpenAI-shaped JSON error a refusal becomes, and the advertised address written into an answer
for a server behind NAT. Must not: import aiortc, await, or touch a socket.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["CallRefused", "Offer", "advertise", "error_body", "read_offer"]

#: longest offer taken: a browser's is 3-6 kB, with every codec and candidate
MAX_OFFER_BYTES = 64 * 1024


class CallRefused(Exception):
    """An offer refused before a call is made; becomes a 4xx with an OpenAI-shaped error.

    Args:
        message: the ``error.message``.
        status_code: the HTTP status (400 unless said).
        code: the ``error.code``.
        param: the ``error.param`` (the offending field).
    """

    def __init__(self, message: str, *, status_code: int = 400, code: str = "invalid_offer",
                 param: str | None = "sdp") -> None:
        super().__init__(message)
        self.message, self.status_code, self.code, self.param = message, status_code, code, param


@dataclass(frozen=True, slots=True)
class Offer:
    """A client's offer: its SDP and the ``session`` it asked for (``None``: the default)."""

    sdp: str
    session: dict[str, Any] | None = None


def error_body(message: str, *, error_type: str = "invalid_request_error", code: str | None = None,
               param: str | None = None) -> dict[str, Any]:
    """The JSON body of an error answer, shaped as OpenAI's REST API shapes it."""
    return {"error": {"message": message, "type": error_type, "code": code, "param": param}}


def read_offer(content_type: str, body: bytes, form: dict[str, str] | None = None) -> Offer:
    """Read and check the offer of one request.

    Args:
        content_type: the request's ``Content-Type``.
        body: its body (``application/sdp``).
        form: its fields, already parsed, when it was ``multipart/form-data``.

    Raises:
        CallRefused: not an SDP offer this server can answer (says why).
    """
    media = content_type.split(";")[0].strip().lower()
    session: dict[str, Any] | None = None
    if media == "application/sdp":
        if len(body) > MAX_OFFER_BYTES:
            raise CallRefused(f"The offer is over {MAX_OFFER_BYTES} bytes.", status_code=413)
        sdp = body.decode("utf-8", "replace")
    elif media == "multipart/form-data" and form is not None:
        sdp = form.get("sdp", "")
        if not sdp:
            raise CallRefused("Missing required parameter: 'sdp'.", code="missing_required_parameter")
        session = _session(form.get("session"))
    else:
        raise CallRefused(f"Unsupported Content-Type {media or '(none)'!r}: send the offer as "
                          "application/sdp or multipart/form-data.", status_code=415,
                          code="unsupported_content_type", param=None)
    check_sdp(sdp)
    return Offer(sdp, session)


def _session(raw: str | None) -> dict[str, Any] | None:
    if raw is None or not raw.strip():
        return None
    try:
        session = json.loads(raw)
    except ValueError as exc:
        raise CallRefused(f"Invalid JSON in 'session': {exc}.", code="invalid_json",
                          param="session") from exc
    if not isinstance(session, dict):
        raise CallRefused("'session' must be a JSON object.", param="session")
    return session


def check_sdp(sdp: str) -> None:
    """An offer must be SDP with an audio section (the user's voice) and a data channel.

    Raises:
        CallRefused: what is missing.
    """
    lines = [line.strip() for line in sdp.strip().splitlines()]
    if not lines or lines[0] != "v=0" or not any(line.startswith("o=") for line in lines):
        raise CallRefused("The offer is not an SDP session description (it must start with 'v=0').")
    media = [line.split()[0][2:] for line in lines if line.startswith("m=") and line.split()]
    if "audio" not in media:
        raise CallRefused("The offer has no audio track: add the microphone's track before "
                          "creating the offer.", code="missing_audio")
    if not any(line.startswith("a=fingerprint:") for line in lines):
        raise CallRefused("The offer has no DTLS fingerprint.")


_CANDIDATE = re.compile(r"^(a=candidate:\S+ \d+ udp \d+ )(\S+)( \d+ typ host)(.*)$", re.IGNORECASE)


def advertise(sdp: str, address: str) -> str:
    """An answer whose host candidates name ``address`` (the server's public address behind a
    one-to-one NAT, the same ports forwarded) in place of the interface's own."""
    out = []
    for line in sdp.splitlines():
        match = _CANDIDATE.match(line)
        out.append(f"{match[1]}{address}{match[3]}{match[4]}" if match else line)
        if line.startswith("c=IN IP4 "):
            out[-1] = f"c=IN IP4 {address}"
    return "\r\n".join(out) + "\r\n"
