"""How the suite's tests are spread over xdist's workers (hooked in by ``tests/conftest.py``).

Two rules on top of xdist's ``load`` distribution, test by test:

- :data:`SHARE_A_WORKER` modules go to one worker whole. All their tests read one module fixture
  that does their work at once, which every worker given one of them would otherwise do again,
  beside the others doing it too.
- :data:`SPREAD_OUT` tests are spread evenly through the run (:func:`spread_out`).
  Each starts several processes (servers, simulators, clients: seconds of CPU on both cores at
  once), while most other tests wait on real time (audio is paced). In collection order they
  came together: the cores were saturated for 40 s and a third idle for the rest of the run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from xdist.scheduler import LoadScopeScheduling

__all__ = ["SHARE_A_WORKER", "SPREAD_OUT", "SharedWorkScheduling", "spread_out"]

T = TypeVar("T")

#: the module, and the unit it goes in (one unit, one worker)
SHARE_A_WORKER = {
    "tests/faults/test_upstream_faults.py": "fault table",
    "tests/faults/test_bad_input.py": "fault table",
    "tests/faults/test_dialect_input.py": "fault table",
    "tests/faults/test_admission.py": "fault table",
    "tests/faults/test_shutdown.py": "fault table",  # the groups in turn, as python -m tests.faults
    "tests/faults/test_webrtc.py": "fault table",
    "tests/test_benchmarks.py": "quick benchmark",
}


#: the tests that start processes, by node id prefix: the docs blocks and the demo
SPREAD_OUT = ("tests/test_docs.py::test_docs_block_runs_as_written", "tests/test_demo.py::")


def spread_out(items: Sequence[T], nodeid: Callable[[T], str]) -> list[T]:
    """``items`` with those whose node id starts with one of :data:`SPREAD_OUT` at even
    intervals among the others: each prefix's over the whole run, the others in their order."""
    at: list[tuple[float, int, T]] = []  # (share of the run, then order) for each spread item
    for prefix in SPREAD_OUT:
        group = [item for item in items if nodeid(item).startswith(prefix)]
        at += [((k + 0.5) / (len(group) + 1), len(at), item) for k, item in enumerate(group)]
    rest = [item for item in items if not nodeid(item).startswith(SPREAD_OUT)]
    out: list[T] = []
    taken = 0
    for share, _, item in sorted(at, key=lambda entry: entry[:2]):  # ending short of the
        cut = round(share * len(rest))  # last stretch, so the last of them ends with the run
        out += rest[taken:cut]
        out.append(item)
        taken = cut
    return out + rest[taken:]


class SharedWorkScheduling(LoadScopeScheduling):
    """xdist's ``load`` distribution, except that :data:`SHARE_A_WORKER` modules go whole (and
    first, being the largest units). xdist's own ``xdist_group`` mark would do this by renaming
    each test, which pytest 9 no longer allows."""

    def _split_scope(self, nodeid: str) -> str:
        return SHARE_A_WORKER.get(nodeid.split("::", 1)[0], nodeid)
