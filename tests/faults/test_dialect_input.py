"""Bad Realtime events and broken Twilio calls on uvicorn and hypercorn: each gets its dialect's
answer (or, for Twilio, nothing it would reject), the accounting balances, and a native client on
the same proxy completes its round trip undisturbed (the fault table's ``dialect`` group, cases
in ``dialect_cases.py``)."""

from __future__ import annotations

import pytest

from tests.faults.observe import Outcome
from tests.faults.table import Scenario, outcomes_of, scenarios

SCENARIOS = scenarios("dialect")


@pytest.fixture(scope="module")
def outcomes() -> dict[str, Outcome]:
    return outcomes_of(SCENARIOS)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.id)
def test_dialect_faults_get_their_answer_and_the_bystander_is_undisturbed(
        scenario: Scenario, outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes[scenario.id]
    assert outcome.held, "\n".join([outcome.observed, *outcome.failures])
