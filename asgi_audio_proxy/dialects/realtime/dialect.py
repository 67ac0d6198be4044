"""The OpenAI Realtime dialect: one connection's events in, neutral events out, and back.

Owns: what each Realtime client event means to the proxy (audio appended, a turn committed or
cleared, a response asked for or cancelled, an item created, retrieved or deleted, the session
updated) and what each neutral server event becomes on the wire, each event named and numbered.
The state it needs is its parts': the session and its options (``options.py``), the audio the
model heard (``heard.py``), the conversation with the reply in progress and the user item being
spoken (``reply.py``). A request the model cannot answer is a response that fails with its
reason, never a bare ``error``. Must not: await, touch a socket, read a clock, or know the upstream.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from ...config import ProxyConfig
from ...events import (
    AudioIn,
    ClearInput,
    ClientEvent,
    CommitInput,
    ConfigApplied,
    ConfigKept,
    Configure,
    DialectFrames,
    ErrorEvent,
    Queued,
    Ready,
    ReplyAudio,
    ReplyEnded,
    ReplyStarted,
    ReplyText,
    ServerEvent,
    SpeechStarted,
    SpeechStopped,
    StopReply,
)
from ..base import Frame
from . import session_config as sc
from .codec import OutputEncoder, pcm_ms
from .heard import HeardAudio
from .items import client_item, spoken_audio, text_for_instructions
from .options import SessionOptions
from .reply import Conversation
from .requests import INPUT_AUDIO_SILENT, NO_USER_AUDIO, response_params
from .response import Event, outcome
from .wire import (
    IdSource,
    Protocol,
    RaisedErrors,
    RealtimeRequestError,
    dump,
    error_payload,
    parse_client_event,
    wire_name,
)

__all__ = ["RealtimeDialect", "max_event_chars"]

Json = dict[str, Any]
logger = logging.getLogger("asgi_audio_proxy.dialects.realtime")

#: the real API commits no less than this much audio
MIN_COMMIT_MS = 100.0
#: room for the JSON around an append's base64 audio
_JSON_OVERHEAD_CHARS = 1024
#: errors the session may answer a ``Configure`` with (a bad or refused option)
_CONFIG_ERROR_KINDS = ("bad_payload", "policy_violation")


def max_event_chars(config: ProxyConfig) -> int:
    """Longest client event taken: ``max_message_bytes`` of audio, base64-encoded, plus JSON."""
    return math.ceil(config.max_message_bytes / 3) * 4 + _JSON_OVERHEAD_CHARS


class RealtimeDialect:
    """One Realtime connection (GA or beta). Made by :func:`realtime_dialect` per handshake.

    Args:
        config: the proxy's settings (the session's defaults, limits, client-settable options).
        protocol: ``ga`` or ``beta``.
        subprotocol: the WebSocket subprotocol to accept with (``realtime`` when offered).
        model: the ``?model=`` the client asked for, shown back in the session.
    """

    name = "realtime"
    playback_lead_ms: float | None = None
    wants_speech_events = True  # input_audio_buffer.speech_started / speech_stopped
    binary_pcm_rate_hz: int | None = None  # audio comes base64 in JSON events

    def __init__(self, config: ProxyConfig, *, protocol: Protocol = "ga", subprotocol: str | None = None,
                 model: str = "minicpm-o") -> None:
        self.protocol: Protocol = protocol
        self.subprotocol = subprotocol
        self._ids = IdSource()
        self._options = SessionOptions(config, sc.initial_session(config, session_id=self._ids.new("sess"),
                                                                   model=model))
        self._heard = HeardAudio()
        self._conversation = Conversation(self._ids, protocol)
        self._has_opened = False
        self._raised = RaisedErrors()
        self._encoder = OutputEncoder()
        self._max_chars = max_event_chars(config)
        self._conversation.manual = sc.is_manual(self._options.session)
        #: speech over a reply cuts it (turn detection's ``interrupt_response``, OpenAI's default),
        #: whatever the proxy's ``barge_in`` policy short of ``off``; follows ``session.update``
        self.wants_speech_cuts = sc.interrupts_on_speech(self._options.session)

    @property
    def output_rate_hz(self) -> int:
        """24000 for ``audio/pcm``, 8000 for G.711 (follows ``session.update``)."""
        return sc.FORMAT_RATES_HZ[sc.audio_format(self._options.session, "output")]

    # -- client -> proxy ------------------------------------------------------------------------

    def receive(self, frame: Frame) -> list[ClientEvent]:
        """Decode one client event.

        Raises:
            RealtimeRequestError: anything the real API answers with an ``error`` event.
        """
        try:
            event = parse_client_event(frame, self._max_chars)
            kind, event_id = event["type"], event.get("event_id")
            handler = getattr(self, "_on_" + kind.replace(".", "_"), None)
            if handler is None:
                raise RealtimeRequestError(f"'{kind}' is not supported by this server: see its "
                                           "documentation for the supported events.",
                                           code="unsupported_event", param="type", event_id=event_id)
            events: list[ClientEvent] = handler(event, event_id if isinstance(event_id, str) else None)
            return events
        except RealtimeRequestError as exc:
            self._raised.note(exc)
            raise

    def _on_input_audio_buffer_append(self, event: Json, event_id: str | None) -> list[ClientEvent]:
        audio = event.get("audio")
        if not isinstance(audio, str):
            raise RealtimeRequestError("Missing required parameter: 'audio'.", param="audio",
                                       code="missing_required_parameter", event_id=event_id)
        pcm, rate = self._heard.append(audio, sc.audio_format(self._options.session, "input"), event_id)
        if not pcm:
            return []
        ended = self._conversation.appended(pcm_ms(len(pcm), rate))
        heard: list[ClientEvent] = [AudioIn(pcm, rate, wire_bytes=len(audio) * 3 // 4)]
        return [*heard, DialectFrames(tuple(self._frames(ended)))] if ended else heard

    def _on_input_audio_buffer_commit(self, event: Json, event_id: str | None) -> list[ClientEvent]:
        have_ms = self._conversation.uncommitted_ms
        if have_ms < MIN_COMMIT_MS:
            raise RealtimeRequestError(
                "Error committing input audio buffer: buffer too small. Expected at least "
                f"{MIN_COMMIT_MS:.0f}ms of audio, but buffer only has {have_ms:.2f}ms of audio.",
                code="input_audio_buffer_commit_empty", event_id=event_id)
        frames = self._frames(self._conversation.commit())
        self._conversation.is_reply_expected = True
        self._heard.commit()
        return [DialectFrames(tuple(frames)), CommitInput()]

    def _on_input_audio_buffer_clear(self, event: Json, event_id: str | None) -> list[ClientEvent]:
        self._conversation.clear()
        self._heard.clear()
        return [ClearInput(), DialectFrames(tuple(self._frames([{"type": "input_audio_buffer.cleared"}])))]

    def _on_session_update(self, event: Json, event_id: str | None) -> list[ClientEvent]:
        before = self._options.session
        new = sc.merge_update(before, event.get("session"), self.protocol, event_id)
        changed = self._options.update(new, event_id)
        if sc.audio_format(new, "input") != sc.audio_format(before, "input"):
            self._heard.format_changed()
        self._conversation.manual = sc.is_manual(new)
        self.wants_speech_cuts = sc.interrupts_on_speech(new)
        if not changed:
            return [DialectFrames(tuple(self._frames([self._session_event("session.updated")])))]
        return [Configure(changed, acknowledge=True)]

    def _on_response_create(self, event: Json, event_id: str | None) -> list[ClientEvent]:
        conversation = self._conversation
        active = conversation.reply or conversation.requested
        if active is not None:
            raise RealtimeRequestError(
                "Conversation already has an active response in progress: "
                f"{active.response_id}. "
                "Wait until the response is finished before creating a new one.",
                code="conversation_already_has_active_response", event_id=event_id)
        metadata, text_only = response_params(event, event_id, sc.is_text_only(self._options.session))
        before: list[ClientEvent] = []
        failure: tuple[str, str] | None = None
        if self._heard.has_item_audio:
            self._heard.has_item_audio, conversation.is_reply_expected = False, True
            before = [CommitInput()]  # the audio items end a turn: the model answers them
        elif not conversation.is_reply_expected:
            if conversation.uncommitted_ms >= MIN_COMMIT_MS:
                before = self._on_input_audio_buffer_commit(event, event_id)
            else:
                failure = NO_USER_AUDIO
        if failure is None and self._heard.is_silent_commit:
            conversation.is_reply_expected = False
            failure = INPUT_AUDIO_SILENT
        opened = conversation.request(text_only=text_only, audio_format=self._audio_format(),
                                      voice=self._voice(), metadata=metadata)
        if failure is not None:
            logger.info("response.create failed: %s", failure[0])
            opened += conversation.fail_requested(*failure)
        return [*before, DialectFrames(tuple(self._frames(opened)))]

    def _on_response_cancel(self, event: Json, event_id: str | None) -> list[ClientEvent]:
        conversation, wanted = self._conversation, event.get("response_id")
        reply = conversation.reply
        requested = conversation.requested
        if reply is None and requested is not None and wanted in (None, requested.response_id):
            # not started yet: it ends now; a reply the model starts anyway is a response of its own
            conversation.is_reply_expected = False
            done = requested.done("cancelled", {"type": "cancelled", "reason": "client_cancelled"}, [])
            conversation.requested = None
            return [DialectFrames(tuple(self._frames([done])))]
        if reply is None or conversation.is_cancelling or wanted not in (None, reply.response_id):
            raise RealtimeRequestError("Cancellation failed: no active response found",
                                       code="response_cancel_not_active", event_id=event_id)
        conversation.cancel()
        return [StopReply("client")]

    def _on_conversation_item_create(self, event: Json, event_id: str | None) -> list[ClientEvent]:
        item = client_item(event, self._ids.new("item"), event_id)
        conversation = self._conversation
        conversation.items.add(item)
        previous, conversation.last_item_id = conversation.last_item_id, item["id"]
        acked = [{"type": "conversation.item.added", "item": item, "previous_item_id": previous},
                 {"type": "conversation.item.done", "item": item, "previous_item_id": previous}]
        events: list[ClientEvent] = [DialectFrames(tuple(self._frames(acked)))]
        text, audio = text_for_instructions(event), spoken_audio(event)
        if text is not None:
            events += self._fold(text)
        elif audio:
            events += self._speak(audio, event_id)
        else:
            logger.info("conversation item %s (%s %s) kept but not used: the model takes audio, "
                        "and system or developer text", item["id"], item["type"], item.get("role"))
        return events

    def _fold(self, text: str) -> list[ClientEvent]:
        """System or developer text: the model takes it after the session's instructions."""
        instructions = self._options.fold(text, heard_audio=self._heard.has_heard)
        return [Configure(instructions, acknowledge=False)] if instructions else []

    def _speak(self, audio: list[str], event_id: str | None) -> list[ClientEvent]:
        """A user item's audio: spoken to the model, as appended audio is."""
        spoken = self._heard.speak(audio, sc.audio_format(self._options.session, "input"), event_id)
        return [AudioIn(pcm, rate, wire_bytes=nbytes) for pcm, rate, nbytes in spoken]

    def _on_conversation_item_retrieve(self, event: Json, event_id: str | None) -> list[ClientEvent]:
        retrieved = self._conversation.items.retrieved(event.get("item_id"), event_id)
        return [DialectFrames(tuple(self._frames([retrieved])))]

    def _on_conversation_item_delete(self, event: Json, event_id: str | None) -> list[ClientEvent]:
        deleted = self._conversation.items.deleted(event.get("item_id"), event_id)
        return [DialectFrames(tuple(self._frames([deleted])))]

    def _on_conversation_item_truncate(self, event: Json, event_id: str | None) -> list[ClientEvent]:
        truncated = self._conversation.truncate(event, event_id)
        return [DialectFrames(tuple(self._frames([truncated])))]

    # -- proxy -> client ------------------------------------------------------------------------

    def send(self, event: ServerEvent) -> list[Frame]:
        """Encode one neutral event as the client's events (``session.created`` goes first)."""
        if isinstance(event, DialectFrames):
            return list(event.frames)
        if isinstance(event, Queued | Ready):
            return self._frames([])
        if isinstance(event, ConfigApplied | ConfigKept):
            is_answer = (self._options.applied() if isinstance(event, ConfigApplied)
                         else self._options.kept(event.reason))
            return self._frames([self._session_event("session.updated")]) if is_answer else []
        if isinstance(event, ErrorEvent):
            return self._frames(self._error(event))
        if isinstance(event, SpeechStarted):
            return self._frames(self._conversation.speech(True, event.audio_start_ms))
        if isinstance(event, SpeechStopped):
            return self._frames(self._conversation.speech(False, event.audio_end_ms))
        if isinstance(event, ReplyStarted):
            return self._frames(self._start_reply())
        return self._frames(self._reply_event(event))

    def _reply_event(self, event: ReplyText | ReplyAudio | ReplyEnded) -> list[Event]:
        conversation = self._conversation
        if isinstance(event, ReplyEnded):
            return conversation.end_reply(*outcome(event))
        events = self._start_reply() if conversation.reply is None else []
        reply = conversation.reply
        assert reply is not None
        if conversation.is_cancelling:
            return events  # cancelled: nothing more of it goes out
        if isinstance(event, ReplyText):
            return [*events, reply.text(event.text)] if event.text else events
        if reply.text_only or not event.pcm:
            return events
        fmt = sc.audio_format(self._options.session, "output")
        deltas, ms = self._encoder.encode(event.pcm, event.rate_hz, fmt)
        conversation.add_audio(reply.item_id, ms)
        return events + [reply.audio(delta) for delta in deltas]

    def _start_reply(self) -> list[Event]:
        self._heard.reply_started()
        return self._conversation.start_reply(text_only=sc.is_text_only(self._options.session),
                                              audio_format=self._audio_format(), voice=self._voice())

    def _audio_format(self) -> Any:
        fmt = self._options.session["audio"]["output"]["format"]
        return fmt if self.protocol == "ga" else sc.beta_format(fmt["type"])

    def _voice(self) -> str:
        voice = self._options.session["audio"]["output"]["voice"]
        return voice if isinstance(voice, str) else str(voice["id"])

    def _error(self, event: ErrorEvent) -> list[Event]:
        error = self._raised.take(event.message)
        if error is None:
            event_id = None
            if self._options.is_waiting and not event.fatal and event.kind in _CONFIG_ERROR_KINDS:
                event_id = self._options.refused()  # the session refused this update's options
            server_side = event.kind.startswith("upstream") or event.kind == "internal_error"
            error = error_payload(event.message, error_type="server_error" if server_side
                                  else "invalid_request_error", code=event.kind, event_id=event_id)
        ended = outcome(ReplyEnded("interrupted"))
        events = []
        if event.fatal:
            events = self._conversation.end_reply(*ended)
            events += self._conversation.fail_requested("upstream_interrupted", event.message)
        return [*events, {"type": "error", "error": error}]

    def _session_event(self, kind: str) -> Event:
        return {"type": kind, "session": sc.render(self._options.session, self.protocol)}

    def _frames(self, events: list[Event]) -> list[Frame]:
        """Name and number ``events`` for the client, ``session.created`` first of all."""
        if not self._has_opened:
            self._has_opened = True
            events = [self._session_event("session.created"), *events]
        frames: list[Frame] = []
        for event in events:
            name = wire_name(event["type"], self.protocol)
            if name is not None:
                frames.append(dump({**event, "type": name, "event_id": self._ids.new("event")}))
        return frames

