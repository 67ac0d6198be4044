"""Byte accounting: every byte of client audio ends in exactly one bucket."""

from __future__ import annotations

from asgi_audio_proxy.events import AudioOutcome
from asgi_audio_proxy.session.stats import AudioLedger, SessionStats


def test_each_byte_ends_in_one_bucket() -> None:
    stats = SessionStats("s")
    ledger = AudioLedger(stats)
    ledger.received(30_000)
    ledger.dropped("oversize", 3_000)
    ledger.outcome(AudioOutcome(6_400, "sent", "done"))
    ledger.outcome(AudioOutcome(6_400, "skipped", "skip"))
    assert not stats.balanced  # still on its way
    # what the upstream adapter still held: two messages and a part buffered, one in flight
    ledger.settle({"session_end": 6_400 + 1_400, "unacknowledged": 6_400})
    assert stats.balanced
    assert stats.sent_bytes == stats.skipped_bytes == 6_400
    assert stats.dropped_bytes == {"oversize": 3_000, "session_end": 6_400 + 1_400,
                                   "unacknowledged": 6_400}
    assert dict(stats.acks) == {"done": 1, "skip": 1}


def test_error_acknowledgements_count_as_rejected() -> None:
    stats = SessionStats("s")
    ledger = AudioLedger(stats)
    ledger.received(6_400)
    ledger.outcome(AudioOutcome(6_400, "rejected", "error"))
    ledger.settle({})
    assert stats.dropped_bytes == {"upstream_rejected": 6_400} and stats.balanced
    assert dict(stats.acks) == {"error": 1}
    assert "received 6400 B" in stats.summary()
