"""The simulated model server's conversation state: the upstream's ``StreamManager``, minus I/O.

Owns: what one conversation remembers and how each event changes it, step for step as the real
server does (``UPSTREAM_PROTOCOL.md`` sections 1, 3.2, 4.2, 5 and 8): the remembered uid and
model session, the stream-message rules and their ack reasons, the 5-message VAD window and
prefill (truncated to 16 000 samples), the end-of-turn rules, the echo guard, the stop flag, the
reset after a reply. The stand-in model is ``simulator_model.py``.

Must not: await, send, or read a clock of its own: the caller passes ``now`` (seconds, any
monotonic origin) into every call that needs time. The web edge is ``simulator.py``.

The upstream wraps every failure of a stream message into ``Message processing error: Audio
processing error: <text>``; :meth:`Conversation.process_message` does the same with a broad
``except`` on purpose, so that the texts (and the moments they appear) match the real server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from asgi_audio_proxy.audio.wav import CLIENT_SAMPLE_RATE_HZ, pcm16_to_wav
from asgi_audio_proxy.simulator.model import (
    ReplyChunk,
    SimulatedModel,
    SimulatorVersion,
    build_reply,
    decode_base64,
    merge_chunks,
    pcm_to_float,
)
from asgi_audio_proxy.simulator.vad import speech_seconds, window_rms

__all__ = ["MIN_TURN_S", "ChunkError", "Conversation", "OptionsStore"]

#: stream messages per VAD window and per prefill (``vad_sequence_length``, 1000 / ``audio_chunk``)
VAD_WINDOW_MESSAGES = 5
#: the prefill keeps only this many samples of each 5-message group (section 5.3)
PREFILL_MAX_SAMPLES = 16_000
#: speech start: window RMS above this and more than this many seconds of speech (section 5.2)
START_RMS, START_SPEECH_S = 0.002, 0.4
#: end threshold when no options were ever set; else ``1 - vad_threshold``
DEFAULT_END_SPEECH_S = 0.2
#: a burst shorter than this (wall clock since speech start) does not end a turn
MIN_TURN_S = 0.6
#: echo guard: seconds added per reply chunk, and the fixed margin (section 5.5)
GUARD_STEP_S: dict[str, float] = {"2.6": 12_800 / 24_000 + 0.15, "4.5": 25 * 0.04 + 0.15}
GUARD_EXTRA_S = 2.5
#: the model session restarts when its cache passes this many tokens (section 5.4)
MAX_CACHE_TOKENS = 8_192
_TOKENS_PER_REPLY_CHUNK = 26
#: the upstream's first session id, already used for its start-up prompt
_FIRST_SESSION_ID = 234


class ChunkError(Exception):
    """A stream message failed; its text is the upstream's (section 3.3: WS close 1011)."""


@dataclass(slots=True)
class OptionsStore:
    """The options ``/init_options`` stored, shared by every conversation (``None``: never set)."""

    value: Any = None
    ever_set: bool = False


