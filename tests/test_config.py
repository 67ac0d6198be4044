"""Settings and the client's config_data (section 6)."""

from __future__ import annotations

import pytest

from asgi_audio_proxy.config import ProxyConfig, UpstreamOptions


def test_defaults_leave_the_kinds_settings_to_the_kind() -> None:
    config = ProxyConfig()
    assert config.upstream_url == "http://127.0.0.1:32550"
    assert config.chunk_duration is None and config.ack_timeout_s is None
    assert config.forwarded_settings == {}


def test_the_original_keywords_are_kept_and_forwarded_to_the_kind() -> None:
    config = ProxyConfig(chunk_duration=0.4, max_skipped_s=5.0)
    assert config.chunk_duration == 0.4
    assert config.forwarded_settings == {"chunk_duration": 0.4, "max_skipped_s": 5.0}


@pytest.mark.parametrize(("field", "value"), [
    ("chunk_duration", 0), ("chunk_duration", -0.2), ("chunk_duration", float("nan")),
    ("upstream_url", "ftp://x"), ("upstream_url", "127.0.0.1:32550"),
    ("connect_timeout_s", 0), ("ack_timeout_s", float("inf")), ("max_message_bytes", -1),
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


def test_allowed_origins_take_a_list_and_equal_the_tuple_form() -> None:
    from_list = ProxyConfig(allowed_origins=["https://a.example"])
    assert from_list == ProxyConfig(allowed_origins=("https://a.example",))
    assert from_list.allowed_origins == ("https://a.example",)
    assert hash(from_list) == hash(ProxyConfig(allowed_origins=("https://a.example",)))


def test_a_sequence_setting_is_frozen_against_later_changes_to_the_callers_list() -> None:
    origins = ["https://a.example"]
    keys = ["vadThreshold"]
    config = ProxyConfig(allowed_origins=origins, client_option_keys=keys)
    origins.append("https://evil.example")
    keys.append("assistantPrompt")
    assert config.allowed_origins == ("https://a.example",)
    assert config.client_option_keys == frozenset({"vadThreshold"})


@pytest.mark.parametrize("keys", [["vadThreshold"], ("vadThreshold",), {"vadThreshold"},
                                  frozenset({"vadThreshold"}), (k for k in ["vadThreshold"])])
def test_client_option_keys_take_any_iterable_of_strings_stored_as_a_frozenset(keys: object) -> None:
    config = ProxyConfig(client_option_keys=keys)  # type: ignore[arg-type]
    assert config.client_option_keys == frozenset({"vadThreshold"})
    assert isinstance(config.client_option_keys, frozenset)
    assert config == ProxyConfig(client_option_keys=frozenset({"vadThreshold"}))


@pytest.mark.parametrize("field", ["allowed_origins", "client_option_keys"])
def test_a_bare_string_is_refused_with_a_hint(field: str) -> None:
    value = "https://a.example" if field == "allowed_origins" else "vadThreshold"
    with pytest.raises(ValueError, match=rf"invalid {field}=.*not one string.*write \["):
        ProxyConfig(**{field: value})  # type: ignore[arg-type]


@pytest.mark.parametrize(("field", "value"), [
    ("allowed_origins", [""]), ("allowed_origins", ["https://a.example", 3]),
    ("allowed_origins", 3), ("allowed_origins", b"https://a.example"),
    ("client_option_keys", [None]), ("client_option_keys", ["colour"]),
])
def test_bad_sequence_settings_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        ProxyConfig(**{field: value})  # type: ignore[arg-type]
