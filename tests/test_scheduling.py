"""The order the suite's tests are handed to workers in (``tests/scheduling.py``)."""

from __future__ import annotations

from tests.scheduling import spread_out


def test_the_tests_that_start_processes_are_spread_evenly_each_kind_over_the_run() -> None:
    docs = [f"tests/test_docs.py::test_docs_block_runs_as_written[{g}]" for g in "abc"]
    demo = ["tests/test_demo.py::test_one", "tests/test_demo.py::test_two"]
    rest = [f"tests/test_x.py::test_{i}" for i in range(12)]
    order = spread_out([*rest[:6], *docs, *demo, *rest[6:]], lambda nodeid: nodeid)
    assert sorted(order) == sorted([*rest, *docs, *demo])
    assert [n for n in order if n in rest] == rest  # the others keep their order
    # docs after 1/8, 3/8 and 5/8 of the twelve others (2, 4, 8), the demo's after 1/6 and 1/2 (2, 6)
    assert [order.index(n) for n in docs] == [2, 6, 12]
    assert [order.index(n) for n in demo] == [3, 9]
    assert order[-3:] == rest[-3:]  # none in the last stretch: the run ends with short tests


def test_a_docs_test_that_does_not_run_a_block_stays_in_place() -> None:
    ids = ["tests/test_docs.py::test_every_block_has_a_handler_or_a_reason", "tests/test_a.py::test"]
    assert spread_out(ids, lambda nodeid: nodeid) == ids
