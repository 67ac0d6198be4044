"""Graceful shutdown with a real server process and a signal: ``asgi-audio-proxy serve``
(uvicorn) and hypercorn serving ``AudioProxy`` (``runner.py``), SIGTERM while a reply plays.

The client gets a proper close (1001, or uvicorn's own 1012), the upstream a ``/stop`` and its
connections closed, and the process exits with status 0 within the grace period.
"""

from __future__ import annotations

import pytest

from tests.faults.scenarios import SERVERS
from tests.faults.shutdown import shutdown


@pytest.mark.parametrize("server", SERVERS)
async def test_sigterm_mid_reply_closes_1001_stops_upstream_and_exits_0(server: str) -> None:
    outcome = await shutdown(server)
    assert outcome.held, "\n".join([outcome.observed, *outcome.failures])
