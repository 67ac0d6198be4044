"""Admission on uvicorn and hypercorn: refusals answered before accept with their HTTP status
(401, 403, 429 and 503 with ``Retry-After``), and the close-before-accept fallback (1008, 1013)
where the server has no denial response; a refused client's audio never reaches the upstream
(the fault table's ``admission`` group, run at once; the hypercorn rows in the slow part,
``parts.py``).
"""

from __future__ import annotations

import pytest

from tests.faults.parts import check, rows
from tests.faults.table import Scenario

FALLBACK = "no denial ext."


@pytest.mark.parametrize("scenario", rows("admission", keep=lambda s: s.server != FALLBACK))
def test_refused_before_accept_with_its_http_status(scenario: Scenario) -> None:
    check(scenario)


@pytest.mark.parametrize("scenario", rows("admission", keep=lambda s: s.server == FALLBACK,
                                          ids=lambda s: s.case))
def test_without_the_denial_extension_refused_by_a_close_before_accept(scenario: Scenario) -> None:
    check(scenario)
