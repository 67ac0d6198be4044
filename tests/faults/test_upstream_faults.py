"""Every upstream fault mode on uvicorn and hypercorn: the precise error event and close code,
a ``/stop`` where a reply was playing, the close soon after the fault, nothing left open.

The scenarios are the fault table's ``upstream`` group (``table.py``), run at once; each test
then asserts one of them, so a failure names its fault and server.
"""

from __future__ import annotations

import pytest

from tests.faults.observe import Outcome
from tests.faults.table import Scenario, outcomes_of, scenarios

SCENARIOS = scenarios("upstream")


@pytest.fixture(scope="module")
def outcomes() -> dict[str, Outcome]:
    return outcomes_of(SCENARIOS)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.id)
def test_upstream_fault_gives_its_error_event_and_close_code(
        scenario: Scenario, outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes[scenario.id]
    assert outcome.held, "\n".join([outcome.observed, *outcome.failures])
