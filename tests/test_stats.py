"""Byte accounting: every byte of client audio ends in exactly one bucket."""

from __future__ import annotations

from asgi_audio_proxy.session.stats import AudioLedger, SessionStats


def test_each_byte_ends_in_one_bucket() -> None:
    stats = SessionStats("s")
    ledger = AudioLedger(stats)
    ledger.received(30_000)
    ledger.dropped("oversize", 3_000)
    for _ in range(4):
        ledger.queued(6_400)
    for _ in range(3):
        ledger.sending(6_400)
    ledger.acknowledged(6_400, "done")
    ledger.acknowledged(6_400, "skip")
    assert not stats.balanced  # still on its way
    ledger.settle(buffered_bytes=30_000 - 3_000 - 4 * 6_400)
    assert stats.balanced
    assert stats.sent_bytes == stats.skipped_bytes == 6_400
    assert stats.dropped_bytes == {"oversize": 3_000, "session_end": 6_400 + 1_400,
                                   "unacknowledged": 6_400}
    assert dict(stats.acks) == {"done": 1, "skip": 1}


def test_error_acknowledgements_count_as_rejected() -> None:
    stats = SessionStats("s")
    ledger = AudioLedger(stats)
    ledger.received(6_400)
    ledger.queued(6_400)
    ledger.sending(6_400)
    ledger.acknowledged(6_400, None)
    ledger.settle(0)
    assert stats.dropped_bytes == {"upstream_rejected": 6_400} and stats.balanced
    assert "received 6400 B" in stats.summary()
