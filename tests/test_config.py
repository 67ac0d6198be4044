"""Settings and the client's config_data (section 6)."""

from __future__ import annotations

import pytest

from asgi_audio_proxy.config import ProxyConfig, UpstreamOptions


def test_defaults_follow_the_original_document() -> None:
    config = ProxyConfig()
    assert config.upstream_url == "http://127.0.0.1:32550"
    assert config.chunk_duration == 1.0
    assert config.release_messages == 5
    assert config.upstream_ws_url == "ws://127.0.0.1:32550"


@pytest.mark.parametrize(("duration", "messages"), [(0.2, 1), (0.4, 2), (0.6, 3), (2.0, 10)])
def test_chunk_duration_sets_how_many_200ms_messages_wait(duration: float, messages: int) -> None:
    assert ProxyConfig(chunk_duration=duration).release_messages == messages


@pytest.mark.parametrize(("field", "value"), [
    ("chunk_duration", 0.3), ("chunk_duration", 0), ("chunk_duration", -0.2),
    ("chunk_duration", float("nan")), ("upstream_url", "ftp://x"), ("upstream_url", "127.0.0.1:32550"),
    ("connect_timeout_s", 0), ("ack_timeout_s", float("inf")), ("max_message_bytes", -1),
    ("max_buffered_s", 0.2),
])
def test_bad_values_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        ProxyConfig(**{field: value})  # type: ignore[arg-type]


def test_s6_client_keys_map_to_the_upstream_options() -> None:
    options = ProxyConfig().client_options(
        {"assistantPrompt": "Be brief.", "audioFormat": "mp3", "vadThreshold": 0.5})
    assert options.to_upstream() == {
        "hd_video": False, "use_audio_prompt": 1, "vad_threshold": 0.5,
        "voice_clone_prompt": UpstreamOptions().voice_clone_prompt, "assistant_prompt": "Be brief.",
    }
    assert options.audio_format == "mp3"


@pytest.mark.parametrize(("data", "match"), [
    ({"vadThreshold": 1.0}, "vad_threshold"), ({"vadThreshold": "0.5"}, "vad_threshold"),
    ({"vadThreshold": True}, "vad_threshold"), ({"useAudioPrompt": 7}, "use_audio_prompt"),
    ({"assistantPrompt": 3}, "assistant_prompt"), ({"colour": "red"}, "colour"),
])
def test_s6_bad_client_options_are_refused(data: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ProxyConfig().client_options(data)


def test_operator_can_narrow_what_clients_may_set() -> None:
    config = ProxyConfig(client_option_keys=frozenset({"vadThreshold"}))
    assert config.client_options({"vadThreshold": 0.6}).vad_threshold == 0.6
    with pytest.raises(ValueError, match="assistantPrompt"):
        config.client_options({"assistantPrompt": "x"})


def test_no_config_data_keeps_the_operators_options() -> None:
    options = UpstreamOptions(vad_threshold=0.7)
    assert ProxyConfig(options=options).client_options(None) is options
