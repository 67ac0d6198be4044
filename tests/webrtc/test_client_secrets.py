"""Ephemeral keys: minted at ``/v1/realtime/client_secrets`` with a real key, then a call and a
WebSocket are admitted with one; an expired or unknown one, or minting without a key, is 401."""

from __future__ import annotations

from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from asgi_audio_proxy.edge.admission import TokenAuth
from asgi_audio_proxy.edge.client_secrets import EphemeralKeys
from tests.http_clients import http_client

from .peer import peer
from .test_calls import calls_ended, served


async def test_a_minted_key_admits_a_call_and_a_websocket_and_the_real_one_stays_home(
        tmp_path: Any) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("sk-real\n")
    async with served("--token-file", str(tokens)) as (base, app), peer() as p:
        async with http_client(base_url=base) as http:
            refused = await http.post("/v1/realtime/client_secrets")
            minted = await http.post("/v1/realtime/client_secrets",
                                     headers={"Authorization": "Bearer sk-real"},
                                     json={"expires_after": {"seconds": 60}})
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
        assert minted.status_code == 200, minted.text
        key = minted.json()["value"]
        assert key.startswith("ek_") and minted.json()["expires_at"] > 0
        assert (await p.call(base, Authorization=f"Bearer {key}")).status_code == 201
        await p.wait_for("session.created")
        await p.close()
        await calls_ended(app)  # the one model server is free again
        ws = base.replace("http", "ws") + "/v1/realtime"
        async with connect(ws, subprotocols=["realtime", f"openai-insecure-api-key.{key}"]) as conn:  # type: ignore[list-item]
            assert '"session.created"' in str(await conn.recv())
        with pytest.raises(InvalidStatus) as unknown:
            async with connect(ws, additional_headers={"Authorization": "Bearer ek_nope"}):
                pass
        assert unknown.value.response.status_code == 401


async def test_a_key_expires_and_minting_is_checked_by_the_proxys_own_admission() -> None:
    now = [1000.0]
    keys = EphemeralKeys(TokenAuth({"sk-real": "team"}), clock=lambda: now[0])
    key, expires_at = keys.mint("team", ttl_s=60)
    assert expires_at == 1060 and keys.identity(key) == "team"
    check = keys.accepting(TokenAuth({"sk-real": "team"}))
    scope = {"type": "http", "headers": [(b"authorization", f"Bearer {key}".encode())]}
    assert await check(scope) == "team"  # type: ignore[misc]
    now[0] = 1061.0
    assert keys.identity(key) is None
    with pytest.raises(Exception, match="expired"):
        await check(scope)  # type: ignore[misc]
    real = {"type": "http", "headers": [(b"authorization", b"Bearer sk-real")]}
    assert await check(real) == "team"  # type: ignore[misc]
