"""Settings: ``ProxyConfig`` (the operator's), ``ConversationOptions`` and ``UpstreamOptions``
(a conversation's).

Owns: every setting the kinds share, with its named default and validation (the voice barge-in
detector's too, :class:`BargeInConfig`: the VAD package imports it from here, never the other way
round); the original keywords a kind takes over (``chunk_duration``...: kept and forwarded, the
kind's own rules checked by the kind); the neutral conversation options dialects produce and
kinds map; and the one typed parse of the client's camelCase ``config_data``
(``UPSTREAM_PROTOCOL.md`` section 6). Must not: open sockets, read the environment, parse argv,
import the VAD package, or know a kind's own defaults.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal
from urllib.parse import urlsplit

from .audio.wav import CLIENT_SAMPLE_RATE_HZ, MESSAGE_SAMPLES

__all__ = ["CLIENT_OPTION_KEYS", "PRESET_VOICES", "BargeInConfig", "BargeInPolicy", "ConversationOptions",
           "ProxyConfig", "UpstreamOptions"]

#: the model server's own default address (section 1)
DEFAULT_UPSTREAM_URL = "http://127.0.0.1:32550"
#: the length of the audio messages the audio layer cuts (200 ms: MiniCPM-o's, section 5.3)
MESSAGE_DURATION_S = MESSAGE_SAMPLES / CLIENT_SAMPLE_RATE_HZ
#: the original keywords whose values a kind takes over (the MiniCPM-o kind has all four);
#: ``None`` leaves the kind's own setting
FORWARDED_SETTINGS = ("chunk_duration", "ack_timeout_s", "reply_stall_timeout_s", "max_skipped_s")
#: the official UI's end-of-speech setting: 0.2 s of speech in 1 s still counts as silence
DEFAULT_VAD_THRESHOLD = 0.8
DEFAULT_ASSISTANT_PROMPT = "Please answer the user briefly, in the reference voice's style."
DEFAULT_VOICE_CLONE_PROMPT = "Imitate the reference voice."
#: 1 = the default preset voice; must be > 0 for the upstream to build any system prompt (5.6)
DEFAULT_USE_AUDIO_PROMPT = 1
#: a dead host should fail fast; a live one answers /init_options in milliseconds
DEFAULT_CONNECT_TIMEOUT_S = 5.0
#: each teardown step (stop, close) gets this long before it is abandoned
DEFAULT_CLOSE_TIMEOUT_S = 2.0
#: 8 s of 16 kHz PCM16 in one frame is already far more than any real client sends at once
DEFAULT_MAX_MESSAGE_BYTES = 256 * 1024
#: control messages are tiny JSON objects
DEFAULT_MAX_TEXT_BYTES = 8 * 1024
#: audio the proxy holds for the upstream before it stops reading the client (back-pressure)
DEFAULT_MAX_BUFFERED_S = 10.0
#: reply audio waiting for a slow client (2 MiB ~ 65 s of 16 kHz PCM16)
DEFAULT_MAX_PENDING_REPLY_BYTES = 2 * 1024 * 1024

#: a conversation longer than this is ended (a forgotten client must not hold a GPU forever)
DEFAULT_MAX_SESSION_S = 3600.0
#: no audio at all for this long ends the session cleanly (live clients send silence)
DEFAULT_IDLE_TIMEOUT_S = 60.0
#: audio may arrive this far ahead of real time before the client is told off (1008)
DEFAULT_MAX_LEAD_S = 10.0
#: control messages are rare: a stop or a config now and then
DEFAULT_MAX_TEXT_FRAMES_PER_S = 20.0
#: how long live sessions get to finish when the server shuts down
DEFAULT_SHUTDOWN_GRACE_S = 5.0
#: what a refused client is told to wait before it tries again
DEFAULT_RETRY_AFTER_S = 5
#: clients waiting for a busy model server; more only lengthen waits nobody sits through
DEFAULT_MAX_QUEUE = 32
#: five minutes in a queue is already past most callers' patience
DEFAULT_MAX_QUEUE_WAIT_S = 300.0
DEFAULT_RESUME_GRACE_S = 30.0

#: the client-facing option keys (the original document's three, plus the upstream's own)
CLIENT_OPTION_KEYS = frozenset(
    {"assistantPrompt", "audioFormat", "vadThreshold", "voiceClonePrompt", "useAudioPrompt"}
)
#: the voices the native ``useAudioPrompt`` numbers name (0: none, 1: the default, 2, 3: presets)
PRESET_VOICES = {"none": 0, "default": 1, "female": 2, "male": 3}
_PRESET_NAMES = {number: name for name, number in PRESET_VOICES.items()}
#: a reference voice longer than this is a file, not a voice sample
MAX_REFERENCE_BYTES = 4 * 1024 * 1024


BargeInPolicy = Literal["off", "control", "voice"]
_POLICIES: tuple[BargeInPolicy, ...] = ("off", "control", "voice")

#: today's behaviour: only an explicit ``stop`` cuts a reply; speech events are still reported
DEFAULT_POLICY: BargeInPolicy = "control"
#: speech this long over a reply cuts it (five Silero frames, eight of the fallback's): a word, not a
#: cough or a click (< 150 ms); a sixth frame added 32 ms to every cut and stopped no false one
DEFAULT_MIN_SPEECH_MS = 160.0
#: this much speech starts a segment (``speech_started``): longer than a click, shorter than a syllable
DEFAULT_START_SPEECH_MS = 90.0
#: Silero's own recommended decision point
DEFAULT_SPEECH_THRESHOLD = 0.5
#: while a reply plays its echo is speech too: ask the detector to be surer
DEFAULT_REPLY_THRESHOLD = 0.7
#: silence this long ends a segment (``speech_stopped``): longer than a pause between words
DEFAULT_MIN_SILENCE_MS = 500.0
#: the echo of what was played arrives within this: network, playout buffer and the air
DEFAULT_MAX_ECHO_DELAY_MS = 300.0
#: the loudest echo assumed until measured: a phone on speaker, held close, returns about -6 dB
DEFAULT_ECHO_LOSS_DB = 6.0
#: a frame over a reply must be mostly not echo to count as the client's voice
DEFAULT_MIN_UNEXPLAINED_SHARE = 0.5


@dataclass(frozen=True, kw_only=True)
class BargeInConfig:
    """How voice activity is reported and when speech cuts a reply.

    Attributes:
        policy: ``off`` (no detection at all), ``control`` (events reported; only an explicit stop
            cuts) or ``voice`` (speech over a reply also cuts it).
        min_speech_ms: speech over a playing reply needed before :class:`CutReply`.
        start_speech_ms: speech needed before :class:`SpeechStarted`.
        speech_threshold: detector probability that counts as speech when no reply plays.
        reply_threshold: the same while a reply plays; at least ``speech_threshold``.
        min_silence_ms: non-speech needed before :class:`SpeechStopped`.
        max_echo_delay_ms: the longest delay at which the reply's echo is expected back.
        echo_loss_db: the loudest echo assumed, in dB below the reply, until measured.
        min_unexplained_share: share of a frame's energy beyond the echo for it to be speech.
    """

    policy: BargeInPolicy = DEFAULT_POLICY
    min_speech_ms: float = DEFAULT_MIN_SPEECH_MS
    start_speech_ms: float = DEFAULT_START_SPEECH_MS
    speech_threshold: float = DEFAULT_SPEECH_THRESHOLD
    reply_threshold: float = DEFAULT_REPLY_THRESHOLD
    min_silence_ms: float = DEFAULT_MIN_SILENCE_MS
    max_echo_delay_ms: float = DEFAULT_MAX_ECHO_DELAY_MS
    echo_loss_db: float = DEFAULT_ECHO_LOSS_DB
    min_unexplained_share: float = DEFAULT_MIN_UNEXPLAINED_SHARE

    def __post_init__(self) -> None:
        if self.policy not in _POLICIES:
            raise ValueError(f"policy must be one of {_POLICIES}, not {self.policy!r}")
        durations = ("min_speech_ms", "start_speech_ms", "min_silence_ms", "max_echo_delay_ms")
        for name in (*durations, "echo_loss_db"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, not {value!r}")
        for name in ("speech_threshold", "reply_threshold", "min_unexplained_share"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, not {value!r}")
        if self.reply_threshold < self.speech_threshold:
            raise ValueError(
                f"reply_threshold must be at least speech_threshold ({self.speech_threshold}), "
                f"not {self.reply_threshold!r}"
            )


@dataclass(frozen=True, kw_only=True)
class ConversationOptions:
    """What a conversation asks of the model, in no kind's words: dialects produce it, and each
    upstream kind maps it onto its own wire (``UpstreamKind.map_options``). ``None``: what the
    operator and the kind give.

    Attributes:
        instructions: the system prompt (Realtime ``instructions``, native ``assistantPrompt``).
        voice: a voice by name: a server's own (``alloy``), or a preset of the native protocol
            (:data:`PRESET_VOICES`); a kind that has no such voice keeps its own.
        reference_audio: PCM16 mono of a voice to imitate, at ``reference_rate_hz``.
        reference_rate_hz: the rate of ``reference_audio``.
        vad_threshold: how sure of the end of speech the server's VAD must be, in (0, 1).
    """

    instructions: str | None = None
    voice: str | None = None
    reference_audio: bytes | None = None
    reference_rate_hz: int = CLIENT_SAMPLE_RATE_HZ
    vad_threshold: float | None = None

    def __post_init__(self) -> None:
        _check(self.instructions is None or isinstance(self.instructions, str), "instructions",
               self.instructions, "None or a string")
        _check(self.voice is None or (isinstance(self.voice, str) and bool(self.voice.strip())),
               "voice", self.voice, "None or a voice name")
        _check(self.reference_audio is None or (isinstance(self.reference_audio, bytes)
                                                and 0 < len(self.reference_audio) <= MAX_REFERENCE_BYTES
                                                and len(self.reference_audio) % 2 == 0),
               "reference_audio", "<bytes>" if isinstance(self.reference_audio, bytes)
               else self.reference_audio, f"None or PCM16 of at most {MAX_REFERENCE_BYTES} bytes")
        _check(type(self.reference_rate_hz) is int and 8_000 <= self.reference_rate_hz <= 48_000,
               "reference_rate_hz", self.reference_rate_hz, "a whole number of Hz from 8000 to 48000")
        _check(self.vad_threshold is None or (_is_number(self.vad_threshold)
                                              and 0 < self.vad_threshold < 1),
               "vad_threshold", self.vad_threshold, "None or a number between 0 and 1 exclusive")

    @property
    def preset(self) -> int | None:
        """``voice`` as a native ``useAudioPrompt`` number, if it names a preset."""
        return PRESET_VOICES.get(self.voice) if self.voice is not None else None

    def native_keys(self) -> dict[str, Any]:
        """The native protocol's camelCase keys these options stand for (what a ``config``
        message would say); a voice that is no preset, and the reference audio, have none."""
        keys: dict[str, Any] = {}
        if self.instructions is not None:
            keys["assistantPrompt"] = self.instructions
        if self.vad_threshold is not None:
            keys["vadThreshold"] = self.vad_threshold
        if self.preset is not None:
            keys["useAudioPrompt"] = self.preset
        return keys


@dataclass(frozen=True, kw_only=True)
class UpstreamOptions:
    """A conversation's options in the native protocol's terms: its camelCase keys (MiniCPM-o's
    five, sections 2.2, 5.6 and 6), the operator's defaults with what the client may set applied.
    Every kind gets them; :attr:`conversation` is their neutral view, which each kind maps onto its
    own wire (the MiniCPM-o kind also reads the keys only it has).

    Attributes:
        assistant_prompt: ``assistantPrompt``; 2.6 puts it after the reference voice.
        vad_threshold: ``vadThreshold``; the turn ends when speech in the last second drops
            under ``1 - vad_threshold`` seconds. Must be in (0, 1).
        audio_format: ``audioFormat``; only logged by the upstream (the stream is always WAV).
        voice_clone_prompt: ``voiceClonePrompt``; 2.6 puts it before the reference voice.
        use_audio_prompt: ``useAudioPrompt``: 0 none, 1 default, 2 female, 3 male voice.
        hd_video: false in voice mode.
    """

    assistant_prompt: str = DEFAULT_ASSISTANT_PROMPT
    vad_threshold: float = DEFAULT_VAD_THRESHOLD
    audio_format: str = "wav"
    voice_clone_prompt: str = DEFAULT_VOICE_CLONE_PROMPT
    use_audio_prompt: int = DEFAULT_USE_AUDIO_PROMPT
    hd_video: bool = False

    def __post_init__(self) -> None:
        _check(isinstance(self.assistant_prompt, str), "assistant_prompt", self.assistant_prompt)
        _check(isinstance(self.voice_clone_prompt, str), "voice_clone_prompt", self.voice_clone_prompt)
        _check(isinstance(self.audio_format, str) and 0 < len(self.audio_format) <= 16,
               "audio_format", self.audio_format)
        _check(_is_number(self.vad_threshold) and 0 < self.vad_threshold < 1,
               "vad_threshold", self.vad_threshold, "a number between 0 and 1 exclusive")
        _check(type(self.use_audio_prompt) is int and self.use_audio_prompt in (0, 1, 2, 3),
               "use_audio_prompt", self.use_audio_prompt, "0, 1, 2 or 3")
        _check(isinstance(self.hd_video, bool), "hd_video", self.hd_video)

    def merged(self, config_data: Mapping[str, Any] | None) -> UpstreamOptions:
        """Return a copy with the client's camelCase keys applied.

        Raises:
            ValueError: an unknown key, or a value of the wrong type or range (names the key).
        """
        if not config_data:
            return self
        unknown = sorted(set(config_data) - CLIENT_OPTION_KEYS)
        if unknown:
            raise ValueError(f"unknown config key(s) {unknown}; allowed: {sorted(CLIENT_OPTION_KEYS)}")
        changes = {_SNAKE[key]: value for key, value in config_data.items()}
        return replace(self, **changes)

    @property
    def conversation(self) -> ConversationOptions:
        """These options in no kind's words: the prompt, the preset voice by name (``None`` for
        the default one, which every kind has its own of) and the VAD threshold."""
        voice = None if self.use_audio_prompt == DEFAULT_USE_AUDIO_PROMPT else _PRESET_NAMES[
            self.use_audio_prompt]
        return ConversationOptions(instructions=self.assistant_prompt, voice=voice,
                                   vad_threshold=self.vad_threshold)

    def to_upstream(self) -> dict[str, Any]:
        """The ``options`` object of ``/init_options``, all five keys (section 5.6)."""
        return {
            "hd_video": self.hd_video,
            "use_audio_prompt": self.use_audio_prompt,
            "vad_threshold": self.vad_threshold,
            "voice_clone_prompt": self.voice_clone_prompt,
            "assistant_prompt": self.assistant_prompt,
        }


_SNAKE = {
    "assistantPrompt": "assistant_prompt",
    "audioFormat": "audio_format",
    "vadThreshold": "vad_threshold",
    "voiceClonePrompt": "voice_clone_prompt",
    "useAudioPrompt": "use_audio_prompt",
}


@dataclass(frozen=True, kw_only=True)
class ProxyConfig:
    """Operator settings, shared by every session of one proxy.

    Attributes:
        upstream_url: base URL of the model server (``http://host:port``; a kind reached over
            WebSocket may take ``ws://host:port/path``); the pool's kind checks its scheme.
        chunk_duration: forwarded to the upstream kind (the MiniCPM-o kind's
            ``MiniCPMSettings.chunk_duration``: seconds of audio gathered before it goes
            upstream, a multiple of 0.2 s; its default is 0.2); ``None``, the default, leaves
            the kind's own. A kind without such a setting ignores it.
        options: the upstream options; a client may override ``client_option_keys`` of them.
        client_option_keys: which camelCase keys a client's ``config`` message may set: any
            iterable of them, stored as a ``frozenset``.
        connect_timeout_s: reaching the upstream (HTTP connect, WebSocket handshake).
        ack_timeout_s: forwarded as ``chunk_duration`` is (MiniCPM-o: waiting for one
            acknowledgement of an audio message).
        reply_stall_timeout_s: forwarded (MiniCPM-o: the longest silence of the reply stream
            once a reply has started).
        close_timeout_s: each teardown step.
        max_message_bytes: largest client frame; a larger one ends the session with 1009.
        max_text_bytes: largest control (text) frame; a larger one gets an error event.
        max_buffered_s: audio held for the upstream; past it the proxy stops reading the client
            (back-pressure), so a client that sends faster than real time is slowed, not dropped.
        max_pending_reply_bytes: reply audio queued for a slow client; past it the oldest reply
            audio is dropped (counted, logged, and reported to the client with a non-fatal
            ``reply_audio_dropped`` error event); once a slow client has lost that much again,
            the session ends with ``ClientTooSlow`` (1013).
        max_session_s: longest conversation; then ``SessionLimitExceeded`` (1013).
        idle_timeout_s: no client audio for this long ends the session with 1000.
        max_lead_s: how far client audio may run ahead of real time. The proxy sends audio
            upstream no faster than real time (the upstream's VAD needs it); a client more than
            this far ahead gets an error event and close 1008.
        max_text_frames_per_s: control messages per second (burst of as many); over it: 1008.
        max_skipped_s: forwarded (MiniCPM-o: audio the server may skip in a row with no
            reply coming before it is taken as stuck).
        max_sessions: live sessions this proxy admits (``None``: no limit); over it the
            handshake is refused with 503 and ``Retry-After`` (or close 1013).
        max_sessions_per_client: live sessions per client address (``None``: no limit); over
            it: 429 (or close 1013).
        max_loop_lag_s: the event loop's lag, smoothed over about a second, over which the
            process is overloaded: a new session is then refused at the handshake with 503 and
            ``Retry-After`` (or close 1013), until the lag is back under half of it. ``None``
            (the default): not measured. 0.1 suits a proxy whose sessions must stay in real
            time; see ``docs/deployment.md``.
        allowed_origins: ``Origin`` values admitted (``"https://app.example"``,
            ``"https://*.example.com"``, ``"*"``): any sequence of them (a list, a tuple),
            stored as a tuple; ``None`` admits any, including none. A refused Origin gets 403
            (or close 1008).
        retry_after_s: the ``Retry-After`` a refused client is given.
        max_queue: clients that may wait for a busy model server (each server holds one
            conversation at a time); one more is refused: at the handshake with 503 and
            ``Retry-After`` when this is 0, else with close 1013.
        max_queue_wait_s: longest wait in that queue; then an error event and close 1013.
        shutdown_grace_s: how long sessions get to end when the server shuts down.
        resume_grace_s: how long a session whose connection was cut (no close frame) is held
            for the client to reconnect with its resume token (0: a cut ends it at once).
        barge_in: how a client interrupts a reply: ``"off"``, ``"control"`` (its stop message
            only: the default), ``"voice"`` (speaking over the reply cuts it, found by the
            proxy's voice-activity detector), or a :class:`~asgi_audio_proxy.vad.BargeInConfig`
            with the detector's tunables. Stored as a ``BargeInConfig``.
    """

    upstream_url: str = DEFAULT_UPSTREAM_URL
    chunk_duration: float | None = None
    options: UpstreamOptions = field(default_factory=UpstreamOptions)
    client_option_keys: Collection[str] = CLIENT_OPTION_KEYS
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S
    ack_timeout_s: float | None = None
    reply_stall_timeout_s: float | None = None
    close_timeout_s: float = DEFAULT_CLOSE_TIMEOUT_S
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    max_text_bytes: int = DEFAULT_MAX_TEXT_BYTES
    max_buffered_s: float = DEFAULT_MAX_BUFFERED_S
    max_pending_reply_bytes: int = DEFAULT_MAX_PENDING_REPLY_BYTES
    max_session_s: float = DEFAULT_MAX_SESSION_S
    idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S
    max_lead_s: float = DEFAULT_MAX_LEAD_S
    max_text_frames_per_s: float = DEFAULT_MAX_TEXT_FRAMES_PER_S
    max_skipped_s: float | None = None
    max_sessions: int | None = None
    max_sessions_per_client: int | None = None
    max_loop_lag_s: float | None = None
    allowed_origins: Sequence[str] | None = None
    retry_after_s: int = DEFAULT_RETRY_AFTER_S
    max_queue: int = DEFAULT_MAX_QUEUE
    max_queue_wait_s: float = DEFAULT_MAX_QUEUE_WAIT_S
    shutdown_grace_s: float = DEFAULT_SHUTDOWN_GRACE_S
    resume_grace_s: float = DEFAULT_RESUME_GRACE_S
    barge_in: BargeInConfig | BargeInPolicy = field(default_factory=BargeInConfig)

    def __post_init__(self) -> None:
        if isinstance(self.barge_in, str):  # a policy's name: the detector's defaults
            object.__setattr__(self, "barge_in", BargeInConfig(policy=self.barge_in))
        _check(isinstance(self.barge_in, BargeInConfig), "barge_in", self.barge_in,
               "'off', 'control', 'voice' or a BargeInConfig")
        # what users write (a list, a set) is frozen here, so a config stays hashable and a
        # caller's later change to their list cannot reach it
        object.__setattr__(self, "client_option_keys",
                           frozenset(_strings("client_option_keys", self.client_option_keys)))
        if self.allowed_origins is not None:
            object.__setattr__(self, "allowed_origins",
                               tuple(_strings("allowed_origins", self.allowed_origins)))
        url = urlsplit(self.upstream_url)
        _check(url.scheme in ("http", "https", "ws", "wss") and bool(url.hostname), "upstream_url",
               self.upstream_url, "an http(s):// or ws(s):// URL with a host (its kind may take fewer)")
        _check(isinstance(self.options, UpstreamOptions), "options", self.options)
        _check(CLIENT_OPTION_KEYS.issuperset(self.client_option_keys), "client_option_keys",
               sorted(self.client_option_keys), f"a subset of {sorted(CLIENT_OPTION_KEYS)}")
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in FORWARDED_SETTINGS or f.name == "max_loop_lag_s":  # None: off / the kind's
                _check(value is None or (_is_number(value) and 0 < value < math.inf), f.name, value,
                       "None or a positive finite number")
            elif f.name == "resume_grace_s":  # 0: a cut connection ends its session at once
                _check(_is_number(value) and 0 <= value < math.inf, f.name, value,
                       "a finite number >= 0")
            elif f.name.endswith("_s") or f.name.endswith("_bytes"):
                _check(_is_number(value) and 0 < value < math.inf, f.name, value,
                       "a positive finite number")
        for name in ("max_sessions", "max_sessions_per_client"):
            value = getattr(self, name)
            _check(value is None or (type(value) is int and value >= 1), name, value,
                   "None or a whole number >= 1")
        _check(type(self.max_queue) is int and self.max_queue >= 0, "max_queue", self.max_queue,
               "a whole number >= 0")
        _check(type(self.retry_after_s) is int and self.retry_after_s >= 0, "retry_after_s",
               self.retry_after_s, "a whole number of seconds >= 0")
        _check(self.allowed_origins is None or all(self.allowed_origins), "allowed_origins",
               self.allowed_origins, "None or a sequence of non-empty strings")

    @property
    def voice(self) -> BargeInConfig:
        """``barge_in`` as the :class:`~asgi_audio_proxy.vad.BargeInConfig` it is stored as."""
        assert isinstance(self.barge_in, BargeInConfig)  # __post_init__ made it one
        return self.barge_in

    @property
    def forwarded_settings(self) -> dict[str, float]:
        """The original keywords set here (``chunk_duration``...), for the kind to take over."""
        return {name: value for name in FORWARDED_SETTINGS
                if (value := getattr(self, name)) is not None}

    def client_options(self, config_data: Mapping[str, Any] | None) -> UpstreamOptions:
        """Options for one conversation: ``options`` with the client's allowed keys applied.

        Raises:
            ValueError: a key the client may not set, or a bad value.
        """
        if config_data:
            refused = sorted(set(config_data).difference(self.client_option_keys))
            if refused:
                raise ValueError(f"config key(s) {refused} may not be set by the client; "
                                 f"allowed: {sorted(self.client_option_keys)}")
        return self.options.merged(config_data)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _strings(name: str, value: object) -> list[str]:
    """The strings of a sequence-valued setting, in order; a lone string is refused.

    Raises:
        ValueError: ``value`` is one string (itself a sequence of characters), not iterable, or
            holds something other than strings (names the setting).
    """
    if isinstance(value, str | bytes):
        raise ValueError(f"invalid {name}={value!r}: expected a sequence of strings, not one "
                         f"string (a string is a sequence of characters); write [{value!r}]")
    if not isinstance(value, Iterable):
        raise ValueError(f"invalid {name}={value!r}: expected a sequence of strings")
    items = list(value)
    _check(all(isinstance(item, str) for item in items), name, value, "a sequence of strings")
    return items


def _check(ok: bool, name: str, value: object, expected: str = "") -> None:
    if not ok:
        hint = f": expected {expected}" if expected else ""
        raise ValueError(f"invalid {name}={value!r}{hint}")
