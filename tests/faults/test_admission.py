"""Admission on uvicorn and hypercorn: refusals answered before accept with their HTTP status
(401, 403, 429 and 503 with ``Retry-After``), and the close-before-accept fallback (1008, 1013)
where the server has no denial response; a refused client's audio never reaches the upstream.
"""

from __future__ import annotations

import pytest

from tests.faults.scenarios import ADMISSION_CASES, SERVERS, admission, admission_fallback


@pytest.mark.parametrize("server", SERVERS)
@pytest.mark.parametrize("case", list(ADMISSION_CASES))
async def test_refused_before_accept_with_its_http_status(case: str, server: str) -> None:
    outcome = await admission(case, server)
    assert outcome.held, "\n".join([outcome.observed, *outcome.failures])


@pytest.mark.parametrize("case", list(ADMISSION_CASES))
async def test_without_the_denial_extension_refused_by_a_close_before_accept(case: str) -> None:
    outcome = await admission_fallback(case)
    assert outcome.held, "\n".join([outcome.observed, *outcome.failures])
