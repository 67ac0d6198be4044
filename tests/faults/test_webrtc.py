"""WebRTC calls that go wrong: a bad offer is refused in OpenAI's shape before it makes a
session; a call whose peer never connects, vanishes mid-reply or hangs up ends within its
deadline and gives back its lease; a native client on the same proxy completes its round trip
undisturbed (the fault table's ``webrtc`` group, cases in ``webrtc_cases.py``).

The uvicorn rows run by default (about 10 s, at once); the hypercorn rows, the same calls on
the other server, and the foreign-channel and killed-tab rows in the slow part (see ``_slow``).
"""

from __future__ import annotations

import pytest

from tests.faults.parts import check, is_second_copy, rows
from tests.faults.table import Scenario


def _slow(scenario: Scenario) -> bool:
    """The hypercorn rows, the foreign-channel row (its call waited more than 30 s for its audio
    to reach the model server in three of six runs beside seven busy workers, never alone) and
    the killed-tab row (its call, the one through a UDP relay, never opened its data channel in
    two clean-clone runs of the whole suite, where it runs last beside the busiest workers; never
    alone, nor in the tree) go to the slow part, one test at a time."""
    return is_second_copy(scenario) or scenario.id.startswith(("other_channel", "tab_killed"))


@pytest.mark.parametrize("scenario", rows("webrtc", slow=_slow))
def test_webrtc_faults_end_the_call_in_time_and_the_bystander_is_undisturbed(scenario: Scenario) -> None:
    check(scenario, _slow)
