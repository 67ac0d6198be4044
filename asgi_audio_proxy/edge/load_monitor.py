"""Whether the process keeps up: the event loop's lag, measured and smoothed, against a threshold.

Owns: :class:`LagGauge`, the pure decision (samples of lateness in, a smoothed lag and an
``overloaded`` verdict out, with hysteresis so admission does not flap), and
:class:`LoopLagMonitor`, the thin edge: one periodic task that sleeps a fixed interval and
measures how late it woke. Must not: refuse anyone itself (admission asks ``overloaded``) or
read a clock inside the gauge (the monitor passes times in).

Why lag: every session's audio, replies and timers run on the one event loop; when it is
saturated, every callback runs late by the same amount, so the lateness of a timer of our own
is the delay every session suffers. Admitting one more session then makes all of them worse,
and under heavy enough load their waits on the upstream run out; refusing it before accept
(503 with ``Retry-After``) keeps the admitted ones served.
"""

from __future__ import annotations

import asyncio
import math

from ..tasks import stop_task

__all__ = ["DEFAULT_LAG_INTERVAL_S", "DEFAULT_LAG_SMOOTHING_S", "LagGauge", "LoopLagMonitor"]

#: how often the monitor wakes: 20 wake-ups a second cost nothing measurable and see a stall
#: of a few frames (20 ms each) within one interval
DEFAULT_LAG_INTERVAL_S = 0.05
#: the smoothing's time constant: one garbage collection or one slow frame does not shed
#: load; a second of sustained lag does
DEFAULT_LAG_SMOOTHING_S = 1.0
#: overload ends once the smoothed lag falls under this share of the threshold
_CLEAR_SHARE = 0.5


class LagGauge:
    """The smoothed event-loop lag and the verdict on it (pure: time is passed in).

    Each sample weighs by the time it covers (an exponential moving average with time constant
    ``smoothing_s``), so a long stall counts for as long as it lasted. Overload starts when the
    smoothed lag goes over ``threshold_s`` and ends once it is back under half of it.

    Args:
        threshold_s: smoothed lag over which the process is overloaded.
        smoothing_s: the average's time constant.

    Raises:
        ValueError: a threshold or time constant that is not a positive finite number.
    """

    def __init__(self, threshold_s: float, *, smoothing_s: float = DEFAULT_LAG_SMOOTHING_S) -> None:
        for name, value in (("threshold_s", threshold_s), ("smoothing_s", smoothing_s)):
            if not (isinstance(value, int | float) and 0 < value < math.inf):
                raise ValueError(f"invalid {name}={value!r}: expected a positive finite number")
        self.threshold_s = threshold_s
        self._smoothing_s = smoothing_s
        self.lag_s = 0.0
        self.overloaded = False

    def record(self, lag_s: float, elapsed_s: float) -> bool:
        """One sample: the timer woke ``lag_s`` late, ``elapsed_s`` after the previous sample.

        Returns:
            whether the verdict changed.
        """
        weight = 1.0 - math.exp(-max(elapsed_s, 0.0) / self._smoothing_s)
        self.lag_s += weight * (max(lag_s, 0.0) - self.lag_s)
        was = self.overloaded
        if self.lag_s > self.threshold_s:
            self.overloaded = True
        elif self.lag_s < self.threshold_s * _CLEAR_SHARE:
            self.overloaded = False
        return self.overloaded != was


class LoopLagMonitor:
    """Measures the running loop's lag into a :class:`LagGauge`, from one task of its own.

    Start it from inside the loop (:meth:`start`, idempotent); :meth:`aclose` ends the task.

    Args:
        gauge: where the samples go (its ``overloaded`` is the verdict).
        interval_s: how long the task sleeps between samples.
    """

    def __init__(self, gauge: LagGauge, *, interval_s: float = DEFAULT_LAG_INTERVAL_S) -> None:
        self.gauge = gauge
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    @property
    def overloaded(self) -> bool:
        """The gauge's verdict: the process is not keeping up."""
        return self.gauge.overloaded

    def start(self) -> None:
        """Start measuring on the running loop, if not already."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._measure(), name="loop-lag")

    async def wait_for(self, overloaded: bool) -> None:
        """Return once the verdict is ``overloaded`` (at once if it is already)."""
        while self.gauge.overloaded != overloaded:
            self._changed.clear()
            await self._changed.wait()

    async def aclose(self) -> None:
        """Stop measuring; the verdict stays as it was."""
        task, self._task = self._task, None
        if task is not None:
            await stop_task(task)

    async def _measure(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await asyncio.sleep(self._interval_s)  # the timer whose lateness is measured
            now = loop.time()
            if self.gauge.record(now - last - self._interval_s, now - last):
                self._changed.set()
            last = now
