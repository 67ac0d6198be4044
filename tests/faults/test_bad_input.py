"""Bad input and hostile clients on uvicorn and hypercorn: each gets the documented answer, and a
second client served by the same proxy at the same time completes its round trip undisturbed.

The cases (``client_cases.py``) run at once, each on its own simulator and proxy with its
bystander; each test asserts one of them.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.faults.observe import Outcome
from tests.faults.scenarios import CLIENT_CASES, SERVERS, bad_input, run_all


@pytest.fixture(scope="module")
def outcomes() -> dict[tuple[str, str], Outcome]:
    rows = asyncio.run(run_all([(c, s, lambda c=c, s=s: bad_input(c, s))
                                for c in CLIENT_CASES for s in SERVERS]))
    return {(row.scenario, row.server): row for row in rows}


@pytest.mark.parametrize("server", SERVERS)
@pytest.mark.parametrize("case", list(CLIENT_CASES))
def test_bad_input_gets_its_answer_and_the_bystander_is_undisturbed(
        case: str, server: str, outcomes: dict[tuple[str, str], Outcome]) -> None:
    outcome = outcomes[(f"client {case}", server)]
    assert outcome.held, "\n".join([outcome.observed, *outcome.failures])
