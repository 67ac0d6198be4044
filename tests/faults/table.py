"""The fault table, defined once: every scenario, with its group, its server and its budget.

``python -m tests.faults`` runs it and prints it; each ``test_*.py`` here runs one group of it
through :func:`outcomes_of` and asserts each row, so both run the same scenarios the same way:
a group's scenarios at once (as many as the machine has room for), each on its own simulator
and proxy, in an event loop of their own; the groups one after another. A scenario still
running at its budget is a row that did not hold ("hung"); what each one checks, its own time
limits included, is in its function.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from asgi_audio_proxy.config import MESSAGE_DURATION_S
from tests.clients import at_real_time
from tests.faults.dialect_cases import DIALECT_CASES, dialect_input
from tests.faults.observe import Outcome
from tests.faults.resume_cases import RESUME_CASES, resume_case
from tests.faults.scenarios import (
    ADMISSION_CASES,
    CLIENT_CASES,
    SERVERS,
    UPSTREAM_FAULTS,
    admission,
    admission_fallback,
    bad_input,
    upstream_fault,
    upstream_silent,
)
from tests.faults.shutdown import shutdown
from tests.faults.webrtc_cases import WEBRTC_CASES, webrtc_fault
from tests.timing import cpu_slowness, unit, within

__all__ = ["GROUPS", "SERVERS", "Scenario", "outcomes_of", "run_scenarios", "scenarios"]

#: in the order the command runs them
GROUPS = ("upstream", "client", "dialect", "admission", "shutdown", "resume", "webrtc")
#: the longest a scenario may take, set-up to teardown, before it counts as hung: its own waits
#: (the client's read, the proxy's idle, the upstream settling) add up to about half of it
BUDGET_S = 20.0
#: a proxy process's start (imports), a reply, its grace period and its exit
SHUTDOWN_BUDGET_S = 30.0


@dataclass(frozen=True)
class Scenario:
    """One row of the table: ``run()`` plays it and says whether it held."""

    group: str
    case: str  # its key among its group's cases
    fault: str  # the row's first column
    server: str
    run: Callable[[], Awaitable[Outcome]]
    budget_s: float = BUDGET_S

    @property
    def id(self) -> str:
        return f"{self.case}-{self.server}"


def scenarios(group: str, servers: Iterable[str] = SERVERS) -> list[Scenario]:
    """The group's scenarios on each of ``servers``."""
    out: list[Scenario] = []
    for server in servers:
        if group == "upstream":
            out += [Scenario(group, f, f"upstream {f}", server, functools.partial(upstream_fault, f, server))
                    for f in UPSTREAM_FAULTS]
            out.append(Scenario(group, "never_answers", "upstream never answers", server,
                                functools.partial(upstream_silent, server)))
        elif group == "client":
            out += [Scenario(group, c, f"client {c}", server, functools.partial(bad_input, c, server))
                    for c in CLIENT_CASES]
        elif group == "dialect":
            out += [Scenario(group, c, c, server, functools.partial(dialect_input, c, server))
                    for c in DIALECT_CASES]
        elif group == "admission":
            out += [Scenario(group, c, f"admission {c}", server, functools.partial(admission, c, server))
                    for c in ADMISSION_CASES]
        elif group == "resume":  # uvicorn only: under hypercorn no session is held
            if server == "uvicorn":
                out += [Scenario(group, c, f"resume {c}", server, functools.partial(resume_case, c, server))
                        for c in RESUME_CASES]
        elif group == "webrtc":
            out += [Scenario(group, c, f"webrtc {c}", server, functools.partial(webrtc_fault, c, server))
                    for c in WEBRTC_CASES]
        elif group == "shutdown":
            out.append(Scenario(group, "sigterm_mid_reply", "shutdown SIGTERM mid-reply", server,
                                functools.partial(shutdown, server), SHUTDOWN_BUDGET_S))
        else:
            raise ValueError(f"no group {group!r}; the groups are {GROUPS}")
    if group == "admission":  # one server, its denial extension taken away
        out += [Scenario(group, c, f"admission {c}", "no denial ext.",
                         functools.partial(admission_fallback, c)) for c in ADMISSION_CASES]
    return out


#: the most a loop may run late for another scenario to start: half an upstream message, so
#: the audio the running ones pace still leaves in its own 200 ms slot
ON_TIME_S = MESSAGE_DURATION_S / 2


class LoopLag:
    """How late this event loop runs a timer, measured every :data:`TICK_S`: a loop given more
    work than it gets CPU for runs everything late, the audio the scenarios pace included."""

    TICK_S = 0.05

    def __init__(self) -> None:
        self.lag_s = 0.0
        self._ticked = asyncio.Condition()
        self._admitting = asyncio.Lock()

    async def measure(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await at_real_time(start, self.TICK_S)  # a measuring tick, not a wait for something
            self.lag_s = loop.time() - start - self.TICK_S
            async with self._ticked:
                self._ticked.notify_all()

    async def admit(self) -> None:
        """Return on a tick that finds the loop on time, one caller per tick: scenarios start one
        by one, and none while the ones running already make the loop late."""
        async with self._admitting:
            while True:
                async with self._ticked:
                    await self._ticked.wait()
                if self.lag_s < ON_TIME_S:
                    return


async def run_scenarios(chosen: Iterable[Scenario]) -> list[Outcome]:
    """Run scenarios at once; one that raises or outlives its budget is a row that did not hold.

    A whole group at once takes about half a core (each scenario streams real-time audio through
    two servers and a simulator), and audio that cannot keep real time would make the simulated
    model miss the end of a turn. So at most the share this process gets of a core runs at once
    (a slowness of 2 is half a core: the slower of a measure now and the process's own, from its
    start, as a moment's quiet beside a busy suite says little of the next minute), and they
    start one at a time, each when the loop runs on time (:class:`LoopLag`).
    """
    chosen = list(chosen)
    slowness = max(cpu_slowness(), unit())
    room = asyncio.Semaphore(max(1, math.ceil(len(chosen) / slowness)))
    lag = LoopLag()

    async def guarded(scenario: Scenario) -> Outcome:
        try:
            async with room:
                await lag.admit()
                async with asyncio.timeout(within(scenario.budget_s)):
                    return await scenario.run()
        except TimeoutError:
            return Outcome(scenario.fault, scenario.server, "", "hung",
                           [f"did not finish within {within(scenario.budget_s):.0f} s"])
        except Exception as exc:  # a row of the table, not a crash of the command
            return Outcome(scenario.fault, scenario.server, "", f"raised {exc!r}", [f"raised {exc!r}"])

    measuring = asyncio.create_task(lag.measure())
    try:
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(guarded(scenario)) for scenario in chosen]
    finally:
        measuring.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await measuring
    return [task.result() for task in tasks]


def outcomes_of(chosen: list[Scenario]) -> dict[str, Outcome]:
    """Run ``chosen`` at once in an event loop of their own; their outcomes by scenario id."""
    outcomes = asyncio.run(run_scenarios(chosen))
    return {scenario.id: outcome for scenario, outcome in zip(chosen, outcomes, strict=True)}
