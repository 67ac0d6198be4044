"""Bad input and hostile clients on uvicorn and hypercorn: each gets the documented answer, and a
second client served by the same proxy at the same time completes its round trip undisturbed.

The scenarios are the fault table's ``client`` group (cases in ``client_cases.py``), run at
once, each on its own simulator and proxy with its bystander; each test asserts one of them.
The hypercorn rows are in the slow part (``parts.py``).
"""

from __future__ import annotations

import pytest

from tests.faults.parts import check, rows
from tests.faults.table import Scenario


@pytest.mark.parametrize("scenario", rows("client"))
def test_bad_input_gets_its_answer_and_the_bystander_is_undisturbed(scenario: Scenario) -> None:
    check(scenario)
