"""How the suite's tests are spread over xdist's workers (hooked in by ``tests/conftest.py``).

One rule on top of xdist's ``load`` distribution, test by test: :data:`SHARE_A_WORKER` modules
go to one worker whole. All their tests read the outcome of one batch that does their work at
once, which every worker given one of them would otherwise do again, beside the others doing it
too.
"""

from __future__ import annotations

from xdist.scheduler import LoadScopeScheduling

__all__ = ["SHARE_A_WORKER", "SharedWorkScheduling"]

#: the module, and the unit it goes in (one unit, one worker)
SHARE_A_WORKER = {
    # the fault table's groups, each a unit of its own: one worker running them all in turn, as
    # python -m tests.faults does, was the suite's longest chain (154 s of a 188 s run; each
    # group sizes how many of its rows run at once by the CPU its worker gets)
    "tests/faults/test_upstream_faults.py": "fault table: upstream",
    "tests/faults/test_bad_input.py": "fault table: client",
    "tests/faults/test_dialect_input.py": "fault table: dialect",
    "tests/faults/test_admission.py": "fault table: admission",
    "tests/faults/test_shutdown.py": "fault table: shutdown",
    "tests/faults/test_webrtc.py": "fault table: webrtc",
    "tests/test_benchmarks.py": "quick benchmark",
}


class SharedWorkScheduling(LoadScopeScheduling):
    """xdist's ``load`` distribution, except that :data:`SHARE_A_WORKER` modules go whole (and
    first, being the largest units). xdist's own ``xdist_group`` mark would do this by renaming
    each test, which pytest 9 no longer allows."""

    def _split_scope(self, nodeid: str) -> str:
        return SHARE_A_WORKER.get(nodeid.split("::", 1)[0], nodeid)
