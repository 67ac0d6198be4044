"""Client control messages: stop, config, and everything else refused with bad_payload."""

from __future__ import annotations

import pytest

from asgi_audio_proxy.dialects.native import ConfigControl, StopControl, parse_control
from asgi_audio_proxy.errors import BadClientPayload


def test_stop_and_config() -> None:
    assert parse_control('{"type": "stop"}', 100) == StopControl()
    assert parse_control('{"type": "config", "vadThreshold": 0.5}', 100) == ConfigControl(
        {"vadThreshold": 0.5})


@pytest.mark.parametrize(("text", "match"), [
    ("not json", "not JSON"), ("[1]", "JSON object"), ('{"type": 3}', "JSON object"),
    ("{}", "JSON object"), ('{"type": "dance"}', "unknown control type 'dance'"),
    ('{"type": "stop", "pad": "' + "x" * 100 + '"}', "over 100"),
])
def test_anything_else_is_a_bad_payload(text: str, match: str) -> None:
    with pytest.raises(BadClientPayload, match=match) as refused:
        parse_control(text, 100)
    assert refused.value.close_code == 1007
