"""The voice webhook answers with TwiML that connects the call to the Twilio stream."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from collections.abc import Mapping

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from asgi_audio_proxy.dialects.twilio import TwimlEndpoint

RequestValidator = pytest.importorskip("twilio.request_validator",
                                       reason="the twilio extra builds the TwiML").RequestValidator

FORM = {"CallSid": "CA1", "From": "+15550100", "To": "+15550199"}


async def _post(endpoint: TwimlEndpoint, data: Mapping[str, str] = FORM, **kwargs: object) -> httpx.Response:
    app = Starlette(routes=[Route("/voice", endpoint, methods=["GET", "POST"])])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="https://proxy.example.com") as client:
        return await client.post("/voice", data=data, **kwargs)  # type: ignore[arg-type]


def _stream(response: httpx.Response) -> ET.Element:
    assert response.status_code == 200 and response.headers["content-type"] == "text/xml"
    root = ET.fromstring(response.text)
    assert root.tag == "Response" and [c.tag for c in root] == ["Connect"]
    (stream,) = root[0]
    assert stream.tag == "Stream"
    return stream


async def test_the_stream_url_is_wss_on_the_host_twilio_called() -> None:
    stream = _stream(await _post(TwimlEndpoint()))
    assert stream.attrib == {"url": "wss://proxy.example.com/twilio"}


async def test_parameters_reach_the_stream_escaped() -> None:
    stream = _stream(await _post(TwimlEndpoint(stream_url="wss://voice.example.com/calls",
                                               parameters={"assistantPrompt": 'Say "hi" & <bye>'})))
    assert stream.attrib["url"] == "wss://voice.example.com/calls"
    assert [(p.tag, p.attrib) for p in stream] == [
        ("Parameter", {"name": "assistantPrompt", "value": 'Say "hi" & <bye>'})]


async def test_parameters_can_depend_on_the_call() -> None:
    prompts = {"+15550199": "You are the pharmacy's line."}
    endpoint = TwimlEndpoint(parameters=lambda call: {"assistantPrompt": prompts[call["To"]],
                                                      "caller": call["From"]})
    stream = _stream(await _post(endpoint))
    assert {p.attrib["name"]: p.attrib["value"] for p in stream} == {
        "assistantPrompt": "You are the pharmacy's line.", "caller": "+15550100"}


async def test_a_signed_request_is_answered_and_a_forged_one_refused() -> None:
    token, url = "secret-token", "https://proxy.example.com/voice"
    signature = RequestValidator(token).compute_signature(url, FORM)
    endpoint = TwimlEndpoint(auth_token=token)
    assert (await _post(endpoint, headers={"X-Twilio-Signature": signature})).status_code == 200
    forged = await _post(endpoint, {**FORM, "To": "+15550000"}, headers={"X-Twilio-Signature": signature})
    assert forged.status_code == 403


async def test_a_huge_body_is_refused() -> None:
    assert (await _post(TwimlEndpoint(), {"x": "y" * 100_000})).status_code == 413


def test_a_stream_url_that_is_not_wss_is_refused() -> None:
    with pytest.raises(ValueError, match="wss://"):
        TwimlEndpoint(stream_url="ws://localhost:8000/twilio")


def test_without_the_twilio_package_the_error_says_what_to_install(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules makes the import fail as if the package were absent
    monkeypatch.setitem(sys.modules, "twilio.twiml.voice_response", None)
    with pytest.raises(ImportError, match=r"asgi-audio-proxy\[twilio\]"):
        TwimlEndpoint()
