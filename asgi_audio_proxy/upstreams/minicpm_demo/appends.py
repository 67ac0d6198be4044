"""Client audio made into the gateway's appends: whole units, at the pace the model takes them.

Owns: :class:`AppendBuffer`: the client's PCM16 (16 kHz) waiting for the socket, the bound on it
(the adapter waits for room: back-pressure on the client), and the one decision of when an append
goes and what it holds. The gateway's model answers every append with one event and drops an
append that comes before it took the last one, so appends must keep coming, one unit each, never
faster than the model:

- a whole unit of client audio goes as soon as it is there, but no sooner than
  :data:`MIN_INTERVAL` of a unit after the last append (a client running ahead catches up slowly
  instead of losing audio to the gateway);
- while the client says nothing, a unit of silence goes every unit's time, as from an open
  microphone: the model's reply comes one piece per append, so appends keep real time;
- part of a unit goes, with silence after it, only once the client has been quiet for
  ``silence_after_s`` (and a unit's time has passed): silence is never put inside what the client
  is saying;
- a stop marks the next append ``force_listen``.

Time is passed in. Must not: await, send, or read a clock.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MIN_INTERVAL", "AppendBuffer", "Outgoing"]

#: the shortest time between two appends, in units: 10 % faster than real time at most
MIN_INTERVAL = 0.9


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One append to send: its PCM16 (a whole unit), how much of it is the client's, the flag."""

    pcm: bytes
    client_bytes: int
    force_listen: bool = False


class AppendBuffer:
    """Client audio in, appends out.

    Args:
        unit_bytes: PCM16 bytes in one append.
        unit_s: the time one append's audio plays.
        silence_after_s: see the module docstring.
        max_bytes: buffered audio past which :attr:`has_room` is false.
    """

    def __init__(self, unit_bytes: int, unit_s: float, silence_after_s: float, max_bytes: int) -> None:
        if unit_bytes <= 0 or unit_bytes % 2 or unit_s <= 0 or silence_after_s < 0:
            raise ValueError(f"invalid append unit {unit_bytes} B / {unit_s} s or silence_after_s "
                             f"{silence_after_s}")
        self._unit = unit_bytes
        self._unit_s = unit_s
        self._silence_after_s = silence_after_s
        self._max = max(max_bytes, 2 * unit_bytes)
        self._pcm = bytearray()
        self._last_at: float | None = None
        self._fed_at = 0.0
        self._force_listen = False
        self.appends = 0

    @property
    def buffered_bytes(self) -> int:
        return len(self._pcm)

    @property
    def has_room(self) -> bool:
        """More client audio may be buffered."""
        return len(self._pcm) < self._max

    def start(self, now: float) -> None:
        """The conversation is open at ``now``: the first append is due a unit later."""
        if self._last_at is None:
            self._last_at = now

    def feed(self, pcm: bytes, now: float) -> None:
        """Client audio (PCM16 at 16 kHz) that came at ``now``, in order."""
        self._pcm += pcm
        self._fed_at = now

    def force_listen(self) -> None:
        """A stop: the next append asks the model to listen."""
        self._force_listen = True

    def due_at(self) -> float:
        """When :meth:`take` will next give an append, if nothing is fed meanwhile."""
        last = self._last_at if self._last_at is not None else 0.0
        if len(self._pcm) >= self._unit:
            return last + MIN_INTERVAL * self._unit_s
        if self._pcm:  # the client is saying something: wait for the rest while it keeps coming
            return max(last + self._unit_s, self._fed_at + self._silence_after_s)
        return last + self._unit_s

    def take(self, now: float) -> Outgoing | None:
        """The append to send at ``now``, or ``None`` when none is due yet."""
        if self._last_at is None:
            self._last_at = now
        if now < self.due_at():
            return None
        client = bytes(self._pcm[: self._unit])
        client = client[: len(client) - len(client) % 2]
        del self._pcm[: len(client)]
        self._last_at = now
        self.appends += 1
        out = Outgoing(client.ljust(self._unit, b"\0"), len(client), self._force_listen)
        self._force_listen = False
        return out

    def clear(self) -> int:
        """Drop the client audio not yet sent; returns the bytes dropped."""
        dropped = len(self._pcm)
        self._pcm.clear()
        return dropped
