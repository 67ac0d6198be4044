"""Graceful shutdown with a real server process and a signal: ``asgi-audio-proxy serve``
(uvicorn) and hypercorn serving ``AudioProxy`` (``runner.py``), SIGTERM while a reply plays.

The client gets a proper close (1001, or uvicorn's own 1012), the upstream a ``/stop`` and its
connections closed, and the process exits with status 0 within the grace period (the fault
table's ``shutdown`` group; the hypercorn row in the slow part, ``parts.py``).
"""

from __future__ import annotations

import pytest

from tests.faults.parts import check, rows
from tests.faults.table import Scenario


@pytest.mark.parametrize("scenario", rows("shutdown", ids=lambda s: s.server))
def test_sigterm_mid_reply_closes_1001_stops_upstream_and_exits_0(scenario: Scenario) -> None:
    check(scenario)
