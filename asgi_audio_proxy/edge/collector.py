"""The serving process's garbage collector, settled once start-up is over.

Owns: :func:`settle_collector`, called by whoever owns the process (``serve``, the benchmarks'
servers) once the app is built and before the first session. Must not: run on import, or be
called by the library for a process it does not own (an app that mounts the proxy decides its
own collector).

Why: every session's audio runs on one event loop, so a pause of the loop is a delay of every
message due meanwhile. CPython's full collection walks every tracked object, and about 50 000
of them are made at start-up (the modules, classes and functions of the proxy, uvicorn, httpx,
numpy) and live as long as the process: on a loaded two-core machine a full collection with 200
sessions live took 50-170 ms, most of it spent on those. ``gc.freeze()`` moves them out of the
collector's reach, so a full collection walks the sessions' objects only (about 250 each).
The first generation's threshold goes from 700 to :data:`YOUNG_THRESHOLD`: a loop juggling 200
sessions has thousands of objects in flight (futures, frames, events) that live a few
iterations; at 700 allocations many of them are still alive when the young generation is
collected, so they are promoted and later cost a full collection. Counted in one 200-session
run of each (a loaded machine, so a rough count): 109 young, 10 middle and 1 full collection
against 443, 40 and 3 at 700, each young one no longer (what is walked is what survives).
"""

from __future__ import annotations

import gc

__all__ = ["YOUNG_THRESHOLD", "settle_collector"]

#: allocations (less deallocations) between collections of the youngest generation
YOUNG_THRESHOLD = 10_000


def settle_collector() -> int:
    """Collect once, freeze what is left (the start-up objects) out of later collections, and
    collect the young generation every :data:`YOUNG_THRESHOLD` allocations.

    Returns:
        how many objects were frozen.
    """
    gc.collect()  # what start-up dropped goes now, not frozen for the process's lifetime
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
    return gc.get_freeze_count()
