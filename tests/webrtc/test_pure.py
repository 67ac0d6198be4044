"""The call's pure parts: the offer read and checked, the playout and its events, the dialect;
and the calls benchmark's verdicts."""

from __future__ import annotations

import json

import pytest

from asgi_audio_proxy.config import ProxyConfig
from asgi_audio_proxy.events import AudioIn, ReplyAudio, ReplyEnded, ReplyStarted, ReplyText, StopReply
from asgi_audio_proxy.webrtc.dialect import WebRTCDialect
from asgi_audio_proxy.webrtc.offer import CallRefused, advertise, read_offer
from asgi_audio_proxy.webrtc.playout import Playout
from benchmarks.webrtc_calls import largest_valid, webrtc_rows
from benchmarks.webrtc_clients import CallsRun
from tests.dialects.realtime_support import dialect as realtime
from tests.signals import tone

SDP = "\r\n".join(["v=0", "o=- 1 2 IN IP4 0.0.0.0", "s=-", "t=0 0",
                   "m=audio 9 UDP/TLS/RTP/SAVPF 111", "a=fingerprint:sha-256 AA:BB",
                   "m=application 9 UDP/DTLS/SCTP webrtc-datachannel", ""])


def test_an_sdp_offer_is_read_from_either_body() -> None:
    assert read_offer("application/sdp", SDP.encode()).sdp == SDP
    offer = read_offer("multipart/form-data; boundary=x", b"",
                       {"sdp": SDP, "session": '{"instructions": "be brief"}'})
    assert offer.sdp == SDP and offer.session == {"instructions": "be brief"}


@pytest.mark.parametrize(("content_type", "body", "form", "status", "code"), [
    ("application/sdp", b"hello", None, 400, "invalid_offer"),
    ("application/sdp", SDP.replace("m=audio", "m=video").encode(), None, 400, "missing_audio"),
    ("application/sdp", SDP.replace("a=fingerprint", "a=x").encode(), None, 400, "invalid_offer"),
    ("application/json", b"{}", None, 415, "unsupported_content_type"),
    ("multipart/form-data", b"", {"session": "{}"}, 400, "missing_required_parameter"),
    ("multipart/form-data", b"", {"sdp": SDP, "session": "{"}, 400, "invalid_json"),
    ("application/sdp", b"v=0\n" + b"a" * 70_000, None, 413, "invalid_offer"),
])
def test_a_bad_offer_is_refused_with_why(content_type: str, body: bytes, form: dict[str, str] | None,
                                         status: int, code: str) -> None:
    with pytest.raises(CallRefused) as refused:
        read_offer(content_type, body, form)
    assert (refused.value.status_code, refused.value.code) == (status, code)


def test_the_advertised_address_replaces_host_candidates_only() -> None:
    answer = ("v=0\r\nc=IN IP4 10.0.0.5\r\na=candidate:1 1 udp 2130706431 10.0.0.5 40000 typ host\r\n"
              "a=candidate:2 1 udp 1694498815 1.2.3.4 40001 typ srflx raddr 10.0.0.5 rport 40000\r\n")
    out = advertise(answer, "203.0.113.7")
    assert "a=candidate:1 1 udp 2130706431 203.0.113.7 40000 typ host" in out
    assert "1.2.3.4 40001 typ srflx" in out and "c=IN IP4 203.0.113.7" in out


def test_playout_frames_events_and_clear() -> None:
    playout = Playout(24_000)
    assert playout.take() == bytes(960) and playout.events() == []
    playout.response("resp_1")
    playout.push(b"\x01\x00" * 700)  # 1.5 frames
    playout.end()
    first = playout.take()
    assert first == b"\x01\x00" * 480
    assert playout.events() == [{"type": "output_audio_buffer.started", "response_id": "resp_1"}]
    second = playout.take()
    assert second == b"\x01\x00" * 220 + bytes(520)
    assert playout.events() == [{"type": "output_audio_buffer.stopped", "response_id": "resp_1"}]
    playout.response("resp_2")
    playout.push(b"\x01\x00" * 2000)
    playout.take()
    assert playout.clear() == (2000 - 480) * 2
    assert [e["type"] for e in playout.events()] == ["output_audio_buffer.started",
                                                      "output_audio_buffer.cleared"]
    playout.push(b"\x01\x00" * 2000)  # what was on its way of the cleared response
    assert playout.take() == bytes(960) and playout.clear() == 0 and playout.events() == []
    playout.response("resp_3")
    playout.push(b"\x01\x00" * 480)
    assert playout.take() == b"\x01\x00" * 480


