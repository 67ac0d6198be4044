"""Bad input and hostile clients on uvicorn and hypercorn: each gets the documented answer, and a
second client served by the same proxy at the same time completes its round trip undisturbed.

The scenarios are the fault table's ``client`` group (cases in ``client_cases.py``), run at
once, each on its own simulator and proxy with its bystander; each test asserts one of them.
"""

from __future__ import annotations

import pytest

from tests.faults.observe import Outcome
from tests.faults.table import Scenario, outcomes_of, scenarios

SCENARIOS = scenarios("client")


@pytest.fixture(scope="module")
def outcomes() -> dict[str, Outcome]:
    return outcomes_of(SCENARIOS)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.id)
def test_bad_input_gets_its_answer_and_the_bystander_is_undisturbed(
        scenario: Scenario, outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes[scenario.id]
    assert outcome.held, "\n".join([outcome.observed, *outcome.failures])
