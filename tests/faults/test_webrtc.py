"""WebRTC calls that go wrong: a bad offer is refused in OpenAI's shape before it makes a
session; a call whose peer never connects, vanishes mid-reply or hangs up ends within its
deadline and gives back its lease; a native client on the same proxy completes its round trip
undisturbed (the fault table's ``webrtc`` group, cases in ``webrtc_cases.py``).

The uvicorn rows run by default (about 10 s, the five at once); the hypercorn rows, the same
calls on the other server, in the slow part.
"""

from __future__ import annotations

import functools

import pytest

from tests.faults.observe import Outcome
from tests.faults.table import Scenario, outcomes_of, scenarios

SCENARIOS = scenarios("webrtc")


@functools.cache
def _outcomes(server: str) -> dict[str, Outcome]:
    return outcomes_of([s for s in SCENARIOS if s.server == server])


@pytest.mark.parametrize("scenario", [
    pytest.param(s, id=s.id, marks=[pytest.mark.slow] if s.server == "hypercorn" else [])
    for s in SCENARIOS])
def test_webrtc_faults_end_the_call_in_time_and_the_bystander_is_undisturbed(scenario: Scenario) -> None:
    outcome = _outcomes(scenario.server)[scenario.id]
    assert outcome.held, "\n".join([outcome.observed, *outcome.failures])
