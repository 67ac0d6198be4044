"""Reply playback on a phone line: pieces of 20-60 ms, a mark after each, heard vs cleared."""

from __future__ import annotations

import pytest

from asgi_audio_proxy.dialects.twilio.playback import MAX_UNECHOED_MARKS, ReplyPlayback, UnknownMark


def test_pieces_are_cut_to_piece_ms_when_more_is_waiting() -> None:
    playback = ReplyPlayback(piece_ms=20)
    pieces = playback.feed(b"\x01" * 8 * 100)  # 100 ms at once
    assert [len(p) for p, _ in pieces] == [160, 160, 480]  # the last 60 ms fit one piece
    assert [name for _, name in pieces] == ["r1.1", "r1.2", "r1.3"]


def test_audio_short_of_a_piece_waits_for_more() -> None:
    playback = ReplyPlayback()
    assert playback.feed(b"\x01" * 100) == []
    assert [len(p) for p, _ in playback.feed(b"\x01" * 100)] == [200]


def test_each_reply_names_its_marks_afresh() -> None:
    playback = ReplyPlayback()
    playback.feed(b"\x01" * 160)
    playback.start_reply()
    assert [name for _, name in playback.feed(b"\x01" * 160)] == ["r2.1"]


def test_a_lost_echo_is_counted_with_the_next_one() -> None:
    playback = ReplyPlayback()
    names = [name for _, name in playback.feed(b"\x01" * 8 * 120)]
    playback.echoed(names[2])  # the first two echoes never came: they played before it
    assert playback.reply_heard_ms == 120 and playback.pending_ms == 0
    with pytest.raises(UnknownMark):
        playback.echoed(names[0])


def test_heard_counts_only_the_current_reply_and_totals_everything() -> None:
    playback = ReplyPlayback()
    first = [name for _, name in playback.feed(b"\x01" * 320)]
    playback.start_reply()
    second = [name for _, name in playback.feed(b"\x01" * 160)]
    playback.echoed(first[-1])
    playback.echoed(second[-1])
    assert playback.reply_heard_ms == 20 and playback.counts.heard_ms == 60


def test_a_peer_that_never_echoes_does_not_grow_the_ledger_without_end() -> None:
    playback = ReplyPlayback()
    for _ in range(MAX_UNECHOED_MARKS + 10):
        playback.feed(b"\x01" * 160)
    counts = playback.counts
    assert counts.pending_ms == MAX_UNECHOED_MARKS * 20
    assert counts.heard_ms == 10 * 20 and counts.sent_ms == (MAX_UNECHOED_MARKS + 10) * 20


@pytest.mark.parametrize("piece_ms", [10, 61])
def test_piece_ms_outside_20_to_60_is_refused(piece_ms: int) -> None:
    with pytest.raises(ValueError, match="piece_ms"):
        ReplyPlayback(piece_ms=piece_ms)
