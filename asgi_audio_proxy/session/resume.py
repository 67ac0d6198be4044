"""Resuming a conversation after a dropped network: the pure parts.

Owns: :class:`ResumeTokens` (who may take a held session back: one opaque token per session, a
new one after every resume, bound to the origin and identity that opened it, looked up by its
SHA-256 so the lookup takes the same time whether a token exists or not),
:class:`ReplyBuffer` (what was meant for the client while it was away, bounded to
:data:`MAX_AWAY_AUDIO_S` of audio), :class:`SentWindow` (what was last sent, for a client
that says which event it got last), and :func:`resumable` (which ends of a connection leave the
session held). Must not: await, touch a socket, or read a clock (times are passed in).
"""

from __future__ import annotations

import hashlib
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from starlette import status

__all__ = ["MAX_AWAY_AUDIO_S", "RESUME_FAILED", "Claim", "ReplyBuffer", "ResumeTokens", "SentWindow",
           "resumable"]

#: reply audio kept for a client that is away; past it, reply audio is dropped (and counted)
MAX_AWAY_AUDIO_S = 10.0
#: the ``error`` kind of a refused resume (then close 1008)
RESUME_FAILED = "resume_failed"
#: events (text frames) kept for a client that is away: a bound on memory, far above a turn's
_MAX_AWAY_EVENTS = 2000
_TOKEN_BYTES = 24

H = TypeVar("H")


#: the ends that may be a cut: 1006 (no close frame), and 1005, which uvicorn reports both for
#: a close frame without a code and for a connection lost after the handshake (a client that
#: means to end its session closes with a code, as browsers' ``close(1000)`` and ``websockets``'
#: ``close()`` do)
_CUT_CODES = frozenset({status.WS_1005_NO_STATUS_RCVD, status.WS_1006_ABNORMAL_CLOSURE})


def resumable(code: int | None) -> bool:
    """Whether a connection that ended with ``code`` may come back: it was cut (or a send failed
    without a code), not closed by the client with a code."""
    return code is None or code in _CUT_CODES


def _key(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "replace")).digest()


@dataclass(frozen=True, slots=True)
class _Entry(Generic[H]):
    holder: H
    origin: str | None
    identity: object


@dataclass(frozen=True, slots=True)
class Claim(Generic[H]):
    """The answer to a resume: the holder of the session, or why not (``holder`` is None)."""

    holder: H | None
    reason: str = ""


class ResumeTokens(Generic[H]):
    """The live resume tokens of one process, each naming the holder of one session.

    A holder has at most one live token: :meth:`issue` replaces the one it had, so a token
    works once (the resumed connection gets the next one). Each token starts with
    ``replica`` and a dot, so a process that gets another's token can say where the session is.

    Args:
        replica: this process's name among those behind one address (letters, digits, ``-``,
            ``_``), or empty.
    """

    def __init__(self, replica: str = "") -> None:
        if not all(c.isalnum() or c in "-_" for c in replica):
            raise ValueError(f"a replica name is letters, digits, '-' and '_'; got {replica!r}")
        self.replica = replica
        self._by_key: dict[bytes, _Entry[H]] = {}
        self._key_of: dict[int, bytes] = {}  # id(holder) -> its live token's key

    def __len__(self) -> int:
        return len(self._by_key)

    def issue(self, holder: H, origin: str | None, identity: object) -> str:
        """A new token for ``holder``, bound to ``origin`` and ``identity``; its old one goes."""
        self.withdraw(holder)
        token = f"{self.replica}.{secrets.token_urlsafe(_TOKEN_BYTES)}"
        key = _key(token)
        self._by_key[key] = _Entry(holder, origin, identity)
        self._key_of[id(holder)] = key
        return token

    def withdraw(self, holder: H) -> None:
        """``holder``'s token stops working (the session ended, or a new token replaces it)."""
        key = self._key_of.pop(id(holder), None)
        if key is not None:
            self._by_key.pop(key, None)

    def claim(self, token: str, origin: str | None, identity: object) -> Claim[H]:
        """Who holds the session ``token`` names, if the claimant may take it back.

        A wrong, used or expired token, or one issued to another origin or identity, is
        refused; the token stays the holder's either way (only :meth:`issue` replaces it).
        """
        entry = self._by_key.get(_key(token))
        if entry is None:
            replica = token.partition(".")[0] if "." in token else ""
            if replica and replica != self.replica:
                return Claim(None, f"the session is held by replica {replica}, not this one "
                                   f"({self.replica}): the load balancer must send a resume "
                                   "where the session was")
            return Claim(None, "the token is unknown, used or expired")
        if entry.origin != origin or entry.identity != identity:
            return Claim(None, "the token was issued to another origin or identity")
        return Claim(entry.holder)


