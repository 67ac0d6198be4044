"""Neutral conversation options (``ConversationOptions``): what dialects produce, and what each
upstream kind maps them to (MiniCPM-o: the ``/init_options`` body; Realtime: ``session.update``
fields). End to end, a native client's preset voice and prompt cross two kinds: the outer
proxy's Realtime upstream sends them as Realtime fields, the inner proxy's Realtime dialect reads
them back as neutral options, and its MiniCPM-o kind puts them in the simulator's options."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from asgi_audio_proxy.audio import wav_to_pcm16
from asgi_audio_proxy.config import ConversationOptions, ProxyConfig, UpstreamOptions
from asgi_audio_proxy.dialects.native_client import ConfigAppliedMessage
from asgi_audio_proxy.dialects.realtime import session_config as sc
from asgi_audio_proxy.dialects.realtime.wire import Protocol
from asgi_audio_proxy.upstreams import realtime_kind
from asgi_audio_proxy.upstreams.kind import UpstreamKind
from asgi_audio_proxy.upstreams.minicpm.kind import MINICPM
from asgi_audio_proxy.upstreams.minicpm.wire import init_options_body
from asgi_audio_proxy.upstreams.realtime import RealtimeSettings
from asgi_audio_proxy.upstreams.realtime.wire import session_update
from tests.clients import ProxyClient
from tests.realtime_upstream.support import chain
from tests.timing import within

ASKED = ConversationOptions(instructions="Answer as a pharmacist.", voice="female", vad_threshold=0.6)
DEFAULTS = UpstreamOptions()


def options_of(body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``input_audio`` and ``options`` of an ``/init_options`` body."""
    [message] = body["messages"]
    audio, options = message["content"]
    return audio["input_audio"], options["options"]


# -- the MiniCPM-o kind ---------------------------------------------------------------------------


def test_minicpm_maps_instructions_preset_voice_and_threshold_onto_its_five_keys() -> None:
    audio, options = options_of(MINICPM.map_options(ASKED))
    assert options == {"hd_video": False, "use_audio_prompt": 2, "vad_threshold": 0.6,
                       "voice_clone_prompt": DEFAULTS.voice_clone_prompt,
                       "assistant_prompt": "Answer as a pharmacist."}
    assert audio == {"data": "", "format": "wav"}


def test_minicpm_keeps_its_own_for_what_is_unset_or_a_voice_it_does_not_have() -> None:
    _, options = options_of(MINICPM.map_options(ConversationOptions(voice="alloy")))
    assert options == DEFAULTS.to_upstream()  # its presets only: another name keeps the default


def test_minicpm_sends_reference_audio_as_a_wav_file() -> None:
    pcm = bytes(range(256)) * 50
    audio, _ = options_of(MINICPM.map_options(ConversationOptions(reference_audio=pcm,
                                                                  reference_rate_hz=24_000)))
    assert audio["format"] == "wav"
    wav = wav_to_pcm16(base64.b64decode(str(audio["data"])))
    assert (wav.pcm, wav.sample_rate_hz, wav.channels) == (pcm, 24_000, 1)


def test_a_conversations_options_reach_the_minicpm_wire_through_their_neutral_view() -> None:
    native = ProxyConfig().client_options({"assistantPrompt": "Be brief.", "useAudioPrompt": 3,
                                           "vadThreshold": 0.5, "audioFormat": "mp3"})
    assert native.conversation == ConversationOptions(instructions="Be brief.", voice="male",
                                                      vad_threshold=0.5)
    audio, options = options_of(init_options_body(native))
    assert options == native.to_upstream() and audio == {"data": "", "format": "mp3"}


# -- the Realtime kind ----------------------------------------------------------------------------


def test_realtime_maps_instructions_and_voice_and_leaves_the_rest() -> None:
    # a conversation's voice reaches the server only by a name the operator's map gives it
    assert realtime_kind(voices={"female": "coral"}).map_options(ASKED) == {
        "instructions": "Answer as a pharmacist.", "voice": "coral"}
    # a preset name the server does not know is never sent: its own voice, or the operator's
    assert realtime_kind().map_options(ASKED) == {"instructions": "Answer as a pharmacist."}
    assert realtime_kind(voice="marin", voices={"male": "ash"}).map_options(ASKED) == {
        "instructions": "Answer as a pharmacist.", "voice": "marin"}
    # no voice asked: the operator's, else none at all (the server's own)
    assert RealtimeSettings(voice="marin").map_options(ConversationOptions()) == {"voice": "marin"}
    assert RealtimeSettings().map_options(ConversationOptions(reference_audio=b"\0\0",
                                                              vad_threshold=0.3)) == {}


