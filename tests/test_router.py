"""Reply routing: echo dropped (4.2), <end> (4.2, 7), special tokens (9.3), rates (7), stop (8)."""

from __future__ import annotations

import base64
import json

import pytest

from asgi_audio_proxy.audio import Resampler, pcm16_to_wav
from asgi_audio_proxy.dialects.native import NativeDialect
from asgi_audio_proxy.errors import UpstreamError, UpstreamProtocolError
from asgi_audio_proxy.events import ReplyAudio, ReplyStarted, UpstreamEvent
from asgi_audio_proxy.reply_state import ReplyPhase
from asgi_audio_proxy.upstreams.minicpm.replies import ReplyRouter
from asgi_audio_proxy.upstreams.minicpm.wire import ReplyError, ReplyMessage
from tests.signals import dominant_frequency_hz, tone


def wav_b64(pcm: bytes, rate: int) -> str:
    return base64.b64encode(pcm16_to_wav(pcm, rate)).decode()


def texts(events: list[UpstreamEvent]) -> list[dict[str, object]]:
    """The events as the native dialect words them (text and turn_end)."""
    return [json.loads(f) for e in events for f in NativeDialect(1000).send(e)
            if isinstance(f, str)]


def audio(events: list[UpstreamEvent], rate_hz: int = 16_000) -> bytes:
    """The reply audio, resampled to ``rate_hz`` as the session does (one resampler per reply)."""
    pieces = [e for e in events if isinstance(e, ReplyAudio)]
    if not pieces or pieces[0].rate_hz == rate_hz:
        return b"".join(e.pcm for e in pieces)
    resampler = Resampler(pieces[0].rate_hz, rate_hz)
    return b"".join(resampler.feed(e.pcm) for e in pieces) + resampler.flush()


ECHO = ReplyMessage("assistant:\n", wav_b64(tone(300, 0.2), 16_000), 0)


def test_s4_2_first_message_is_the_echo_and_is_never_played() -> None:
    router = ReplyRouter()
    assert router.route(ECHO) == []
    assert router.state is ReplyPhase.PLAYING


@pytest.mark.parametrize(("rate", "seconds"), [(24_000, 0.5333), (16_000, 1.0)])
def test_s7_reply_audio_reaches_the_client_at_16khz(rate: int, seconds: float) -> None:
    router = ReplyRouter()
    router.route(ECHO)
    pcm = tone(440, seconds * 3, rate_hz=rate)
    third = len(pcm) // 3 // 2 * 2
    out: list[str | bytes] = []
    for i in range(3):
        out += router.route(ReplyMessage(f"part {i}", wav_b64(pcm[i * third:(i + 1) * third], rate), i))
    out += router.route(ReplyMessage("\n<end>", None, 3))
    assert dominant_frequency_hz(audio(out)) == pytest.approx(440, abs=5)
    assert len(audio(out)) // 2 == pytest.approx(16_000 * seconds * 3, abs=300)
    assert [t["content"] for t in texts(out) if t["type"] == "text"] == ["part 0", "part 1", "part 2"]
    assert texts(out)[-1] == {"type": "turn_end", "reason": "complete"}
    assert isinstance(out[0], ReplyStarted)


def test_s9_3_special_tokens_are_stripped_and_end_matched_as_substring() -> None:
    router = ReplyRouter()
    router.route(ECHO)
    out = router.route(ReplyMessage("Hello<|tts_eos|> there", None, 1))
    assert texts(out) == [{"type": "text", "content": "Hello there"}]
    out = router.route(ReplyMessage("!\n<end><timing>1.2</timing>", None, 2))  # a fork's suffix
    assert texts(out) == [{"type": "text", "content": "!\n"}, {"type": "turn_end", "reason": "complete"}]


def test_s8_stop_cuts_the_reply_and_drops_the_rest_whichever_way_it_ends() -> None:
    router = ReplyRouter()
    router.route(ECHO)
    router.route(ReplyMessage("a", wav_b64(tone(440, 0.5, 24_000), 24_000), 1))
    assert router.cut() is True
    assert router.route(ReplyMessage("b", wav_b64(tone(440, 0.5, 24_000), 24_000), 2)) == []
    assert router.route(ReplyMessage("\n<end>", None, 3)) == []
    assert router.body_closed() == []
    assert router.stats.cut_messages == 2
    assert router.state is ReplyPhase.IDLE
    assert router.route(ECHO) == []  # the next turn starts with its own echo
    assert texts(router.route(ReplyMessage("next", None, 10))) == [{"type": "text", "content": "next"}]


def test_cut_with_no_reply_playing_does_nothing() -> None:
    router = ReplyRouter()
    assert router.cut() is False
    assert router.state is ReplyPhase.IDLE


def test_s4_3_body_ending_without_end_marker_ends_the_turn_as_interrupted() -> None:
    router = ReplyRouter()
    router.route(ECHO)
    router.route(ReplyMessage("a", wav_b64(tone(440, 0.2, 24_000), 24_000), 1))
    out = router.body_closed()
    assert texts(out)[-1] == {"type": "turn_end", "reason": "interrupted"}


def test_s4_3_body_with_only_the_event_line_is_a_quiet_turn() -> None:
    assert ReplyRouter().body_closed() == []


def test_s4_3_server_error_event_is_an_upstream_error() -> None:
    with pytest.raises(UpstreamError, match="exc"):
        ReplyRouter().route(ReplyError("name 'exc' is not defined"))


def test_unreadable_reply_audio_is_a_protocol_error() -> None:
    router = ReplyRouter()
    router.route(ECHO)
    with pytest.raises(UpstreamProtocolError):
        router.route(ReplyMessage("x", base64.b64encode(b"raw pcm").decode(), 1))


def test_stereo_reply_audio_is_mixed_down() -> None:
    router = ReplyRouter()
    router.route(ECHO)
    mono = tone(440, 0.5)
    stereo = bytes(b for i in range(0, len(mono), 2) for b in mono[i:i + 2] * 2)
    wav = base64.b64encode(pcm16_to_wav(stereo, 16_000, channels=2)).decode()
    assert audio(router.route(ReplyMessage("", wav, 1))) == mono
