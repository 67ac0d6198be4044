"""Admission on uvicorn and hypercorn: refusals answered before accept with their HTTP status
(401, 403, 429 and 503 with ``Retry-After``), and the close-before-accept fallback (1008, 1013)
where the server has no denial response; a refused client's audio never reaches the upstream
(the fault table's ``admission`` group, run at once).
"""

from __future__ import annotations

import pytest

from tests.faults.observe import Outcome
from tests.faults.table import Scenario, outcomes_of, scenarios

SCENARIOS = scenarios("admission")
FALLBACK = "no denial ext."


@pytest.fixture(scope="module")
def outcomes() -> dict[str, Outcome]:
    return outcomes_of(SCENARIOS)


@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if s.server != FALLBACK], ids=lambda s: s.id)
def test_refused_before_accept_with_its_http_status(scenario: Scenario, outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes[scenario.id]
    assert outcome.held, "\n".join([outcome.observed, *outcome.failures])


@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if s.server == FALLBACK], ids=lambda s: s.case)
def test_without_the_denial_extension_refused_by_a_close_before_accept(
        scenario: Scenario, outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes[scenario.id]
    assert outcome.held, "\n".join([outcome.observed, *outcome.failures])
