"""The handshake: protocol, subprotocol, model and API key (CLIENT_DIALECTS.md, "Realtime wire")."""

from __future__ import annotations

from asgi_audio_proxy.config import ProxyConfig
from asgi_audio_proxy.dialects.realtime import realtime_api_key, realtime_dialect, realtime_protocol
from asgi_audio_proxy.events import Ready

from .realtime_support import checked, scope


def test_ga_by_default_with_no_subprotocol_when_none_is_offered() -> None:
    d = realtime_dialect(scope(query="model=gpt-realtime"), ProxyConfig())
    assert (d.name, d.protocol, d.subprotocol, d.output_rate_hz) == ("realtime", "ga", None, 24_000)
    [created] = checked(d.send(Ready("s1", "2.6")))
    assert created["session"]["model"] == "gpt-realtime"


def test_beta_by_header_or_by_subprotocol() -> None:
    assert realtime_protocol(scope(headers={"OpenAI-Beta": "realtime=v1"})) == "beta"
    assert realtime_protocol(scope(subprotocols=["realtime", "openai-beta.realtime-v1"])) == "beta"
    assert realtime_protocol(scope(headers={"OpenAI-Beta": "assistants=v2"})) == "ga"


def test_realtime_subprotocol_selected_only_when_offered() -> None:
    offered = ["realtime", "openai-insecure-api-key.sk-test", "openai-agents-sdk.0.20.0"]
    assert realtime_dialect(scope(subprotocols=offered), ProxyConfig()).subprotocol == "realtime"
    assert realtime_dialect(scope(subprotocols=["other"]), ProxyConfig()).subprotocol is None


def test_api_key_from_bearer_header_or_browser_subprotocol() -> None:
    assert realtime_api_key(scope(headers={"Authorization": "Bearer sk-one"})) == "sk-one"
    assert realtime_api_key(scope(subprotocols=["realtime", "openai-insecure-api-key.sk-two"])) == "sk-two"
    assert realtime_api_key(scope(headers={"Authorization": "Basic abc"})) is None
    assert realtime_api_key(scope()) is None


def test_model_defaults_and_odd_model_names_are_not_echoed() -> None:
    for query in ("", "model=", "model=%00bad"):
        d = realtime_dialect(scope(query=query), ProxyConfig())
        [created] = checked(d.send(Ready("s", "v")))
        assert created["session"]["model"] == "minicpm-o"
