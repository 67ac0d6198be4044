"""Test time: deadlines that one unit scales, and a clock a test moves by hand.

``within(s)`` is ``s`` seconds times :func:`unit`: the larger of the slowness :func:`cpu_slowness`
measured once per process, at the first deadline asked for, and the machine's load now
(:func:`load_share`, read at every deadline: a process that measured a quiet moment at its start
still sees the crowd that came after, as it comes); 1 on an idle machine, about 2 while another busy process
shares our core, more on a crowded one; never below 1. ``TEST_TIME_UNIT``, if set, multiplies it
for what a measurement cannot see (a debugger stopping the process).
:class:`FakeClock` is for the parts that take a clock: time passes when the test says so.
"""

from __future__ import annotations

import functools
import os
import time

__all__ = ["FakeClock", "cpu_slowness", "load_share", "unit", "within"]


def cpu_slowness(wall_s: float = 0.2) -> float:
    """How many times longer than its own CPU time a piece of pure-Python work takes now.

    Work for ``wall_s`` of wall-clock time, and divide by the CPU time this thread got for it:
    a thread with a core to itself gets 1.0, one that shares it with another busy process about
    2. A fifth of a second spans many scheduler turns, so the share it sees is the fair one.
    """
    wall, cpu = time.perf_counter(), time.thread_time()
    while time.perf_counter() - wall < wall_s:
        sum(range(1_000))  # work, not a wait
    return (time.perf_counter() - wall) / max(time.thread_time() - cpu, 1e-6)


@functools.cache
def _measured() -> float:
    return cpu_slowness()


def load_share() -> float:
    """About how many processes share each core now: the larger of the kernel's load average
    over the last minute and the tasks runnable at this instant, per core. Free to read, so read
    at every deadline.

    The average alone lags: half a minute after the machine went from quiet to twelve runnable
    tasks on two cores it says 2.4, not 6, and the suite's first minute (the fault table's rows)
    is exactly then. The instant's count alone is the sample of a moment; the larger of the two
    follows a crowd as it comes and stays with it while it lasts.
    """
    cores = os.cpu_count() or 1
    try:
        with open("/proc/loadavg") as f:  # "0.50 0.40 0.30 3/250 1234": the fourth is runnable/all
            fields = f.read().split()
        return max(float(fields[0]), float(fields[3].split("/")[0])) / cores
    except (OSError, IndexError, ValueError):  # not Linux: the average alone, where there is one
        try:
            return os.getloadavg()[0] / cores
        except OSError:
            return 1.0


def unit() -> float:
    """The factor every deadline is scaled by: the process's measured slowness or the machine's
    load now, whichever is larger."""
    return max(1.0, _measured(), load_share()) * float(os.environ.get("TEST_TIME_UNIT", "1.0"))


def within(seconds: float) -> float:
    """A deadline of ``seconds`` on an idle machine, scaled by :func:`unit`."""
    return seconds * unit()


class FakeClock:
    """A clock that reads ``now`` (seconds) and moves only when a test sets or advances it.

    Args:
        now: where it starts (away from 0 by default, so a stray "0 means unset" shows).
    """

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
