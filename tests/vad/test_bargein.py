"""Voice barge-in on real speech: cuts over the reply, none on its echo, noise or short sounds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from asgi_audio_proxy.vad import (
    BargeInConfig,
    CutReply,
    EnergyDetector,
    SileroDetector,
    SpeechDetector,
    SpeechStarted,
    SpeechStopped,
    VoiceActivity,
)

from .speech import (
    RATE_HZ,
    SENTENCES,
    VOICES,
    BargeInScene,
    SpeechBank,
    bursts,
    echo_of,
    espeak_missing_reason,
    pink_noise,
    play_scene,
    scale_to_dbfs,
    white_noise,
)

pytestmark = pytest.mark.skipif(espeak_missing_reason() is not None, reason=str(espeak_missing_reason()))

#: the user speaks at the reply's level; the echo comes back 10 or 20 dB below it
LEVEL_DBFS = -20.0
REPLY_START_MS = 400
#: the goal: the reply cut within this much of the speech onset
CUT_WITHIN_MS = 300.0


@pytest.fixture(scope="module")
def bank(tmp_path_factory: pytest.TempPathFactory) -> SpeechBank:
    return SpeechBank(Path(tmp_path_factory.mktemp("speech")))


@pytest.fixture(scope="module")
def reply(bank: SpeechBank) -> np.ndarray:
    parts = [bank.utterance(text, "en-us+f2", 170) for text in SENTENCES[6:10]]
    return np.concatenate([scale_to_dbfs(part.samples, LEVEL_DBFS, part.voiced) for part in parts])


def _mic(reply: np.ndarray, echo_db: float, delay_ms: float, seed: int) -> np.ndarray:
    mic = np.zeros(len(reply) + 2 * RATE_HZ)
    echo = echo_of(reply, echo_db, delay_ms, seed)
    start = REPLY_START_MS * RATE_HZ // 1000
    mic[start : start + len(echo)] += echo
    return mic + pink_noise(len(mic), -55, seed)


def speech_over_reply(bank: SpeechBank, reply: np.ndarray, index: int, echo_db: float) -> BargeInScene:
    """Utterance ``index`` spoken 1 to 2.7 s into the reply, whose echo returns after 20-185 ms."""
    utterance = bank.utterance(SENTENCES[index], VOICES[index % len(VOICES)], (140, 175, 220)[index % 3])
    mic = _mic(reply, echo_db, 20 + 15 * index, index)
    at_ms = REPLY_START_MS + 1_000 + 150 * index
    speech = scale_to_dbfs(utterance.samples, LEVEL_DBFS, utterance.voiced)
    mic[at_ms * 16 : at_ms * 16 + len(speech)] += speech
    # the scene ends 300 ms after the speech: nothing later bears on the cut
    end = int(at_ms + utterance.end_ms + 300) * RATE_HZ // 1000
    return BargeInScene(
        mic[:end],
        reply,
        REPLY_START_MS,
        at_ms + utterance.onset_ms,
        at_ms + utterance.end_ms,
        burst=index % 2 == 0,
    )


def voice(detector: SpeechDetector | None = None) -> VoiceActivity:
    return VoiceActivity(BargeInConfig(policy="voice"), detector or SileroDetector())


@pytest.mark.parametrize("echo_db", [-10.0, -20.0])
def test_speech_over_the_reply_cuts_it_within_300_ms(
    bank: SpeechBank, reply: np.ndarray, echo_db: float
) -> None:
    latencies = []
    for index in range(len(SENTENCES)):
        scene = speech_over_reply(bank, reply, index, echo_db)
        assert scene.speech_onset_ms is not None
        cuts = play_scene(voice(), scene).of(CutReply)
        assert len(cuts) == 1, f"utterance {index}: {cuts}"
        at_ms, cut = cuts[0]
        assert isinstance(cut, CutReply)
        # the segment starts at the onset, or where the voice first stands out of the echo
        assert -50 <= cut.audio_start_ms - scene.speech_onset_ms <= 250, index
        latencies.append(at_ms - scene.speech_onset_ms)
    assert max(latencies) <= CUT_WITHIN_MS + 150, latencies
    assert float(np.percentile(latencies, 50)) <= CUT_WITHIN_MS, latencies


@pytest.mark.parametrize("echo_db", [-10.0, -20.0])
@pytest.mark.parametrize("trial", range(4))
def test_the_replys_own_echo_never_cuts_it(reply: np.ndarray, echo_db: float, trial: int) -> None:
    scene = BargeInScene(
        _mic(reply, echo_db, 20 + 55 * trial, 100 + trial), reply, REPLY_START_MS, burst=trial % 2 == 0
    )
    assert play_scene(voice(), scene).events == []


@pytest.mark.parametrize("noise", ["white", "pink"])
def test_background_noise_never_cuts(reply: np.ndarray, noise: str) -> None:
    mic = _mic(reply, -20, 80, 7)
    mic += white_noise(len(mic), -45, 8) if noise == "white" else pink_noise(len(mic), -35, 8)
    assert play_scene(voice(), BargeInScene(mic, reply, REPLY_START_MS)).of(CutReply) == []


@pytest.mark.parametrize("make", [SileroDetector, EnergyDetector], ids=["silero", "energy"])
def test_short_sounds_under_the_minimum_never_cut(reply: np.ndarray, make: type[SpeechDetector]) -> None:
    mic = _mic(reply, -20, 80, 9)
    mic += bursts(len(mic), len(mic) // RATE_HZ, 150, LEVEL_DBFS, 10)
    assert play_scene(voice(make()), BargeInScene(mic, reply, REPLY_START_MS)).of(CutReply) == []


def test_speech_started_and_stopped_match_the_labels(bank: SpeechBank) -> None:
    for index in range(0, len(SENTENCES), 2):
        utterance = bank.utterance(SENTENCES[index], VOICES[index % len(VOICES)], 175)
        lead = np.zeros(RATE_HZ // 2)
        mic = np.concatenate(
            [lead, scale_to_dbfs(utterance.samples, LEVEL_DBFS, utterance.voiced), lead, lead]
        )
        mic += pink_noise(len(mic), -55, index)
        heard = play_scene(voice(), BargeInScene(mic, np.zeros(0), 10**9))
        assert [type(event) for _, event in heard.events] == [SpeechStarted, SpeechStopped], heard.events
        (_, started), (_, stopped) = heard.events
        assert isinstance(started, SpeechStarted) and isinstance(stopped, SpeechStopped)
        # an opening fricative ("Sorry", "Hold") is labelled speech by energy, but voice only from its vowel
        assert -50 <= started.audio_start_ms - (500 + utterance.onset_ms) <= 300
        assert abs(stopped.audio_end_ms - (500 + utterance.end_ms)) <= 150


@pytest.mark.parametrize("make", [SileroDetector, EnergyDetector], ids=["silero", "energy"])
def test_fed_whole_or_in_odd_pieces_the_decisions_are_the_same(
    bank: SpeechBank, reply: np.ndarray, make: type[SpeechDetector]
) -> None:
    scene = speech_over_reply(bank, reply, 9, -20)
    scene = BargeInScene(scene.mic[: 4 * RATE_HZ], reply, REPLY_START_MS, burst=True)
    whole = [event for _, event in play_scene(voice(make()), scene, step_bytes=len(scene.mic) * 2 + 1).events]
    assert any(isinstance(event, CutReply) for event in whole)
    for step in (1, 333):
        assert [event for _, event in play_scene(voice(make()), scene, step_bytes=step).events] == whole


def test_the_energy_fallback_cuts_on_speech_and_not_on_echo(bank: SpeechBank, reply: np.ndarray) -> None:
    for index in range(0, len(SENTENCES), 3):
        scene = speech_over_reply(bank, reply, index, -20)
        assert len(play_scene(voice(EnergyDetector()), scene).of(CutReply)) == 1, index
    echo_only = BargeInScene(_mic(reply, -20, 60, 11), reply, REPLY_START_MS)
    assert play_scene(voice(EnergyDetector()), echo_only).of(CutReply) == []


def test_policy_control_reports_speech_but_never_cuts(bank: SpeechBank, reply: np.ndarray) -> None:
    scene = speech_over_reply(bank, reply, 2, -20)
    heard = play_scene(VoiceActivity(BargeInConfig(policy="control"), SileroDetector()), scene)
    assert heard.of(CutReply) == []
    assert len(heard.of(SpeechStarted)) == 1


def test_under_policy_control_a_client_that_asks_for_cuts_gets_them(bank: SpeechBank,
                                                                     reply: np.ndarray) -> None:
    """A Realtime session's ``interrupt_response``: the session sets ``cuts_replies``."""
    scene = speech_over_reply(bank, reply, 2, -20)
    activity = VoiceActivity(BargeInConfig(policy="control"), SileroDetector())
    activity.cuts_replies = True
    assert len(play_scene(activity, scene).of(CutReply)) == 1


