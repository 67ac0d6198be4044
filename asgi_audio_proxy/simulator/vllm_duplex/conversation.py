"""One simulated duplex session: client events in, server events out, no I/O and no clock.

Owns: the model-owned turn of a MiniCPM-o 4.5 duplex session as the simulator plays it. Input
audio is cut into 1 s units (``chunk_period_ms``); each unit is one model step, so output is
made only as input arrives (a client must keep streaming, silence included). While listening,
a unit with speech (the simulator's energy VAD) is the user talking; the first quiet unit after
speech opens a response (``response.created`` -> ``output_item.added`` -> ``content_part.added``
-> ``response.speak``) carrying its first 1 s of audio, and every later unit carries the next
(``response.output_audio.delta``, 24 kHz PCM16, paired 1:1 with its transcript delta) until
the reply is out (``*.done``, ``response.done``, ``rate_limits.updated``). A quiet unit with
nothing to say is ``response.listen``. ``response.cancel``, ``output_audio_buffer.clear``,
``barge_in`` (or speech over a reply under ``barge_in_on_speech``) end the reply as
``cancelled`` and advance the epoch; under ``listen_only`` speech over a reply is reported as
``overlap.decision``: ``drop`` (a remark shorter than ``overlap_short_ack_ms``, forgotten) or
``listen`` (kept for the turn after the reply). A commit closes the input: the model then says all it owes
at once, since no more input will pace it. Also ``playback.ack`` and the playback ledger,
heartbeats, commits, clears, truncations, and errors for what the server refuses; an event of
another type is answered ``unknown_event`` and the session goes on, as the real server answers
an unknown one (its conversation-item, text and function-call events are not simulated). What
a reply says is ``replies.py``'s, the events a response is told in ``responses.py``'s.

Must not: stamp ``server_event_seq``, journal, or know about sockets (``app.py`` does).
"""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from asgi_audio_proxy.simulator.vad import speech_seconds
from asgi_audio_proxy.simulator.vllm_duplex.replies import MAX_REPLY_UNITS, Reply, plan_reply
from asgi_audio_proxy.simulator.vllm_duplex.responses import closing, opening, unit
from asgi_audio_proxy.simulator.vllm_duplex.wire import INPUT_RATE_HZ, UNIT_MS, error, event, session_object

__all__ = ["DuplexConversation"]

UNIT_BYTES = INPUT_RATE_HZ * UNIT_MS // 1000 * 2
#: a unit with at least this much speech in it is the user talking
MIN_SPEECH_S = 0.1
#: ``overlap_short_ack_ms``: speech over a reply shorter than this is a remark, not a turn
SHORT_ACK_MS = 700
_INPUT_FORMATS = frozenset({"pcm16", "pcm_s16le", "s16le"})
_CANCEL_TYPES = {"response.cancel": "client_cancelled", "output_audio_buffer.clear": "client_cancelled",
                 "barge_in": "barge_in"}


