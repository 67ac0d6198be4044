"""A connection cut under a session, on uvicorn: resumed while the user speaks and mid-reply
(one conversation upstream, all the reply audio), a client queued behind a grace that ends, and
wrong, reused and expired tokens refused (the fault table's ``resume`` group, run at once)."""

from __future__ import annotations

import pytest

from tests.faults.parts import check, rows
from tests.faults.table import Scenario


@pytest.mark.parametrize("scenario", rows("resume"))
def test_resume_row_holds(scenario: Scenario) -> None:
    check(scenario)