def test_policy_off_reports_nothing(bank: SpeechBank, reply: np.ndarray) -> None:
    scene = speech_over_reply(bank, reply, 2, -20)
    assert play_scene(VoiceActivity(BargeInConfig(policy="off")), scene).events == []


@pytest.mark.parametrize("after_a_first_turn", [False, True], ids=["fresh", "after-a-first-turn"])
def test_a_first_word_soon_after_the_reply_starts_cuts_it(bank: SpeechBank, after_a_first_turn: bool) -> None:
    """Speech 0.45 s into a reply is weighed against the echo heard so far, not the loudest assumed.

    The reply is a 440 Hz tone sent 0.5 s at a time; it comes back 20 dB down and the user says
    "Wait, stop" quietly (-28 dBFS) over it. Against the -6 dB echo assumed before any is measured,
    "Wait," lies within the echo's band and only "stop", 0.6 s later, would cut.
    """
    tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(3 * RATE_HZ) / RATE_HZ)
    reply_start_ms = 3_000 if after_a_first_turn else 400
    mic = np.zeros(reply_start_ms * 16 + len(tone) + RATE_HZ)
    if after_a_first_turn:
        mic[: 2 * RATE_HZ] += tone[: 2 * RATE_HZ]  # the client's own first turn, then silence
    mic[reply_start_ms * 16 : reply_start_ms * 16 + len(tone)] += tone * 10 ** (-20 / 20)
    utterance = bank.utterance("Wait, stop please, I want to ask something else.")
    at_ms = reply_start_ms + 450
    speech = scale_to_dbfs(utterance.samples, -28.0, utterance.voiced)
    mic[at_ms * 16 : at_ms * 16 + len(speech)] += speech
    onset_ms = at_ms + utterance.onset_ms
    scene = BargeInScene(mic, tone, reply_start_ms, onset_ms, burst=False)
    cuts = play_scene(voice(), scene).of(CutReply)
    assert len(cuts) == 1, cuts
    assert 0 <= cuts[0][0] - onset_ms <= CUT_WITHIN_MS, (cuts, onset_ms)


def test_a_cut_reply_no_longer_echoes(reply: np.ndarray) -> None:
    activity = voice()
    activity.reply_started()
    activity.reply_audio(b"\x00\x10" * RATE_HZ * 5, RATE_HZ)
    activity.reply_ended(cut=True)
    activity.feed_input(b"\x00\x00" * RATE_HZ)
    assert not activity.is_reply_playing


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("policy", "loud"),
        ("min_speech_ms", -1.0),
        ("min_silence_ms", float("nan")),
        ("speech_threshold", 1.5),
        ("reply_threshold", 0.1),
        ("min_unexplained_share", -0.1),
    ],
)
def test_config_rejects_a_bad_value_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        BargeInConfig(**{field: value})  # type: ignore[arg-type]