@pytest.mark.parametrize("beta", [False, True], ids=["ga", "beta"])
def test_realtime_session_update_puts_the_mapped_voice_where_its_shape_keeps_it(beta: bool) -> None:
    options = UpstreamOptions(assistant_prompt="Be brief.", use_audio_prompt=3)
    settings = RealtimeSettings(beta=beta, voice="marin", voices={"male": "male"})
    session = json.loads(session_update(options, settings))["session"]
    assert session["instructions"] == "Be brief."
    voice = session["voice"] if beta else session["audio"]["output"]["voice"]
    assert voice == "male"  # the conversation's voice wins over the operator's


def test_a_kind_whose_settings_say_nothing_says_so() -> None:
    kind = UpstreamKind(name="echo", factory=MINICPM.factory)
    with pytest.raises(NotImplementedError, match="echo"):
        kind.map_options(ASKED)


# -- what the Realtime dialect produces -------------------------------------------------------------


def session_after(update: dict[str, object], protocol: Protocol = "ga") -> dict[str, object]:
    start = sc.initial_session(ProxyConfig(), session_id="sess_1", model="m")
    return sc.merge_update(start, update, protocol)


def test_the_realtime_dialect_produces_neutral_options_with_any_voice_name() -> None:
    session = session_after({"instructions": "Hi.", "audio": {
        "input": {"turn_detection": {"type": "server_vad", "threshold": 0.6}},
        "output": {"voice": "ash"}}})
    assert sc.conversation_options(session) == ConversationOptions(instructions="Hi.", voice="ash",
                                                                   vad_threshold=0.6)
    # the library's names reach presets only: a server's own voice name is not among them
    assert sc.library_options(session) == {"assistantPrompt": "Hi.", "vadThreshold": 0.6}


def test_a_voice_given_by_id_and_an_extreme_threshold_stay_in_range() -> None:
    session = session_after({"audio": {"input": {"turn_detection": {"threshold": 1.0}},
                                       "output": {"voice": {"id": "male"}}}})
    options = sc.conversation_options(session)
    assert (options.voice, options.vad_threshold) == ("male", 0.99)
    assert sc.library_options(session)["useAudioPrompt"] == 3


def test_the_operators_own_options_open_the_realtime_session() -> None:
    config = ProxyConfig(options=UpstreamOptions(assistant_prompt="Be kind.", use_audio_prompt=2,
                                                 vad_threshold=0.7))
    session = sc.initial_session(config, session_id="sess_1", model="m")
    assert session["instructions"] == "Be kind."
    assert session["audio"]["output"]["voice"] == "female"
    assert session["audio"]["input"]["turn_detection"]["threshold"] == 0.7
    plain = sc.initial_session(ProxyConfig(), session_id="s", model="m")
    assert plain["audio"]["output"]["voice"] == "default"


@pytest.mark.parametrize(("field", "value"), [
    ("voice", " "), ("vad_threshold", 1.0), ("reference_audio", b"\0"), ("reference_rate_hz", 100),
    ("instructions", 3),
])
def test_bad_neutral_options_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        ConversationOptions(**{field: value})  # type: ignore[arg-type]


# -- end to end: across two kinds ------------------------------------------------------------------


async def test_a_native_clients_voice_and_prompt_cross_a_realtime_upstream_into_minicpm() -> None:
    # the inner proxy's Realtime dialect knows the presets by name: the outer maps them to themselves
    presets = {name: name for name in ("none", "female", "male")}
    async with chain(RealtimeSettings(model="gpt-realtime", voices=presets)) as c, \
            ProxyClient(c.url("/audio_proxy")) as client:
        await client.conn.send(json.dumps({"type": "config", "assistantPrompt": "Be brief.",
                                           "useAudioPrompt": 3}))
        assert await client.next_message() == ConfigAppliedMessage()
        # the outer proxy's Realtime kind said it in Realtime words...
        await c.inner.wait_for(lambda log: any(
            e["session"].get("instructions") == "Be brief." for e in log.of("session.update")))
        update = [e for e in c.inner.of("session.update")
                  if e["session"].get("instructions") == "Be brief."][-1]
        assert update["session"]["audio"]["output"]["voice"] == "male"
        # ...and the inner proxy's MiniCPM-o kind put it in the server's five keys
        await c.sim.recorder.wait_for(lambda r: any(
            o["assistant_prompt"] == "Be brief." for o in r.options), timeout=within(10))
    options = [o for o in c.sim.recorder.options if o["assistant_prompt"] == "Be brief."][-1]
    assert options["use_audio_prompt"] == 3
