"""WebRTC calls that go wrong: a bad offer is refused in OpenAI's shape before it makes a
session; a call whose peer never connects, vanishes mid-reply or hangs up ends within its
deadline and gives back its lease; a native client on the same proxy completes its round trip
undisturbed (the fault table's ``webrtc`` group, cases in ``webrtc_cases.py``).

The uvicorn rows run by default (about 10 s, at once); the hypercorn rows, the same calls on
the other server, and the foreign-channel and killed-tab rows in the slow part (see ``_part``).
"""

from __future__ import annotations

import functools

import pytest

from tests.faults.observe import Outcome
from tests.faults.table import Scenario, outcomes_of, scenarios

SCENARIOS = scenarios("webrtc")


def _part(scenario: Scenario) -> str:
    """Which part of the suite runs the row: the hypercorn rows, the foreign-channel row (its
    call waited more than 30 s for its audio to reach the model server in three of six runs
    beside seven busy workers, never alone) and the killed-tab row (its call, the one through a
    UDP relay, never opened its data channel in two clean-clone runs of the whole suite, where
    it runs last beside the busiest workers; never alone, nor in the tree) go to the slow part,
    one test at a time."""
    slow = scenario.server == "hypercorn" or scenario.id.startswith(("other_channel", "tab_killed"))
    return "slow" if slow else "default"


@functools.cache
def _outcomes(part: str) -> dict[str, Outcome]:
    return outcomes_of([s for s in SCENARIOS if _part(s) == part])


@pytest.mark.parametrize("scenario", [
    pytest.param(s, id=s.id, marks=[pytest.mark.slow] if _part(s) == "slow" else [])
    for s in SCENARIOS])
def test_webrtc_faults_end_the_call_in_time_and_the_bystander_is_undisturbed(scenario: Scenario) -> None:
    outcome = _outcomes(_part(scenario))[scenario.id]
    assert outcome.held, "\n".join([outcome.observed, *outcome.failures])
