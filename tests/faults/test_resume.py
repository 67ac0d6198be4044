"""A connection cut under a session, on uvicorn: resumed while the user speaks and mid-reply
(one conversation upstream, all the reply audio), a client queued behind a grace that ends, and
wrong, reused and expired tokens refused (the fault table's ``resume`` group, run at once)."""

from __future__ import annotations

import pytest

from tests.faults.observe import Outcome
from tests.faults.table import Scenario, outcomes_of, scenarios

SCENARIOS = scenarios("resume")


@pytest.fixture(scope="module")
def outcomes() -> dict[str, Outcome]:
    return outcomes_of(SCENARIOS)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.id)
def test_resume_row_holds(scenario: Scenario, outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes[scenario.id]
    assert outcome.held, "\n".join([outcome.observed, *outcome.failures])