class Conversation:
    """One conversation's state, changed only through these methods (all synchronous).

    Field names follow the upstream's ``StreamManager`` where a reader may want to compare.

    Args:
        version: which upstream to mimic ("2.6" or "4.5").
        options: the shared options store.
        reply_chunks: see :func:`build_reply`.
        min_turn_s: the shortest speech, on the clock from its start, that ends a turn.
    """

    def __init__(
        self, *, version: SimulatorVersion, options: OptionsStore, reply_chunks: int | None,
        min_turn_s: float = MIN_TURN_S,
    ) -> None:
        self.version: SimulatorVersion = version
        self.min_turn_s = min_turn_s
        self.options = options
        self.reply_chunks = reply_chunks
        self.model = SimulatedModel()
        self.uid: str | None = None
        self.session_id = _FIRST_SESSION_ID
        self.past_session_id = _FIRST_SESSION_ID - 1
        self.sys_prompt_flag = False
        self.output_audio_id = 0
        self.speaking_time_stamp: float | None = None
        self.last_request_time: float | None = None
        self.last_stream_time: float | None = None
        self.turn_ends = 0
        #: PCM of chunks accepted since the caller last took them
        self.accepted: list[bytes] = []
        self._clear_turn()

    def _clear_turn(self) -> None:
        """The upstream's ``reset()`` (with ``clear()``): per-turn state only."""
        self.turn_complete = False  # is_streaming_complete: releases the waiting /completions
        self.conversation_started = False
        self.last_request_time = None
        self.last_stream_time = None
        self.stop_requested = False
        self.decoding = False  # flag_decode
        self.speaking = False  # stream_started
        self.vad_start_time = 0.0
        self.vad_sequence: list[bytes] = []
        self.audio_prefill: list[bytes] = []
        self.audio_input: list[bytes] = []
        self.has_image = False
        if self.model.tokens > MAX_CACHE_TOKENS:
            self.session_id += 1
            self.sys_prompt_flag = False

    # -- requests -------------------------------------------------------------------------------

    def open_completions(self, uid: str, now: float) -> None:
        """``/completions`` arrived (before its body is read): takeover rules of section 5.1."""
        if self.uid != uid:
            self.session_id += 1
            self.sys_prompt_flag = False
            self._clear_turn()
        self.speaking_time_stamp = None
        self.last_request_time = now
        self.uid = uid
        self.conversation_started = True
        self.stop_requested = False

    def request_stop(self) -> None:
        self.stop_requested = True

    def touch(self, now: float, *, stream: bool) -> None:
        """Note activity (``stream``: a stream message, which also feeds the no-audio trigger)."""
        self.last_request_time = now
        if stream:
            self.last_stream_time = now

    def uid_conflicts(self, uid: str) -> bool:
        return self.uid is not None and self.uid != uid

    def tick(self, now: float, *, inactivity_s: float, no_audio_s: float) -> None:
        """The 1 s background check: inactivity reset and the no-audio end of turn."""
        if self.last_request_time is not None and now - self.last_request_time > inactivity_s:
            self._clear_turn()
        silent = self.last_stream_time is not None and now - self.last_stream_time > no_audio_s
        if silent and self.speaking and not self.turn_complete:
            self.turn_complete = True
            self.turn_ends += 1

    # -- stream messages ------------------------------------------------------------------------

    def process_message(self, message: Any, now: float) -> str:
        """One ``{"role", "content"}`` message of a stream frame; returns the ack reason.

        Raises:
            ChunkError: the upstream would fail this message (WS close 1011 / HTTP 500).
        """
        try:
            audio_data, image_data = None, None
            for item in message["content"]:
                if item["type"] == "stop_response":
                    self.stop_requested = True
                    return "stop"
                if item["type"] == "input_audio":
                    audio_data = item["input_audio"]["data"]
                elif item["type"] == "image_data":
                    image_data = item["image_data"]["data"]
            if audio_data is None:
                return "empty audio"
            if (self.conversation_started and self.turn_complete) or self.decoding:
                return "skip"
            try:
                self._accept(audio_data, image_data, now)
                return "done"
            except Exception as exc:  # the upstream's wrapping, see the module docstring
                raise ValueError(f"Audio processing error: {exc}") from exc
        except Exception as exc:
            raise ChunkError(f"Message processing error: {exc}") from exc

    def _accept(self, audio_data: Any, image_data: Any, now: float) -> None:
        audio = decode_base64(audio_data)
        if not self.sys_prompt_flag:
            self.sys_prompt_flag = True
            self._init_system_prompt()
        has_image = image_data is not None and len(image_data) > 0
        self._prefill(audio, has_image, now, is_end=False)
        self.vad_sequence.append(audio)
        if len(self.vad_sequence) < VAD_WINDOW_MESSAGES:
            return
        if len(self.vad_sequence) > VAD_WINDOW_MESSAGES:
            self.vad_sequence.pop(0)
        self._vad_check(audio, has_image, now)

    def _init_system_prompt(self) -> None:
        """Build the session's prompt; the option lookups fail exactly where the upstream's do."""
        if self.past_session_id == self.session_id:
            return
        opts = self.options.value
        if self.version == "2.6":
            if opts is not None:
                _ = (opts["voice_clone_prompt"], opts["assistant_prompt"])
            prefill = opts is not None and opts["use_audio_prompt"] > 0
        else:
            prefill = opts is not None and opts.get("use_audio_prompt", 0) > 0
        if prefill:
            self.model.prefill(self.session_id, None)
        self.past_session_id = self.session_id
        self.audio_prefill, self.audio_input = [], []

    def _guarded(self, now: float) -> bool:
        stamp = self.speaking_time_stamp
        return stamp is not None and stamp - now + GUARD_EXTRA_S > 0

    def _prefill(self, audio: bytes, has_image: bool, now: float, *, is_end: bool) -> None:
        if self._guarded(now) or self.decoding:
            return
        self.has_image = self.has_image or has_image
        if not is_end:
            self.audio_prefill.append(audio)
            self.audio_input.append(audio)
            self.accepted.append(audio)
        opts = self.options.value
        if is_end and opts is not None and not opts["hd_video"]:
            return
        full = len(self.audio_prefill) == VAD_WINDOW_MESSAGES
        if full or (is_end and self.audio_prefill):
            pcm, _, channels = merge_chunks(self.audio_prefill)
            self.audio_prefill = []
            samples = pcm_to_float(pcm, channels)[:PREFILL_MAX_SAMPLES]
            self.model.prefill(self.session_id, samples)

    def _vad_check(self, audio: bytes, has_image: bool, now: float) -> None:
        pcm, rate, channels = merge_chunks(self.vad_sequence)
        # the upstream's VAD reads the merged file, header and all, as int16 samples
        raw = np.frombuffer(pcm16_to_wav(pcm, rate, channels), dtype="<i2")
        speech_s = speech_seconds(raw.astype(np.float32) / 32768.0)
        opts = self.options.value
        end_below_s = 1 - opts["vad_threshold"] if opts is not None else DEFAULT_END_SPEECH_S
        if window_rms(pcm_to_float(pcm, channels)) > START_RMS and speech_s > START_SPEECH_S:
            if not self.speaking:
                self.vad_start_time = now
                self.speaking = True
        elif speech_s < end_below_s and self.speaking:
            self.speaking = False
            if now - self.vad_start_time >= self.min_turn_s:
                self._prefill(audio, has_image, now, is_end=True)
                self.turn_complete = True
                self.turn_ends += 1

    def take_accepted(self) -> list[bytes]:
        """The WAV bytes of chunks accepted since the last call (for the recorder)."""
        taken, self.accepted = self.accepted, []
        return taken

    # -- replies --------------------------------------------------------------------------------

    def echo_wav(self) -> bytes:
        """Start decoding; the WAV of every chunk accepted this turn (section 4.2, message 1).

        Raises:
            TurnAudioMissing: nothing was accepted (the echo guard ate the whole turn).
        """
        self.decoding = True
        pcm, rate, channels = merge_chunks(self.audio_input)
        return pcm16_to_wav(pcm, rate, channels)

    def generate(self, now: float) -> tuple[int, str, float, float, list[ReplyChunk]]:
        """Run the stand-in model: (turn, text, heard s, sound s, chunks); no chunks if it fails."""
        self.speaking_time_stamp = now
        started = self.model.generate()
        if started is None:  # the model fails with an empty cache; the upstream logs and goes on
            return 0, "", 0.0, 0.0, []
        turn, heard = started
        text, voiced, chunks = build_reply(self.version, turn, heard, self.reply_chunks)
        self.model.tokens += _TOKENS_PER_REPLY_CHUNK * len(chunks)
        return turn, text, len(heard) / CLIENT_SAMPLE_RATE_HZ, voiced, chunks

    def chunk_sent(self) -> None:
        """A reply chunk is about to go out: response ids (2.6 only) and the echo guard move on."""
        if self.version == "2.6":
            self.output_audio_id += 1

    def chunk_done(self) -> None:
        if self.speaking_time_stamp is not None:
            self.speaking_time_stamp += GUARD_STEP_S[self.version]

    def end_reply(self) -> None:
        """The upstream's ``generate_end()``: ids +10, then the per-turn reset."""
        self.output_audio_id += 10
        self._clear_turn()

