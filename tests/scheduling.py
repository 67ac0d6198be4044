"""How the suite's tests are spread over xdist's workers (hooked in by ``tests/conftest.py``).

Two rules on top of xdist's ``load`` distribution, test by test:

- :data:`SHARE_A_WORKER` modules go to one worker whole: all their tests read one module
  fixture that does their work at once, which every worker given one of them would do again.
- the longest tests start first: each test's time in the last runs is kept in pytest's cache,
  and collection orders the tests by it, longest first (tests it has not seen stay in
  collection order, after those). A long test that starts last keeps one worker busy after the
  others have finished; started first, it overlaps the short ones.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest
from xdist.scheduler import LoadScopeScheduling

__all__ = ["SHARE_A_WORKER", "DurationMemo", "SharedWorkScheduling", "longest_first"]

#: the module, and the unit it goes in (one unit, one worker)
SHARE_A_WORKER = {
    "tests/faults/test_upstream_faults.py": "fault table",
    "tests/faults/test_bad_input.py": "fault table",
    "tests/faults/test_dialect_input.py": "fault table",
    "tests/faults/test_admission.py": "fault table",
    "tests/faults/test_shutdown.py": "fault table",  # the groups in turn, as python -m tests.faults
    "tests/test_benchmarks.py": "quick benchmark",
}
_CACHE_KEY = "asgi_audio_proxy/test_seconds"


class SharedWorkScheduling(LoadScopeScheduling):
    """xdist's ``load`` distribution, except that :data:`SHARE_A_WORKER` modules go whole (and
    first, being the largest units). xdist's own ``xdist_group`` mark would do this by renaming
    each test, which pytest 9 no longer allows."""

    def _split_scope(self, nodeid: str) -> str:
        return SHARE_A_WORKER.get(nodeid.split("::", 1)[0], nodeid)


def longest_first(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Order an xdist worker's ``items`` by their time in the last runs, longest first; every
    worker reads the same cache, so all of them collect the same order, as xdist requires. One
    process alone runs them in collection order: it gains nothing, and module fixtures would be
    made again each time the order came back to their module."""
    cache = getattr(config, "cache", None)
    if not hasattr(config, "workerinput"):
        return
    seconds: dict[str, float] = cache.get(_CACHE_KEY, {}) if cache is not None else {}
    items.sort(key=lambda item: -seconds.get(item.nodeid, 0.0))


class DurationMemo:
    """Keeps each test's time (setup, call and teardown) in pytest's cache, where the next run's
    :func:`longest_first` reads it. Registered in the process that reports: the controller
    under xdist, or the only process without it."""

    def __init__(self, config: pytest.Config) -> None:
        self._config = config
        self._seconds: defaultdict[str, float] = defaultdict(float)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._seconds[report.nodeid] += report.duration

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        cache = getattr(self._config, "cache", None)
        if cache is None or not self._seconds:
            return
        known: dict[str, Any] = cache.get(_CACHE_KEY, {})
        cache.set(_CACHE_KEY, {**known, **{k: round(v, 3) for k, v in self._seconds.items()}})
