"""``Watched``: a record that tests wait on, woken at each change. The simulators' recorders are
``Watched``.

Owns: :meth:`Watched.changed` and :meth:`Watched.wait_for`, the one way to wait for a condition on a
recorder without polling. Must not: hold what is recorded (each recorder holds its own).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Self

__all__ = ["Watched"]


class Watched:
    """A record whose updates wake whoever waits for a condition on it (all in one event loop)."""

    _changed: asyncio.Event | None = None

    def changed(self) -> None:
        """Wake every :meth:`wait_for`; the recorder calls this after each update."""
        # swap, then set: each waiter re-checks and then waits on the fresh event, so no
        # change between its check and its wait can be missed (all of it runs in one loop)
        event, self._changed = self._changed, None
        if event is not None:
            event.set()

    # a timeout argument, not only the caller's asyncio.timeout, keeps one-line test waits short
    async def wait_for(self, predicate: Callable[[Self], bool],
                       timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Return once ``predicate(self)`` holds, re-checked after every change.

        Raises:
            TimeoutError: the predicate did not hold within ``timeout`` seconds.
        """
        async with asyncio.timeout(timeout):
            while not predicate(self):
                if self._changed is None:
                    self._changed = asyncio.Event()
                await self._changed.wait()
