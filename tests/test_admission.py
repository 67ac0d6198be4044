"""Admission checks on the handshake: Origin list, tokens, the hook's verdicts."""

from __future__ import annotations

from typing import Any

import pytest

from asgi_audio_proxy.edge.admission import Denied, TokenAuth, authenticate_scope, origin_allowed


def scope(headers: dict[str, str] | None = None, query: str = "") -> dict[str, Any]:
    return {"type": "websocket", "path": "/", "query_string": query.encode(),
            "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]}


@pytest.mark.parametrize(("origin", "allowed", "ok"), [
    ("https://app.example.com", None, True),
    (None, None, True),
    ("https://app.example.com", ("https://app.example.com",), True),
    ("https://APP.example.com/", ("https://app.example.com",), True),
    ("https://evil.example", ("https://app.example.com",), False),
    ("https://a.example.com", ("https://*.example.com",), True),
    ("https://example.com.evil", ("https://*.example.com",), False),
    (None, ("https://app.example.com",), False),
    ("null", ("*",), True),
])
def test_origin_allowed(origin: str | None, allowed: tuple[str, ...] | None, ok: bool) -> None:
    assert origin_allowed(origin, allowed) is ok


def test_token_from_header_or_query() -> None:
    auth = TokenAuth({"s3cret": "alice"})
    assert auth(scope({"Authorization": "Bearer s3cret"})) == "alice"
    assert auth(scope(query="token=s3cret&x=1")) == "alice"
    with pytest.raises(Denied) as denied:
        auth(scope({"Authorization": "Bearer wrong"}))
    assert denied.value.status_code == 401 and "s3cret" not in str(denied.value)
    with pytest.raises(Denied, match="required"):
        auth(scope())
    with pytest.raises(Denied):
        TokenAuth({"s3cret": "alice"}, query_param=None)(scope(query="token=s3cret"))


async def test_foreign_origin_is_refused_before_the_hook_runs() -> None:
    calls: list[object] = []

    def hook(s: object) -> object:
        calls.append(s)
        return "me"

    with pytest.raises(Denied) as denied:
        await authenticate_scope(scope({"Origin": "https://evil.example"}), hook, ("https://ok",))
    assert denied.value.status_code == 403 and denied.value.close_code == 1008
    assert calls == []


async def test_async_hook_and_none_means_not_authenticated() -> None:
    async def hook(s: object) -> object:
        return None

    with pytest.raises(Denied) as denied:
        await authenticate_scope(scope(), hook, None)
    assert denied.value.status_code == 401

    async def good(s: object) -> object:
        return {"user": 7}

    assert await authenticate_scope(scope(), good, None) == {"user": 7}


def test_denied_maps_status_to_close_code_and_retry_after() -> None:
    busy = Denied(503, "full", retry_after_s=5)
    assert busy.close_code == 1013 and busy.headers == {"Retry-After": "5"}
    assert Denied(429, "slow down").close_code == 1013
    assert Denied(403, "no").headers == {}


def test_token_auth_reads_a_browser_realtime_clients_key_from_its_subprotocol() -> None:
    auth = TokenAuth({"sk-good": "alice"})
    scope = {"type": "websocket", "headers": [], "query_string": b"",
             "subprotocols": ["realtime", "openai-insecure-api-key.sk-good", "openai-beta.realtime-v1"]}
    assert auth(scope) == "alice"
    with pytest.raises(Denied):
        auth({**scope, "subprotocols": ["realtime", "openai-insecure-api-key.sk-bad"]})
