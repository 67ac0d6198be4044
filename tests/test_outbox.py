"""The client's outbox: bounded reply audio, events never dropped, barge-in clears audio."""

from __future__ import annotations

from asgi_audio_proxy.events import ReplyAudio, ReplyText, ServerEvent
from asgi_audio_proxy.session.outbox import Outbox


def drain(box: Outbox) -> list[str | bytes]:
    """Events as short stand-ins: a text's text, an audio event's bytes."""
    return [_short(box.get()) for _ in range(len(box))]


def _short(event: ServerEvent) -> str | bytes:
    if isinstance(event, ReplyAudio):
        return event.pcm
    assert isinstance(event, ReplyText)
    return event.text


def put(box: Outbox, item: str | bytes) -> int:
    return box.put(ReplyAudio(item, 16_000) if isinstance(item, bytes) else ReplyText(item))


def test_fifo_order_and_byte_count() -> None:
    box = Outbox(max_audio_bytes=100)
    put(box, "a")
    put(box, b"12345")
    put(box, "b")
    assert box.audio_bytes == 5
    assert drain(box) == ["a", b"12345", "b"]
    assert box.audio_bytes == 0


def test_overflow_drops_the_oldest_audio_never_events() -> None:
    box = Outbox(max_audio_bytes=10)
    put(box, b"aaaa")
    put(box, "event")
    put(box, b"bbbb")
    assert put(box, b"cccc") == 4  # 12 > 10: the oldest audio goes
    assert drain(box) == ["event", b"bbbb", b"cccc"]
    assert box.dropped_bytes == 4


def test_stop_drops_all_queued_audio_and_keeps_events() -> None:
    box = Outbox(max_audio_bytes=100)
    for message in (b"11", "t1", b"22", "t2"):
        put(box, message)
    assert box.drop_audio() == 4
    assert drain(box) == ["t1", "t2"]
