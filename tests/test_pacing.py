"""Real-time pacing (section 5.2: the VAD needs real-time pace) and the control-message rate."""

from __future__ import annotations

import itertools

import pytest

from asgi_audio_proxy.pacing import CATCH_UP, Pacer, RateLimit


def test_a_real_time_client_is_never_held_back() -> None:
    pacer = Pacer(message_s=0.2, burst_s=1.0)
    for k in range(50):  # message k is whole at 0.2 * (k + 1) s
        now = 100.0 + 0.2 * (k + 1)
        pacer.received(6400, now)
        assert pacer.send_at(k) <= now
        assert pacer.lead_s(now) == pytest.approx(0.2)


def test_a_fast_client_is_paced_to_real_time_after_one_burst() -> None:
    pacer = Pacer(message_s=0.2, burst_s=0.4)
    pacer.received(32_000 * 3, now=10.0)  # 3 s of audio at once
    assert pacer.lead_s(10.0) == pytest.approx(3.0)
    assert [pacer.send_at(k) for k in range(4)] == pytest.approx([9.8, 10.0, 10.2, 10.4])
    assert pacer.lead_s(11.0) == pytest.approx(2.0)


def test_no_audio_no_lead() -> None:
    assert Pacer(0.2, 1.0).lead_s(5.0) == 0.0


def test_rate_limit_allows_a_burst_then_the_rate() -> None:
    limit = RateLimit(rate_per_s=2, burst=3)
    assert [limit.allow(0.0) for _ in range(4)] == [True, True, True, False]
    assert limit.allow(0.4) is False
    assert limit.allow(0.5) is True  # 0.5 s at 2/s refills one token
    assert limit.allow(10.0) and limit.allow(10.0) and limit.allow(10.0)
    assert not limit.allow(10.0)  # the bucket holds at most the burst


def test_a_clock_started_at_the_handshake_lets_audio_sent_while_connecting_go_at_once() -> None:
    # a phone call streams from its start; the session reads it 0.5 s later, once connected
    early, late = Pacer(0.2, 0.2), Pacer(0.2, 0.2)
    early.start(0.0)
    for pacer in (early, late):
        pacer.received(19_200, 0.5)  # the 0.6 s backlog, read at once
    assert [early.send_at(k) for k in range(3)] == pytest.approx([0.0, 0.2, 0.4])  # all due now
    assert late.send_at(2) == pytest.approx(0.9)  # without: late by the wait, for the whole call
    early.start(5.0)  # only the first start counts
    assert early.send_at(0) == pytest.approx(0.0)


def test_the_clock_is_started_by_start_or_by_the_first_audio() -> None:
    by_start, by_audio = Pacer(0.2, 0.2), Pacer(0.2, 0.2)
    assert not by_start.started and not by_audio.started
    by_start.start(1.0)
    by_audio.received(640, 1.0)
    assert by_start.started and by_audio.started


def test_audio_that_fell_behind_catches_up_at_a_quarter_over_real_time_not_at_once() -> None:
    pacer = Pacer(message_s=0.2, burst_s=0.2)
    pacer.start(0.0)
    pacer.received(32_000 * 2, now=2.0)  # two seconds of speech, read after a stall
    sent = [max(pacer.send_at(0), 2.0)]  # the first of what is due goes at once ...
    for k in range(1, 10):  # ... the rest one after another, each as soon as it may
        sent.append(max(pacer.send_at(k, sent[-1]), 2.0))
    gaps = [b - a for a, b in itertools.pairwise(sent)]
    assert gaps == pytest.approx([0.2 / CATCH_UP] * 9)  # a second of speech spans 0.8 s
    assert pacer.send_at(20, 3.0) == pytest.approx(4.0)  # back on schedule: real time again
