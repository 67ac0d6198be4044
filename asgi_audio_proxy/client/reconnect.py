"""The command-line client's way back into its session after a cut.

Owns: telling a cut (no close frame from the proxy) from a close, and reconnecting with the
session's ``resume_token`` (``?resume=``) until the proxy answers ``resumed`` or refuses, within
:data:`RESUME_WINDOW_S`. Must not: print (the caller says what happened).
"""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from ..dialects.native_client import ErrorMessage, NativeClient, ResumedMessage

__all__ = ["RESUME_WINDOW_S", "ResumeRefused", "is_cut", "reconnect", "with_query"]

#: how long to keep trying to reach the proxy after a cut (its grace is 30 s by default), and
#: the pause between tries
RESUME_WINDOW_S, RESUME_RETRY_S = 15.0, 0.25
_ANSWER_TIMEOUT_S = 15.0


class ResumeRefused(Exception):
    """The proxy refused the resume, or could not be reached in time."""


def is_cut(exc: ConnectionClosed) -> bool:
    """The connection ended without a close frame from the proxy (a network gone)."""
    return exc.rcvd is None


def with_query(url: str, **params: str) -> str:
    """``url`` with ``params`` set in its query (others kept)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in params] + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


async def reconnect(url: str, proxy: NativeClient) -> tuple[ClientConnection, ResumedMessage]:
    """Resume ``proxy``'s session at ``url``; ``proxy`` takes in the answer (its next token).

    Raises:
        ResumeRefused: no token, a refusal (``resume_failed``), or no proxy within the window.
    """
    if proxy.resume_token is None:
        raise ResumeRefused("the proxy gave no resume token")
    target = with_query(url, resume=proxy.resume_token)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + RESUME_WINDOW_S
    while True:
        try:
            ws = await connect(target, open_timeout=_ANSWER_TIMEOUT_S, max_size=2**20)
            break
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            if loop.time() > deadline:
                raise ResumeRefused(f"no proxy within {RESUME_WINDOW_S:g} s: {exc}") from exc
            await asyncio.sleep(RESUME_RETRY_S)  # a retry's pause, not a synchronisation
    try:
        async with asyncio.timeout(_ANSWER_TIMEOUT_S):
            answer = proxy.receive(await ws.recv())
    except (ConnectionClosed, TimeoutError) as exc:
        raise ResumeRefused(f"no answer to the resume: {exc!r}") from exc
    if isinstance(answer, ResumedMessage):
        return ws, answer
    await ws.close()
    if isinstance(answer, ErrorMessage):
        raise ResumeRefused(f"{answer.kind} (close code {answer.code}): {answer.message}")
    raise ResumeRefused(f"the proxy answered {answer!r}")