class ReplyBuffer:
    """Frames meant for a client that is away, oldest first, bounded.

    Binary frames are audio and count against ``max_audio_bytes``; a text frame counts as
    audio by ``text_audio_ratio`` of its length (a dialect whose audio is base64 in JSON says
    0.75; one whose text frames are small events says 0). What would go over the bound is
    dropped and counted in :attr:`dropped_bytes`.
    """

    def __init__(self, max_audio_bytes: int, text_audio_ratio: float = 0.0) -> None:
        self.max_audio_bytes = max_audio_bytes
        self._ratio = text_audio_ratio
        self._frames: deque[bytes | str] = deque()
        self._audio = 0
        self._events = 0
        self.dropped_bytes = 0

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def audio_bytes(self) -> int:
        return self._audio

    def add(self, frame: bytes | str) -> bool:
        """Keep ``frame`` if it fits; returns whether it was kept."""
        size = len(frame) if isinstance(frame, bytes) else int(len(frame) * self._ratio)
        if isinstance(frame, str) and size == 0:
            if self._events >= _MAX_AWAY_EVENTS:
                return False
            self._events += 1
        elif self._audio + size > self.max_audio_bytes:
            self.dropped_bytes += size
            return False
        self._audio += size
        self._frames.append(frame)
        return True

    def drain(self) -> list[bytes | str]:
        """Everything kept, in order; the buffer is then empty."""
        frames = list(self._frames)
        self._frames.clear()
        self._audio = self._events = 0
        return frames


class SentWindow:
    """The frames last sent on a connection, the newest kept, bounded as :class:`ReplyBuffer`.

    A cut loses what was in flight: frames the socket took but the client never read. A
    client whose dialect numbers its events says, on its resume, the last one it read; what
    came after it here is sent again. Past the bound the oldest frames go.
    """

    def __init__(self, max_audio_bytes: int, text_audio_ratio: float = 0.0) -> None:
        self.max_audio_bytes = max_audio_bytes
        self._ratio = text_audio_ratio
        self._frames: deque[tuple[bytes | str, int]] = deque()
        self._audio = 0

    def __len__(self) -> int:
        return len(self._frames)

    def add(self, frame: bytes | str) -> None:
        size = len(frame) if isinstance(frame, bytes) else int(len(frame) * self._ratio)
        self._frames.append((frame, size))
        self._audio += size
        while self._audio > self.max_audio_bytes or len(self._frames) > _MAX_AWAY_EVENTS:
            self._audio -= self._frames.popleft()[1]

    def after(self, is_last_read: Callable[[bytes | str], bool]) -> list[bytes | str] | None:
        """The frames after the one ``is_last_read`` picks (newest searched first); ``None``
        when none is (it is older than the window, or was never sent)."""
        frames = [frame for frame, _ in self._frames]
        for index in range(len(frames) - 1, -1, -1):
            if is_last_read(frames[index]):
                return frames[index + 1:]
        return None

    def clear(self) -> None:
        self._frames.clear()
        self._audio = 0
