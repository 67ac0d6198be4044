"""A reply's life, defined once: its phases, what moves it, and the one table of legal moves.

Owns: :class:`ReplyPhase` (idle, playing, cut, done), :class:`ReplyInput` (start, more, cut,
end, close), the transition table :data:`TRANSITIONS`, :class:`ReplyLifecycle` (one reply stream
as one part sees it, moved only through the table) and :class:`ReplyOrderError`. Must not: do
I/O, read a clock, or know a wire format or who is looking at the reply.

The design follows h11's ``_state.py``: the machine is a table, ``phase x input -> phase``; a
pair the table has no entry for is illegal, raises :class:`ReplyOrderError` and leaves the phase
as it was. The phases:

- ``IDLE``: no reply under way.
- ``PLAYING``: a reply is under way; its pieces (text, audio) go on.
- ``CUT``: the proxy stopped it; what still comes of it is dropped (or was already on its way)
  until its stream closes. Its ending was told when it was cut, so it never ``END``\\ s.
- ``DONE``: it reached its end (complete, or ended early by the upstream); its stream may still
  hold a tail the next reply must not take for its own, until ``CLOSE``.

A new reply may start from any phase but ``PLAYING`` (a playing one ends or is cut first): a
server may begin the next response before the cut one's stream has closed.

Several parts see the same reply, each from where it stands, and each keeps one lifecycle: an
upstream adapter's reply tracker as its server makes it, the session as the adapter emits it,
the way to the client (and the voice detector) as it is sent. They see it at different moments
(the outbox lies between the session and the client), never under different rules.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

__all__ = ["TRANSITIONS", "ReplyInput", "ReplyLifecycle", "ReplyOrderError", "ReplyPhase", "next_phase"]


class ReplyPhase(enum.Enum):
    """Where a reply is (see the module docstring)."""

    IDLE = "idle"
    PLAYING = "playing"
    CUT = "cut"
    DONE = "done"


class ReplyInput(enum.Enum):
    """What can happen to a reply."""

    START = "start"  # a reply begins
    MORE = "more"  # a piece of it: text or audio
    CUT = "cut"  # the proxy stops it
    END = "end"  # it reaches its end: the upstream's ending, to be told
    CLOSE = "close"  # its stream is over: nothing more of it will come


_I, _P = ReplyInput, ReplyPhase
#: ``phase -> {input: next phase}``; a pair with no entry is an illegal move
TRANSITIONS: Final[Mapping[ReplyPhase, Mapping[ReplyInput, ReplyPhase]]] = MappingProxyType({
    _P.IDLE: MappingProxyType({_I.START: _P.PLAYING, _I.CLOSE: _P.IDLE}),
    _P.PLAYING: MappingProxyType({_I.MORE: _P.PLAYING, _I.CUT: _P.CUT, _I.END: _P.DONE}),
    _P.CUT: MappingProxyType({_I.START: _P.PLAYING, _I.MORE: _P.CUT, _I.CLOSE: _P.IDLE}),
    _P.DONE: MappingProxyType({_I.START: _P.PLAYING, _I.CLOSE: _P.IDLE}),
})


class ReplyOrderError(RuntimeError):
    """A move the table does not allow (a bug in whoever fed it, never the client's fault).

    Attributes:
        phase: where the reply was (and still is).
        event: the move that was refused.
        who: which part's lifecycle refused it.
    """

    def __init__(self, phase: ReplyPhase, event: ReplyInput, who: str = "reply") -> None:
        self.phase, self.event, self.who = phase, event, who
        allowed = ", ".join(sorted(i.value for i in TRANSITIONS[phase]))
        super().__init__(f"{who}: cannot {event.value} a reply that is {phase.value} "
                         f"(allowed: {allowed})")


def next_phase(phase: ReplyPhase, event: ReplyInput, who: str = "reply") -> ReplyPhase:
    """The phase ``event`` leads to from ``phase``.

    Raises:
        ReplyOrderError: the table has no such move.
    """
    following = TRANSITIONS[phase].get(event)
    if following is None:
        raise ReplyOrderError(phase, event, who)
    return following


class ReplyLifecycle:
    """One reply stream as one part sees it; changed only through :data:`TRANSITIONS`.

    Args:
        who: names the part in :class:`ReplyOrderError` messages (``"session"``, ``"client"``...).
    """

    __slots__ = ("_phase", "_who")

    def __init__(self, who: str = "reply") -> None:
        self._phase = ReplyPhase.IDLE
        self._who = who

    def __repr__(self) -> str:
        return f"ReplyLifecycle({self._who!r}, {self._phase.value})"

    @property
    def phase(self) -> ReplyPhase:
        return self._phase

    @property
    def is_playing(self) -> bool:
        """A reply is under way and can be cut."""
        return self._phase is ReplyPhase.PLAYING

    @property
    def is_cut(self) -> bool:
        """The reply was cut and its stream has not closed: what comes of it is dropped."""
        return self._phase is ReplyPhase.CUT

    @property
    def is_open(self) -> bool:
        """A reply's stream is open: it plays, or was cut or ended and has not closed yet."""
        return self._phase is not ReplyPhase.IDLE

    def can(self, event: ReplyInput) -> bool:
        """Whether the table allows ``event`` now."""
        return event in TRANSITIONS[self._phase]

    def apply(self, event: ReplyInput) -> ReplyPhase:
        """Move by ``event``; returns the new phase.

        Raises:
            ReplyOrderError: the table has no such move; the phase is left as it was.
        """
        self._phase = next_phase(self._phase, event, self._who)
        return self._phase

    def start(self) -> None:
        """A reply begins (from any phase but ``PLAYING``)."""
        self.apply(ReplyInput.START)

    def more(self) -> None:
        """A piece of the reply playing, or of the cut one (which drops it)."""
        self.apply(ReplyInput.MORE)

    def cut(self) -> None:
        """The proxy stops the reply playing."""
        self.apply(ReplyInput.CUT)

    def end(self) -> None:
        """The reply playing reached its end."""
        self.apply(ReplyInput.END)

    def close(self) -> None:
        """The reply's stream is over (a cut or ended one, or none at all)."""
        self.apply(ReplyInput.CLOSE)
