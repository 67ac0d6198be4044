"""The overload row's verdict (benchmarks.overload.judge), from load results built by hand."""

from __future__ import annotations

from benchmarks.load import LoadResult
from benchmarks.overload import judge, overload_rows

REFUSED = "session 7: InvalidStatus: server rejected WebSocket connection: HTTP 503"


def _load(**fields: object) -> LoadResult:
    load = LoadResult(target="proxy-overload", sessions=20, window_s=2.0,
                      latency_ms={"p50": 1.0, "p99": 4.0})
    for name, value in fields.items():
        setattr(load, name, value)
    return load


def test_late_sessions_refused_with_503_and_the_admitted_served_is_a_valid_run() -> None:
    load = _load(connect_failures=[REFUSED] * 10)
    load.invalidate("10 of 20 sessions failed to connect")  # what run_load says of any refusal
    run = judge(10, load)
    assert run.valid, run.invalid_reasons
    assert (run.admitted, run.refused_at_admission, run.internal_errors) == (10, 10, [])
    assert [row.holds for row in overload_rows(run)] == [True, True, True]


def test_an_internal_error_makes_the_run_invalid() -> None:
    load = _load(connect_failures=[REFUSED] * 10, session_errors=["internal error in the proxy"],
                 unexpected_closes=[1011])
    run = judge(10, load)
    assert not run.valid and len(run.internal_errors) == 2
    assert overload_rows(run)[1].holds is False


def test_a_session_that_failed_other_than_by_a_503_makes_the_run_invalid() -> None:
    run = judge(10, _load(connect_failures=[REFUSED] * 9 + ["session 3: TimeoutError: "]))
    assert not run.valid and run.other_failures == ["session 3: TimeoutError: "]
    assert overload_rows(run)[0].holds is False


def test_a_load_that_fell_behind_stays_invalid() -> None:
    load = _load(connect_failures=[REFUSED] * 10)
    load.invalidate("load generator fell behind (late p99 12.1 ms, max 19.8 ms)")
    run = judge(10, load)
    assert run.invalid_reasons == ["load generator fell behind (late p99 12.1 ms, max 19.8 ms)"]
