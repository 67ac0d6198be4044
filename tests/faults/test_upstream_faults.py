"""Every upstream fault mode on uvicorn and hypercorn: the precise error event and close code,
a ``/stop`` where a reply was playing, the close soon after the fault, nothing left open.

The scenarios are the fault table's ``upstream`` group (``table.py``), run at once; each test
then asserts one of them, so a failure names its fault and server. The hypercorn rows are in
the slow part (``parts.py``).
"""

from __future__ import annotations

import pytest

from tests.faults.parts import check, rows
from tests.faults.table import Scenario


@pytest.mark.parametrize("scenario", rows("upstream"))
def test_upstream_fault_gives_its_error_event_and_close_code(scenario: Scenario) -> None:
    check(scenario)
