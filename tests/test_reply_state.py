"""The reply's transition table: every phase x input, legal moves and refused ones."""

from __future__ import annotations

import itertools

import pytest

from asgi_audio_proxy.reply_state import (
    TRANSITIONS,
    ReplyInput,
    ReplyLifecycle,
    ReplyOrderError,
    ReplyPhase,
    next_phase,
)

#: the table, written out again by hand: ``(phase, input) -> phase``, or ``None`` when refused
EXPECTED: dict[tuple[str, str], str | None] = {
    ("idle", "start"): "playing", ("idle", "more"): None, ("idle", "cut"): None,
    ("idle", "end"): None, ("idle", "close"): "idle",
    ("playing", "start"): None, ("playing", "more"): "playing", ("playing", "cut"): "cut",
    ("playing", "end"): "done", ("playing", "close"): None,
    ("cut", "start"): "playing", ("cut", "more"): "cut", ("cut", "cut"): None,
    ("cut", "end"): None, ("cut", "close"): "idle",
    ("done", "start"): "playing", ("done", "more"): None, ("done", "cut"): None,
    ("done", "end"): None, ("done", "close"): "idle",
}
#: a shortest way from IDLE to each phase
ROUTE: dict[ReplyPhase, list[ReplyInput]] = {
    ReplyPhase.IDLE: [],
    ReplyPhase.PLAYING: [ReplyInput.START],
    ReplyPhase.CUT: [ReplyInput.START, ReplyInput.CUT],
    ReplyPhase.DONE: [ReplyInput.START, ReplyInput.END],
}


def at(phase: ReplyPhase) -> ReplyLifecycle:
    lifecycle = ReplyLifecycle("test")
    for event in ROUTE[phase]:
        lifecycle.apply(event)
    assert lifecycle.phase is phase
    return lifecycle


def test_the_table_covers_every_phase_and_input_it_is_written_for() -> None:
    assert set(TRANSITIONS) == set(ReplyPhase)
    assert set(EXPECTED) == {(p.value, i.value) for p, i in itertools.product(ReplyPhase, ReplyInput)}
    table = {(p.value, i.value): (TRANSITIONS[p][i].value if i in TRANSITIONS[p] else None)
             for p, i in itertools.product(ReplyPhase, ReplyInput)}
    assert table == EXPECTED


@pytest.mark.parametrize(("phase", "event"), list(itertools.product(ReplyPhase, ReplyInput)),
                         ids=lambda v: v.value)
def test_every_phase_and_input(phase: ReplyPhase, event: ReplyInput) -> None:
    lifecycle = at(phase)
    expected = EXPECTED[phase.value, event.value]
    assert lifecycle.can(event) is (expected is not None)
    if expected is not None:
        assert lifecycle.apply(event) is ReplyPhase(expected)
        assert lifecycle.phase is ReplyPhase(expected)
        assert next_phase(phase, event) is ReplyPhase(expected)
        return
    with pytest.raises(ReplyOrderError) as refused:
        lifecycle.apply(event)
    assert lifecycle.phase is phase  # an illegal move leaves the phase as it was
    assert (refused.value.phase, refused.value.event, refused.value.who) == (phase, event, "test")
    assert f"test: cannot {event.value} a reply that is {phase.value}" in str(refused.value)
    with pytest.raises(ReplyOrderError):
        next_phase(phase, event)


@pytest.mark.parametrize("phase", list(ReplyPhase), ids=lambda p: p.value)
def test_the_predicates_read_the_phase(phase: ReplyPhase) -> None:
    lifecycle = at(phase)
    assert lifecycle.is_playing is (phase is ReplyPhase.PLAYING)
    assert lifecycle.is_cut is (phase is ReplyPhase.CUT)
    assert lifecycle.is_open is (phase is not ReplyPhase.IDLE)
    assert phase.value in repr(lifecycle)


def test_the_named_moves_are_the_table_s() -> None:
    lifecycle = ReplyLifecycle()
    lifecycle.start()
    lifecycle.more()
    lifecycle.cut()
    lifecycle.more()  # a piece of the cut reply still arriving: dropped
    lifecycle.start()  # the next reply before the cut one's stream closed
    lifecycle.end()
    lifecycle.close()
    assert lifecycle.phase is ReplyPhase.IDLE
    refused = r"reply: cannot end a reply that is idle \(allowed: close, start\)"
    with pytest.raises(ReplyOrderError, match=refused):
        lifecycle.end()


def test_the_table_cannot_be_changed() -> None:
    with pytest.raises(TypeError):
        TRANSITIONS[ReplyPhase.IDLE][ReplyInput.CUT] = ReplyPhase.CUT  # type: ignore[index]
