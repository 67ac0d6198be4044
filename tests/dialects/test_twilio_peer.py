"""The Twilio test client's own rules check: each way of breaking Twilio's rules is caught."""

from __future__ import annotations

import json

import pytest

from tests.dialects.twilio_peer import TwilioRuleBroken, check_outbound

SID = "MZ1"


@pytest.mark.parametrize(("frame", "sid", "rule"), [
    (b"\x00", SID, "31950"),
    ('{"event":"clear","streamSid":"MZ1"}', None, "before 'start'"),
    ("{", SID, "not JSON"),
    ('{"event":"speech_started","streamSid":"MZ1"}', SID, "not a media, mark or clear"),
    ('{"event":"clear","streamSid":"MZ1","reason":"stop"}', SID, "31951"),
    ('{"event":"clear"}', SID, "31951"),
    ('{"event":"clear","streamSid":"MZ2"}', SID, "for stream 'MZ2'"),
    ('{"event":"media","streamSid":"MZ1","media":{"payload":"/w==","track":"outbound"}}', SID,
     "exactly"),
    ('{"event":"media","streamSid":"MZ1","media":{"payload":"%%"}}', SID, "not base64"),
    ('{"event":"mark","streamSid":"MZ1","mark":{"name":""}}', SID, "non-empty"),
])
def test_each_broken_rule_is_caught(frame: str | bytes, sid: str | None, rule: str) -> None:
    with pytest.raises(TwilioRuleBroken, match=rule):
        check_outbound(frame, sid)


@pytest.mark.parametrize("message", [
    {"event": "media", "streamSid": SID, "media": {"payload": "/w=="}},
    {"event": "mark", "streamSid": SID, "mark": {"name": "r1.1"}},
    {"event": "clear", "streamSid": SID}])
def test_the_three_messages_twilio_takes_pass(message: dict[str, object]) -> None:
    assert check_outbound(json.dumps(message), SID) == message
