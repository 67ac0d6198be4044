"""Every upstream fault mode on uvicorn and hypercorn: the precise error event and close code,
a ``/stop`` where a reply was playing, nothing left open, nothing hanging.

The scenarios run at once, each on its own simulator and proxy (see ``scenarios.run_all``);
each test then asserts one of them, so a failure names its fault and server.
"""

from __future__ import annotations

import asyncio

import pytest

from asgi_audio_proxy.simulator.app import FAULTS, Fault
from tests.faults.observe import Outcome
from tests.faults.scenarios import SERVERS, run_all, upstream_fault


@pytest.fixture(scope="module")
def outcomes() -> dict[tuple[str, str], Outcome]:
    rows = asyncio.run(run_all([(f, s, lambda f=f, s=s: upstream_fault(f, s))
                                for f in FAULTS for s in SERVERS]))
    return {(row.scenario, row.server): row for row in rows}


@pytest.mark.parametrize("server", SERVERS)
@pytest.mark.parametrize("fault", FAULTS)
def test_upstream_fault_gives_its_error_event_and_close_code(
        fault: Fault, server: str, outcomes: dict[tuple[str, str], Outcome]) -> None:
    outcome = outcomes[(f"upstream {fault}", server)]
    assert outcome.held, "\n".join([outcome.observed, *outcome.failures])
