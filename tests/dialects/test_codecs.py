"""The dialects' faster codecs read and write exactly what the standard library does: the JSON
parse (``msgspec`` when the ``speed`` extra is installed, ``json`` again for what it refuses),
the strict base64 decode, and Twilio's outbound messages written out around their strings."""

from __future__ import annotations

import base64
import binascii
import json

import pytest

from asgi_audio_proxy.dialects import jsonwire
from asgi_audio_proxy.dialects.realtime.codec import strict_b64decode
from asgi_audio_proxy.dialects.twilio.messages import outbound

#: texts on which msgspec and json could part: big integers, NaN, overflow, lone surrogates
_JSON = ['{"a":1,"a":2}', '{"x":NaN}', "[1e400]", "[123456789012345678901234567890]",
         "[-9223372036854775809]", '"\\ud800"', '"\\ud83d\\ude00"', ' {"t": "\u00e9\\u2028"} ',
         "[1.0000000000000002,-0.0,4.9e-324]", '{"a":{"b":[true,false,null]}}']
_NOT_JSON = ["", "{", '{"a":1,}', "[1] x", "{'a':1}", "[01]", '"\t"']


@pytest.mark.parametrize("text", _JSON)
def test_json_reads_as_the_standard_library_reads_it(text: str) -> None:
    assert repr(jsonwire.loads(text)) == repr(json.loads(text))


@pytest.mark.parametrize("text", _NOT_JSON)
def test_bad_json_raises_the_standard_library_error(text: str) -> None:
    with pytest.raises(json.JSONDecodeError) as want:
        json.loads(text)
    with pytest.raises(json.JSONDecodeError) as got:
        jsonwire.loads(text)
    assert str(got.value) == str(want.value)


@pytest.mark.parametrize("text", ["", "AAAA", "AA==", "AA=", "A", "AAA=", "=AAA", "AA==AA==", "AAAA\n",
                                  "\u00e9", "AB-_", "AAAAA", "AA=A", "+/+/"])
def test_strict_base64_is_b64decode_validated(text: str) -> None:
    try:
        want: bytes | str = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        want = f"not base64 ({exc})"
    try:
        got: bytes | str = strict_b64decode(text)
    except ValueError as exc:
        got = str(exc)
    assert got == want


@pytest.mark.parametrize("sid", ["MZ" + "0" * 32, 'a"b\\c', "\u00e9\u2028\n\x00", ""])
def test_twilio_outbound_is_json_dumps_byte_for_byte(sid: str) -> None:
    for event, body in (("media", {"payload": "AAAA+/=="}), ("mark", {"name": 'm"1\u00e9'}),
                        ("clear", None)):
        message: dict[str, object] = {"event": event, "streamSid": sid}
        if body is not None:
            message[event] = body
        assert outbound(event, sid, body) == json.dumps(message, separators=(",", ":"))  # type: ignore[arg-type]