def test_the_dialect_sends_audio_to_the_track_and_clears_it_on_cancel() -> None:
    playout = Playout(24_000)
    d = WebRTCDialect(realtime(), playout)
    [audio_in] = d.receive(tone(440, 0.1, 24_000))
    assert audio_in == AudioIn(tone(440, 0.1, 24_000), 24_000, wire_bytes=len(tone(440, 0.1, 24_000)))
    d.send(ReplyStarted())
    d.send(ReplyText("Hi"))
    frames = d.send(ReplyAudio(tone(440, 0.1, 24_000), 24_000))
    assert frames[-1] == tone(440, 0.1, 24_000)
    assert not any(isinstance(f, str) and "output_audio.delta" in f for f in frames)
    playout.push(frames[-1])  # what the call does with a PCM frame
    assert d.receive(json.dumps({"type": "response.cancel"})) == [StopReply("client")]
    assert playout.queued_ms == 0
    done = [json.loads(f) for f in d.send(ReplyEnded("stopped", "client")) if isinstance(f, str)]
    assert done[-1]["type"] == "response.done"
    assert done[-1]["response"]["status"] == "cancelled"
    assert [e["type"] for e in playout.events()] == ["output_audio_buffer.cleared"]


def test_output_audio_buffer_clear_is_honoured_and_audio_config_kept() -> None:
    playout = Playout(24_000)
    d = WebRTCDialect(realtime(), playout)
    playout.push(b"\x01\x00" * 4800)
    assert d.receive('{"type":"output_audio_buffer.clear"}') == []
    assert playout.queued_ms == 0
    assert d.output_rate_hz == 24_000 and ProxyConfig().max_message_bytes > 0


def test_a_session_update_cannot_change_the_audio_formats_of_a_call() -> None:
    d = WebRTCDialect(realtime(), Playout(24_000))
    d.receive(json.dumps({"type": "session.update", "session": {
        "type": "realtime", "instructions": "Be brief.",
        "audio": {"input": {"format": {"type": "audio/pcmu"}},
                  "output": {"format": {"type": "audio/pcmu"}}}}}))
    [audio_in] = d.receive(tone(440, 0.1, 24_000))  # still PCM at 24 kHz, not read as μ-law
    assert audio_in == AudioIn(tone(440, 0.1, 24_000), 24_000, wire_bytes=len(tone(440, 0.1, 24_000)))
    assert d.output_rate_hz == 24_000


def test_the_calls_benchmark_names_the_largest_valid_count_and_what_broke_the_next() -> None:
    def run(transport: str, calls: int, **figures: object) -> CallsRun:
        r = CallsRun(transport, calls, cpu_ms=20.0 if transport == "websocket" else 60.0, turns=30,
                     latencies_ms=[1200.0 if transport == "websocket" else 1400.0] * 30)
        for name, value in figures.items():
            setattr(r, name, value)
        return r

    runs = [run("websocket", 10), run("webrtc", 10), run("websocket", 50),
            run("webrtc", 50, client_lag_p99_ms=900.0, latencies_ms=[1400.0] * 3)]
    assert runs[3].invalid_reasons == ["the clients ran 900 ms late (p99)", "27 of 30 turns unanswered"]
    assert largest_valid(runs) == ("largest valid call count: 10 (50 calls: webrtc: the clients ran "
                                   "900 ms late (p99), 27 of 30 turns unanswered)")
    rows = {row.figure: row for row in webrtc_rows(runs)}
    assert rows["webrtc CPU per call-second x10"].ratio == 3.0
    assert rows["webrtc reply latency p50 x10"].note.startswith("+200 ms")
    assert rows["webrtc reply latency p50 x50"].note.startswith("+200 ms; INVALID")
