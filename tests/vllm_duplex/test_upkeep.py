"""``DuplexUpkeep``: what a duplex conversation owes its server as time passes, on a clock the
test passes in: silence while the model's input must flow, ``session.event_ack`` and
``session.heartbeat`` on their schedules."""

from __future__ import annotations

import base64
import json

from asgi_audio_proxy.upstreams.vllm_duplex import EVENT_ACK_INTERVAL_S, DuplexSettings, DuplexUpkeep

RATE_HZ = 16_000


def silence_s(message: str | None) -> float:
    """The seconds of silence an ``input_audio_buffer.append`` carries (all of it zeros)."""
    assert message is not None
    event = json.loads(message)
    assert event["type"] == "input_audio_buffer.append"
    pcm = base64.b64decode(event["audio"])
    assert pcm == bytes(len(pcm))
    return len(pcm) / 2 / RATE_HZ


def test_silence_covers_a_gap_longer_than_the_allowed_one_until_the_trailing_silence_ends() -> None:
    upkeep = DuplexUpkeep(DuplexSettings(trailing_silence_s=1.0, max_input_gap_s=0.2))
    upkeep.heard(RATE_HZ, now=10.0)  # half a second of the client's audio: input covered to 10.5
    assert upkeep.silence_due(10.7, is_reply_busy=False) is None  # a gap of 0.2 s is left as it is
    assert silence_s(upkeep.silence_due(10.8, is_reply_busy=False)) == 0.3
    assert upkeep.silence_due(10.9, is_reply_busy=False) is None  # covered to 10.8 now
    assert silence_s(upkeep.silence_due(11.4, is_reply_busy=False)) == 0.6
    # the trailing silence ran to 11.5: past it, none, unless a reply is in progress
    assert upkeep.silence_due(12.0, is_reply_busy=False) is None
    assert silence_s(upkeep.silence_due(12.0, is_reply_busy=True)) == 0.6


def test_the_clients_audio_after_a_pause_counts_from_when_it_came() -> None:
    upkeep = DuplexUpkeep(DuplexSettings(trailing_silence_s=1.0, max_input_gap_s=0.2))
    upkeep.heard(RATE_HZ, now=0.0)
    upkeep.heard(RATE_HZ // 2, now=5.0)  # a quarter second, five seconds on: covered to 5.25
    assert upkeep.silence_due(5.4, is_reply_busy=False) is None
    assert silence_s(upkeep.silence_due(5.5, is_reply_busy=False)) == 0.25


def test_no_silence_before_the_client_said_anything_or_while_nothing_plays() -> None:
    upkeep = DuplexUpkeep(DuplexSettings())
    assert upkeep.silence_due(100.0, is_reply_busy=False) is None


def test_events_read_are_acknowledged_at_most_once_an_interval_and_only_when_new() -> None:
    upkeep = DuplexUpkeep(DuplexSettings(heartbeat_interval_s=None))
    upkeep.start(0.0)
    assert upkeep.urgent_due(0.1, last_seq=0) == []
    assert [json.loads(m) for m in upkeep.urgent_due(0.2, last_seq=3)] == [
        {"type": "session.event_ack", "server_event_seq": 3}]
    assert upkeep.urgent_due(0.2 + EVENT_ACK_INTERVAL_S / 2, last_seq=5) == []
    assert [json.loads(m)["server_event_seq"] for m in upkeep.urgent_due(1.2, last_seq=5)] == [5]
    assert upkeep.urgent_due(10.0, last_seq=5) == []  # nothing new


def test_heartbeats_go_every_interval_from_the_start_and_again_after_a_resume() -> None:
    upkeep = DuplexUpkeep(DuplexSettings(heartbeat_interval_s=0.5))
    upkeep.start(0.0)
    beats = [now for now in (0.4, 0.5, 0.6, 0.9, 1.0) if upkeep.urgent_due(now, last_seq=0)]
    assert beats == [0.5, 1.0]
    upkeep.start(7.0)  # a new socket: the schedule starts again
    assert upkeep.urgent_due(7.4, last_seq=0) == []
    assert [json.loads(m) for m in upkeep.urgent_due(7.5, last_seq=0)] == [{"type": "session.heartbeat"}]