@dataclass(slots=True)
class DuplexConversation:
    """A duplex session's state; feed it client events, send what it returns, in order."""

    session_id: str
    config: dict[str, Any]
    reply_units: int | None = None
    max_reply_units: int = MAX_REPLY_UNITS
    epoch: int = 0
    turn: int = 0
    replies: list[Reply] = field(default_factory=list)
    active: Reply | None = None
    _unit: bytearray = field(default_factory=bytearray)
    _speech: list[np.ndarray] = field(default_factory=list)  # the units with speech in them
    _speech_s: float = 0.0  # how much speech they hold
    _heard_input: bool = False
    _unit_speech_s: float = 0.0  # speech in the last unit heard

    def session(self) -> dict[str, Any]:
        last = self.replies[-1] if self.replies else None
        playback = {"generated_ms": last.generated_ms if last else 0,
                    "sent_ms": last.generated_ms if last else 0,
                    "played_ms": last.played_ms if last else 0,
                    "committed_ms": last.played_ms if last else 0}
        return session_object(self.session_id, self.config, epoch=self.epoch, turn_id=self.turn,
                              active_response_id=self.active.response_id if self.active else None,
                              playback=playback)

    def handle(self, message: dict[str, Any]) -> list[dict[str, Any]]:
        """The server's answer to one client event (the transport's own events excepted)."""
        kind = message.get("type")
        client_id = message.get("event_id")
        if kind == "input_audio_buffer.append":
            return self._append(message)
        if kind in _CANCEL_TYPES or (kind == "turn.signal" and message.get("event") == "barge_in"):
            if self.active is None:
                return [error("response_not_active", "no response is active",
                              client_event_id=client_id)]
            out = [event("output_audio_buffer.cleared", response_id=self.active.response_id)] \
                if kind == "output_audio_buffer.clear" else []
            return out + self._cancel(_CANCEL_TYPES.get(str(kind), "barge_in"))
        if kind == "turn.signal":  # another signal: taken, and nothing the simulator acts on
            return []
        if kind in ("input_audio_buffer.commit", "input.commit"):
            return self._commit(message)
        if kind in ("input_audio_buffer.clear", "input.cancel"):
            self._unit.clear()
            if kind == "input.cancel":  # it fences what was under way, as a cancel does
                self.epoch += 1
            return [event("input_audio_buffer.cleared")]
        if kind in ("playback.ack", "audio.playback_ack"):
            return self._ack(message)
        if kind == "session.heartbeat":
            return [event("session.heartbeat_ack", session_id=self.session_id)]
        if kind == "session.update":
            return self._update(message)
        if kind == "response.create":
            if not self._heard_input:
                return [error("response_create_without_input", "response.create needs input audio",
                              client_event_id=client_id)]
            return [] if self.active is not None else self._open_reply() + self._flush()
        if kind == "conversation.item.truncate":
            return [event("conversation.item.truncated", item_id=message.get("item_id"),
                          content_index=message.get("content_index", 0),
                          audio_end_ms=message.get("audio_end_ms"), event=dict(message))]
        return [error("unknown_event", f"Unknown duplex event type: {kind}", client_event_id=client_id)]

    # -- input ----------------------------------------------------------------------------------

    def _append(self, message: dict[str, Any]) -> list[dict[str, Any]]:
        fmt = message.get("input_audio_format") or message.get("format") or "pcm16"
        rate = message.get("sample_rate_hz") or INPUT_RATE_HZ
        if fmt not in _INPUT_FORMATS or rate != INPUT_RATE_HZ:
            return [error("unsupported_audio_format", f"the simulator takes pcm16 at 16000 Hz, not "
                          f"{fmt} at {rate}", client_event_id=message.get("event_id"))]
        try:
            pcm = base64.b64decode(str(message.get("audio", "")), validate=True)
        except (binascii.Error, ValueError) as exc:
            return [error("bad_audio", f"invalid base64 audio: {exc}",
                          client_event_id=message.get("event_id"))]
        self._unit += pcm
        self._heard_input = self._heard_input or bool(pcm)
        out: list[dict[str, Any]] = []
        while len(self._unit) >= UNIT_BYTES:
            unit = np.frombuffer(bytes(self._unit[:UNIT_BYTES]), "<i2").astype(np.float32) / 32768
            del self._unit[:UNIT_BYTES]
            out += self._step(unit)
        return out

    def _step(self, unit: np.ndarray) -> list[dict[str, Any]]:
        """One model unit: 1 s of input heard, and what the model says in that second."""
        is_speech = self._hear(unit)
        if self.active is not None:
            if is_speech and self.config.get("overlap_policy") == "barge_in_on_speech":
                decision = event("overlap.decision", session_id=self.session_id, epoch=self.epoch,
                                 policy="barge_in_on_speech", action="barge_in",
                                 reason="overlap_speech", metadata={})
                return [decision, *self._cancel("barge_in")]
            if is_speech:
                return [self._overlap(), *self._next_unit()]
            return self._next_unit()
        if is_speech or not self._speech:
            return [self._listen("model_listen")]
        return self._open_reply() + self._next_unit()

    def _overlap(self) -> dict[str, Any]:
        """``listen_only``: speech over the reply, in the unit just heard. A remark shorter than
        ``overlap_short_ack_ms`` is dropped (not a turn); longer speech is kept for the turn
        after the reply (``listen``)."""
        seconds = self._unit_speech_s
        if seconds * 1000 < self.config.get("overlap_short_ack_ms", SHORT_ACK_MS):
            self._speech.pop()
            self._speech_s -= seconds
            action, reason = "drop", "short_overlap_ack"
        else:
            action, reason = "listen", "long_overlap_speech"
        return event("overlap.decision", session_id=self.session_id, epoch=self.epoch,
                     policy="listen_only", action=action, reason=reason,
                     metadata={"overlap_ms": round(seconds * 1000), "buffer_audio": action == "listen",
                               "defer_runtime_append": action == "listen",
                               "force_listen": action == "listen"})

    def _hear(self, unit: np.ndarray) -> bool:
        """Whether ``unit`` has speech in it; if so, it counts for the turn."""
        seconds = self._unit_speech_s = speech_seconds(unit)
        if seconds < MIN_SPEECH_S:
            return False
        self._speech.append(unit)
        self._speech_s += seconds
        return True

    def _listen(self, reason: str) -> dict[str, Any]:
        return event("response.listen", session_id=self.session_id, epoch=self.epoch,
                     response={"object": "realtime.response", "status": "listening",
                               "metadata": {"type": "response.listen", "reason": reason}})

    def _commit(self, message: dict[str, Any]) -> list[dict[str, Any]]:
        item_id = f"item_{uuid.uuid4().hex[:12]}"
        deferred = self.active is not None
        out = [event("input_audio_buffer.committed", previous_item_id=None, item_id=item_id,
                     event={"type": "input.committed", "session_id": self.session_id,
                            "turn_id": self.turn + 1, "epoch": self.epoch,
                            "response_create_deferred": deferred})]
        if message.get("is_speech") is False:
            return [*out, self._listen("non_speech_commit")]
        self._take_partial_unit()
        if self.active is None and self._speech:
            out += self._open_reply()
        return out + self._flush()

    def _take_partial_unit(self) -> None:
        """A commit ends the input: speech in the unit not yet full counts for the turn."""
        if len(self._unit) >= UNIT_BYTES // 10:
            self._hear(np.frombuffer(bytes(self._unit), "<i2").astype(np.float32) / 32768)
        self._unit.clear()

    def _flush(self) -> list[dict[str, Any]]:
        """The input is closed: every unit owed goes now, a reply deferred behind it included."""
        out: list[dict[str, Any]] = []
        while self.active is not None:
            out += self._next_unit()
            if self.active is None and self._speech:
                out += self._open_reply()
        return out

    # -- replies --------------------------------------------------------------------------------

    def _open_reply(self) -> list[dict[str, Any]]:
        self.turn += 1
        reply = plan_reply(self._speech, self._speech_s, self.turn, self.reply_units, self.max_reply_units)
        self._speech.clear()
        self._speech_s = 0.0
        self.replies.append(reply)
        self.active = reply
        return opening(reply, self.session_id, self.epoch)

    def _next_unit(self) -> list[dict[str, Any]]:
        reply = self.active
        assert reply is not None
        reply.sent_units += 1
        out = unit(reply, reply.sent_units - 1, self.session_id, self.epoch)
        return out + self._finish("completed", None) if reply.sent_units == len(reply.parts) else out

    def _cancel(self, reason: str) -> list[dict[str, Any]]:
        self.epoch += 1
        return self._finish("cancelled", reason)

    def _finish(self, status: str, reason: str | None) -> list[dict[str, Any]]:
        reply = self.active
        assert reply is not None
        self.active = None
        reply.status = status
        return closing(reply, self.session_id, self.epoch, reason)

    # -- control --------------------------------------------------------------------------------

    def _ack(self, message: dict[str, Any]) -> list[dict[str, Any]]:
        played = message.get("played_ms")
        if not isinstance(played, int | float) or isinstance(played, bool):
            return [error("bad_event", "playback.ack requires numeric played_ms",
                          client_event_id=message.get("event_id"))]
        wanted = message.get("response_id")
        matches = [r for r in self.replies if wanted in (None, r.response_id)]
        if not matches:
            return [error("playback_item_not_found", f"no response {wanted}",
                          client_event_id=message.get("event_id"))]
        reply = matches[-1]
        reply.played_ms = max(0, min(int(played), reply.generated_ms))
        committed = message.get("committed_ms")
        details = {"type": "playback.acknowledged", "session_id": self.session_id, "epoch": self.epoch,
                   "response_id": reply.response_id, "item_id": reply.item_id,
                   "played_ms": reply.played_ms,
                   "committed_ms": int(committed) if isinstance(committed, int | float) else reply.played_ms,
                   "truncate": bool(message.get("truncate", False)),
                   "playback": {"generated_ms": reply.generated_ms, "sent_ms": reply.generated_ms,
                                "played_ms": reply.played_ms, "committed_ms": reply.played_ms},
                   "history_committed": reply.status != "in_progress"}
        return [event("playback.acknowledged", event=details)]

    def _update(self, message: dict[str, Any]) -> list[dict[str, Any]]:
        patch = message.get("session")
        if not isinstance(patch, dict):
            return [error("bad_event", "session.update requires a session object",
                          client_event_id=message.get("event_id"))]
        if isinstance(patch.get("ref_audio"), str):  # even the same one: the voice is set at open
            return [error("ref_audio_update_unsupported",
                          "session.update cannot change ref_audio after the session is open",
                          client_event_id=message.get("event_id"))]
        model = patch.get("model")
        if isinstance(model, str) and model != self.config.get("model"):
            return [error("model_update_unsupported",
                          "session.update cannot change model for an open realtime duplex session",
                          client_event_id=message.get("event_id"))]
        extra_body = {**(self.config.get("extra_body") or {}), **(patch.get("extra_body") or {})}
        self.config.update(patch)
        self.config["extra_body"] = extra_body  # merged, as the server merges it
        return [event("session.updated", session=self.session())]

