"""Bad Realtime events and broken Twilio calls on uvicorn and hypercorn: each gets its dialect's
answer (or, for Twilio, nothing it would reject), the accounting balances, and a native client on
the same proxy completes its round trip undisturbed (the fault table's ``dialect`` group, cases
in ``dialect_cases.py``; the hypercorn rows in the slow part, ``parts.py``)."""

from __future__ import annotations

import pytest

from tests.faults.parts import check, rows
from tests.faults.table import Scenario


@pytest.mark.parametrize("scenario", rows("dialect"))
def test_dialect_faults_get_their_answer_and_the_bystander_is_undisturbed(scenario: Scenario) -> None:
    check(scenario)
