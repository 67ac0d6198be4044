"""The exception tree and its close codes."""

from __future__ import annotations

import pytest

from asgi_audio_proxy import errors
from asgi_audio_proxy.edge import admission, connection

EXPECTED = {
    errors.AudioProxyError: 1011, errors.ClientError: 1008, errors.BadClientPayload: 1007,
    errors.MessageTooBig: 1009, errors.ClientTooSlow: 1013, errors.UpstreamError: 1011,
    errors.UpstreamUnavailable: 1011, errors.UpstreamTimeout: 1011, errors.UpstreamBusy: 1013,
    errors.UpstreamProtocolError: 1014, errors.LeaseStoreUnavailable: 1011,
    errors.SessionLimitExceeded: 1013, errors.UpstreamSessionLimit: 1013, errors.ContextFull: 1013,
    errors.ServerShutdown: 1001, errors.IdleTimeout: 1000,
}


@pytest.mark.parametrize(("cls", "code"), EXPECTED.items())
def test_each_error_carries_its_close_code(cls: type[errors.AudioProxyError], code: int) -> None:
    exc = cls("went wrong")
    assert exc.close_code == code
    assert str(exc) == f"went wrong (close code {code})"
    assert exc.kind


def test_every_public_error_is_listed() -> None:
    other_constructors = {errors.Denied, errors.ClientGone}
    assert set(errors.__all__) == {cls.__name__ for cls in [*EXPECTED, *other_constructors]}


@pytest.mark.parametrize(("status_code", "code"), [(401, 1008), (403, 1008), (429, 1013), (503, 1013),
                                                   (400, 1008)])
def test_denied_is_in_the_tree_with_the_close_code_of_its_status(status_code: int, code: int) -> None:
    denied = errors.Denied(status_code, "refused", retry_after_s=5)
    assert isinstance(denied, errors.AudioProxyError)
    assert not isinstance(denied, errors.ClientError | errors.UpstreamError)
    assert (denied.status_code, denied.message, denied.close_code) == (status_code, "refused", code)
    assert denied.headers == {"Retry-After": "5"}
    assert errors.Denied(status_code, "refused").headers == {}
    assert str(denied) == f"{status_code}: refused" and denied.kind


def test_client_gone_is_in_the_tree_with_the_code_the_client_closed_with() -> None:
    gone = errors.ClientGone(4000)
    assert isinstance(gone, errors.AudioProxyError)
    assert not isinstance(gone, errors.ClientError | errors.UpstreamError)
    assert gone.code == gone.close_code == 4000 and gone.kind
    dropped = errors.ClientGone(None)  # no close frame: no code of its own
    assert dropped.code is None and dropped.close_code == 1006


def test_denied_and_client_gone_still_import_from_where_they_are_raised() -> None:
    assert admission.Denied is errors.Denied and "Denied" in admission.__all__
    assert connection.ClientGone is errors.ClientGone and "ClientGone" in connection.__all__


def test_the_tree_is_drawn_with_every_class() -> None:
    assert errors.__doc__ is not None
    drawn = {line.split("── ")[-1].split()[0] for line in errors.__doc__.splitlines() if "── " in line}
    assert drawn == set(errors.__all__) - {"AudioProxyError"}


def test_close_code_can_be_overridden() -> None:
    assert errors.ClientError("x", close_code=1003).close_code == 1003

