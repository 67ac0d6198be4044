"""How the suite's tests are spread over xdist's workers (hooked in by ``tests/conftest.py``).

Two rules on top of xdist's ``load`` distribution, test by test: :data:`SHARE_A_WORKER` modules
go to one worker whole. All their tests read one module fixture that does their work at once,
which every worker given one of them would otherwise do again, beside the others doing it too.
And :data:`START_FIRST` modules, whose tests take 10 to 30 s each, are handed out before the
rest: one of them handed out last would run alone at the end, while the other workers wait.
"""

from __future__ import annotations

from xdist.scheduler import LoadScopeScheduling

__all__ = ["SHARE_A_WORKER", "START_FIRST", "SharedWorkScheduling"]

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

#: modules of long single tests (a demo's talk, a page's whole recipe set, a browser call), in
#: the order they start; the rest follow in collection order
START_FIRST = (
    "tests/test_docs.py",
    "tests/test_demo.py",
    "tests/vllm_duplex/test_control.py",
    "tests/minicpm_demo/test_dialects.py",
    "tests/test_browser_barge_in.py",
    "tests/dialects/test_realtime_barge_in.py",
    "tests/test_barge_in.py",
    "tests/faults/test_resume.py",
)


def _start_rank(nodeid: str) -> int:
    module = nodeid.split("::", 1)[0]
    return START_FIRST.index(module) if module in START_FIRST else len(START_FIRST)


class SharedWorkScheduling(LoadScopeScheduling):
    """xdist's ``load`` distribution, except that :data:`SHARE_A_WORKER` modules go whole (and
    first, being the largest units). xdist's own ``xdist_group`` mark would do this by renaming
    each test, which pytest 9 no longer allows."""

    def schedule(self) -> None:
        if self.collection is None:  # the first distribution: the long ones first
            for node, collection in self.registered_collections.items():
                self.registered_collections[node] = sorted(collection, key=_start_rank)
        super().schedule()

    def _split_scope(self, nodeid: str) -> str:
        return SHARE_A_WORKER.get(nodeid.split("::", 1)[0], nodeid)
