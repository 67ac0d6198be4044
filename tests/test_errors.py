"""The exception tree and its close codes."""

from __future__ import annotations

import pytest

from asgi_audio_proxy import errors

EXPECTED = {
    errors.AudioProxyError: 1011, errors.ClientError: 1008, errors.BadClientPayload: 1007,
    errors.MessageTooBig: 1009, errors.ClientTooSlow: 1013, errors.UpstreamError: 1011,
    errors.UpstreamUnavailable: 1011, errors.UpstreamTimeout: 1011,
    errors.UpstreamProtocolError: 1014, errors.LeaseStoreUnavailable: 1011,
    errors.SessionLimitExceeded: 1013,
    errors.ServerShutdown: 1001, errors.IdleTimeout: 1000,
}


@pytest.mark.parametrize(("cls", "code"), EXPECTED.items())
def test_each_error_carries_its_close_code(cls: type[errors.AudioProxyError], code: int) -> None:
    exc = cls("went wrong")
    assert exc.close_code == code
    assert str(exc) == f"went wrong (close code {code})"
    assert exc.kind


def test_every_public_error_is_listed() -> None:
    assert set(errors.__all__) == {cls.__name__ for cls in EXPECTED}


def test_close_code_can_be_overridden() -> None:
    assert errors.ClientError("x", close_code=1003).close_code == 1003

