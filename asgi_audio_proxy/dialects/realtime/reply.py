"""The conversation's items and its responses, as the events strict clients expect.

Owns: a response the client asked for (``response.created`` at once, its ``metadata`` echoed;
failed with its reason when the model cannot or does not answer it), the reply the model is
giving (its events are :class:`~.response.Reply`'s), the user item a committed turn becomes, bracketed
by ``speech_started`` / ``speech_stopped`` when turn detection is on (none at all when it is
off), the items kept for retrieval, the played length of each assistant item (for truncation),
and the reply as sent (a :class:`~asgi_audio_proxy.reply_state.ReplyLifecycle`: playing, or cut by the
client's ``response.cancel``, until its end goes out). Events are built in GA names without
``event_id``; the dialect names and numbers them. Must not: encode audio, know the session's
options beyond what it is given, or read a clock.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

from ...reply_state import ReplyLifecycle
from .items import ItemStore
from .response import Event, Reply, ResponseStatus
from .wire import IdSource, Protocol, RealtimeRequestError

__all__ = ["REPLY_WAIT_MS", "Conversation"]

#: assistant items remembered for ``conversation.item.truncate`` (older ones: unknown item)
_REMEMBERED_ITEMS = 64
#: a response asked for ends as failed if the model has not started it after this much more
#: client audio (clients stream their microphone, silence included, so it runs as a clock)
REPLY_WAIT_MS = 8000.0


class Conversation:
    """The items of one connection: the user turn being spoken, the reply in progress, the
    order of items, and how much audio each assistant item has had."""

    def __init__(self, ids: IdSource, protocol: Protocol) -> None:
        self._ids = ids
        self._protocol = protocol
        self.last_item_id: str | None = None
        #: the response in progress (playing, or cancelled and not yet ended): its ids and text
        self.reply: Reply | None = None
        #: its phase; a cancelled one is cut: nothing more of it goes out
        self.reply_state = ReplyLifecycle("realtime client")
        #: audio appended since the last commit, in milliseconds
        self.uncommitted_ms = 0.0
        #: a turn was committed and its reply has not started yet
        self.is_reply_expected = False
        #: ``turn_detection: null``: no speech events, and only the client commits
        self.manual = False
        #: the items of the conversation, for retrieval
        self.items = ItemStore()
        #: a response the client asked for (``response.created`` sent), not started by the model
        self.requested: Reply | None = None
        self._requested_at_ms = 0.0
        #: client audio appended since the connection opened, in milliseconds
        self.audio_ms = 0.0
        self._input_item_id: str | None = None
        self._speech: list[str] = []  # the speech events sent for the user item being spoken
        self._audio_ms: OrderedDict[str, float] = OrderedDict()

    def input_item_id(self) -> str:
        """The id the user turn being spoken will have once committed."""
        self._input_item_id = self._input_item_id or self._ids.new("item")
        return self._input_item_id

    def appended(self, ms: float) -> list[Event]:
        """Note ``ms`` of user audio appended; returns the end of a response asked for that the
        model has not started within :data:`REPLY_WAIT_MS` of audio (else nothing)."""
        self.uncommitted_ms += ms
        self.audio_ms += ms
        self.input_item_id()
        if self.requested is not None and self.audio_ms - self._requested_at_ms > REPLY_WAIT_MS:
            self.is_reply_expected = False
            return self.fail_requested("reply_timeout", "The model did not start a reply within "
                                       f"{REPLY_WAIT_MS / 1000:g} s of audio after it was asked for.")
        return []

    def speech(self, started: bool, ms: int) -> list[Event]:
        """A speech event of the voice detector for the user item being spoken: none in manual
        turns, and a stop only after its start."""
        kind = "input_audio_buffer.speech_started" if started else "input_audio_buffer.speech_stopped"
        if self.manual or (kind in self._speech) or (not started and not self._speech):
            return []
        self._speech.append(kind)
        key = "audio_start_ms" if started else "audio_end_ms"
        return [{"type": kind, key: ms, "item_id": self.input_item_id()}]

    def clear(self) -> None:
        """Forget the audio appended since the last commit."""
        self.uncommitted_ms, self._input_item_id, self._speech = 0.0, None, []

    def commit(self) -> list[Event]:
        """The events of the user turn being committed: committed, item added, item done; with
        turn detection on, after the speech events the detector did not give (the model heard
        the turn end, so it was speech)."""
        bracket = []
        if not self.manual:
            bracket = [*self.speech(True, math.floor(self.audio_ms - self.uncommitted_ms)),
                       *self.speech(False, math.floor(self.audio_ms))]
        item_id = self.input_item_id()
        self.clear()
        item = {"id": item_id, "object": "realtime.item", "type": "message", "role": "user",
                "status": "completed", "content": [{"type": "input_audio", "transcript": None}]}
        self.items.add(item)
        previous, self.last_item_id = self.last_item_id, item_id
        return [
            *bracket,
            {"type": "input_audio_buffer.committed", "item_id": item_id, "previous_item_id": previous},
            {"type": "conversation.item.added", "item": item, "previous_item_id": previous},
            {"type": "conversation.item.done", "item": item, "previous_item_id": previous},
        ]

    def request(self, *, text_only: bool, audio_format: Any, voice: str,
                metadata: Any = None) -> list[Event]:
        """The client's ``response.create``: the response exists now (``response.created``);
        the model's next reply fills it."""
        reply = self.requested = Reply(self._ids, self._protocol, previous_item_id=None,
                                       text_only=text_only, audio_format=audio_format, voice=voice,
                                       metadata=metadata)
        self._requested_at_ms = self.audio_ms
        return [reply.created()]

    def fail_requested(self, code: str, message: str) -> list[Event]:
        """The end of the response asked for, failed for ``code`` (none if there is none)."""
        reply, self.requested = self.requested, None
        if reply is None:
            return []
        error = {"type": "invalid_request_error", "code": code, "message": message}
        return [reply.done("failed", {"type": "failed", "error": error}, [])]

    def start_reply(self, *, text_only: bool, audio_format: Any, voice: str) -> list[Event]:
        """A new response (after the user turn it answers, committed now if it was not, unless
        the client commits turns itself): the one asked for, if the client asked."""
        events = self.end_reply("completed", None) if self.reply is not None else []
        if self.uncommitted_ms > 0 and not self.manual:
            events += self.commit()  # the model ended the turn: that audio is the user's item
        self.is_reply_expected = False
        self.reply_state.start()
        reply, self.requested = self.requested, None
        if reply is None:
            reply = Reply(self._ids, self._protocol, previous_item_id=None, text_only=text_only,
                          audio_format=audio_format, voice=voice)
            events.append(reply.created())
        reply.previous_item_id = self.last_item_id
        self.reply = reply
        self.last_item_id = reply.item_id
        self._audio_ms[reply.item_id] = 0.0
        while len(self._audio_ms) > _REMEMBERED_ITEMS:
            self._audio_ms.popitem(last=False)
        return events + reply.opening()

    def end_reply(self, status: ResponseStatus, details: dict[str, Any] | None) -> list[Event]:
        """The closing events of the reply in progress (none if there is none)."""
        reply, self.reply = self.reply, None
        if reply is None:
            return []
        if self.reply_state.is_playing:
            self.reply_state.end()
        self.reply_state.close()
        events = reply.closing(status, details)
        self.items.add(events[-1]["response"]["output"][0])
        return events

    @property
    def is_cancelling(self) -> bool:
        """A ``response.cancel`` was passed on for the reply in progress: none of the rest goes out."""
        return self.reply_state.is_cut

    def cancel(self) -> None:
        """The client cancelled the reply in progress (the caller checks there is one, not yet
        cancelled)."""
        self.reply_state.cut()

    def add_audio(self, item_id: str, ms: float) -> None:
        """Note ``ms`` of audio sent for assistant item ``item_id``."""
        if item_id in self._audio_ms:
            self._audio_ms[item_id] += ms

    def truncate(self, event: dict[str, Any], event_id: str | None) -> Event:
        """The ``conversation.item.truncated`` answering a ``conversation.item.truncate``.

        The transcript stays whole (the model gives no word timings); ``audio_end_ms: 0`` is fine.

        Raises:
            RealtimeRequestError: a missing field, an item that is not an assistant audio item
                of this conversation, or an end past the audio sent.
        """
        item_id, end_ms = event.get("item_id"), event.get("audio_end_ms")
        index = event.get("content_index", 0)
        for name, value in (("item_id", item_id), ("audio_end_ms", end_ms)):
            if value is None:
                raise RealtimeRequestError(f"Missing required parameter: '{name}'.", param=name,
                                           code="missing_required_parameter", event_id=event_id)
        if not isinstance(end_ms, int) or isinstance(end_ms, bool) or end_ms < 0:
            raise RealtimeRequestError(f"Invalid value: {end_ms!r}. Expected a whole number >= 0.",
                                       param="audio_end_ms", event_id=event_id)
        sent_ms = self._audio_ms.get(item_id) if isinstance(item_id, str) else None
        if sent_ms is None or index != 0:
            raise RealtimeRequestError(f"Invalid value: '{item_id}'. No assistant audio item with that id "
                                       f"and content_index {index!r}.", param="item_id", event_id=event_id)
        if end_ms > math.ceil(sent_ms):
            raise RealtimeRequestError(f"Audio content of {sent_ms:.0f}ms is already shorter than {end_ms}ms",
                                       param="audio_end_ms", event_id=event_id)
        return {"type": "conversation.item.truncated", "item_id": item_id, "content_index": 0,
                "audio_end_ms": end_ms}
