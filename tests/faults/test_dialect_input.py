"""Bad Realtime events and broken Twilio calls on uvicorn and hypercorn: each gets its dialect's
answer (or, for Twilio, nothing it would reject), the accounting balances, and a native client on
the same proxy completes its round trip undisturbed (``dialect_cases.py``)."""

from __future__ import annotations

import asyncio

import pytest

from tests.faults.dialect_cases import DIALECT_CASES, dialect_input
from tests.faults.observe import Outcome
from tests.faults.scenarios import SERVERS, run_all


@pytest.fixture(scope="module")
def outcomes() -> dict[tuple[str, str], Outcome]:
    rows = asyncio.run(run_all([(c, s, lambda c=c, s=s: dialect_input(c, s))
                                for c in DIALECT_CASES for s in SERVERS]))
    return {(row.scenario, row.server): row for row in rows}


@pytest.mark.parametrize("server", SERVERS)
@pytest.mark.parametrize("case", list(DIALECT_CASES))
def test_dialect_faults_get_their_answer_and_the_bystander_is_undisturbed(
        case: str, server: str, outcomes: dict[tuple[str, str], Outcome]) -> None:
    outcome = outcomes[(case, server)]
    assert outcome.held, "\n".join([outcome.observed, *outcome.failures])
