"""A test client that behaves as Twilio does on a bidirectional Media Stream, and holds the proxy
to Twilio's rules.

Pure half: the messages Twilio sends (``connected``, ``start``, ``media``, ``dtmf``, ``mark``,
``stop``, built the way Twilio writes them: numbers as strings, a ``sequenceNumber`` on each) and
:func:`check_outbound`, which checks one message the proxy sent by the rules Twilio enforces: a
JSON text frame (binary frames are error 31950), ``event`` one of ``media``/``mark``/``clear``,
exactly the fields each has (unknown ones are error 31951), this stream's ``streamSid``, nothing
before ``start``.

I/O half: :class:`TwilioPeer` on a real ``websockets`` connection: ``connected`` and ``start``,
then 20 ms μ-law media at real-time pace for the whole call (the caller's words where the test
gave some, silence otherwise), reply media played out on a real-time timeline, each mark echoed
once the audio before it has played, ``clear`` honoured by dropping what has not played and echoing
the pending marks at once. Every outbound message is checked as it arrives.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from asgi_audio_proxy.audio.g711 import pcm16_to_ulaw
from tests.clients import at_real_time
from tests.timing import within

__all__ = ["FRAME_BYTES", "Arrival", "TwilioPeer", "TwilioRuleBroken", "check_outbound",
           "inbound_message"]

RATE_HZ = 8_000
#: Twilio's media frames: 20 ms of μ-law
FRAME_BYTES = 160
FRAME_S = FRAME_BYTES / RATE_HZ
ULAW_SILENCE = b"\xff"
#: the fields of each message Twilio accepts, and of its inner object
OUTBOUND_FIELDS = {"media": {"event", "streamSid", "media"}, "mark": {"event", "streamSid", "mark"},
                   "clear": {"event", "streamSid"}}
INNER_FIELDS = {"media": {"payload"}, "mark": {"name"}}


class TwilioRuleBroken(AssertionError):
    """The proxy sent Twilio something Twilio would reject."""


def check_outbound(frame: str | bytes, stream_sid: str | None) -> dict[str, Any]:
    """One message from the proxy, checked by Twilio's rules; returns it parsed.

    Args:
        frame: the WebSocket message.
        stream_sid: the stream's id, ``None`` before ``start`` was sent (nothing may come then).

    Raises:
        TwilioRuleBroken: the rule it breaks.
    """
    if isinstance(frame, bytes):
        raise TwilioRuleBroken(f"binary frame of {len(frame)} bytes (Twilio error 31950)")
    if stream_sid is None:
        raise TwilioRuleBroken(f"message before 'start': {frame[:80]!r}")
    try:
        message = json.loads(frame)
    except json.JSONDecodeError as exc:
        raise TwilioRuleBroken(f"not JSON: {frame[:80]!r}") from exc
    if not isinstance(message, dict) or message.get("event") not in OUTBOUND_FIELDS:
        raise TwilioRuleBroken(f"not a media, mark or clear message: {frame[:80]!r}")
    event = message["event"]
    if set(message) != OUTBOUND_FIELDS[event]:
        raise TwilioRuleBroken(f"{event} with fields {sorted(message)}, expected "
                               f"{sorted(OUTBOUND_FIELDS[event])} (Twilio error 31951)")
    if message["streamSid"] != stream_sid:
        raise TwilioRuleBroken(f"{event} for stream {message['streamSid']!r}, not {stream_sid!r}")
    if event in INNER_FIELDS:
        inner = message[event]
        if not isinstance(inner, dict) or set(inner) != INNER_FIELDS[event]:
            raise TwilioRuleBroken(f"{event}.{event} must be an object with exactly "
                                   f"{sorted(INNER_FIELDS[event])}: {inner!r}")
        value = next(iter(inner.values()))
        if not isinstance(value, str) or not value:
            raise TwilioRuleBroken(f"{event} needs a non-empty string: {inner!r}")
        if event == "media":
            try:
                base64.b64decode(value, validate=True)
            except binascii.Error as exc:
                raise TwilioRuleBroken(f"media payload is not base64: {exc}") from exc
    return message


def inbound_message(event: str, stream_sid: str | None, sequence: int, **body: Any) -> str:
    """A message as Twilio writes it: ``event``, ``sequenceNumber`` (a string), the stream's
    id once there is one, and ``body`` (e.g. ``media={...}``)."""
    message: dict[str, Any] = {"event": event}
    if event != "connected":
        message["sequenceNumber"] = str(sequence)
    if stream_sid is not None and event != "connected":
        message["streamSid"] = stream_sid
    message.update(body)
    return json.dumps(message)


def start_body(stream_sid: str, *, call_sid: str = "CA00000000000000000000000000000001",
               custom_parameters: Mapping[str, str] | None = None,
               media_format: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``start`` object of a bidirectional stream."""
    return {"streamSid": stream_sid, "accountSid": "AC00000000000000000000000000000001",
            "callSid": call_sid, "tracks": ["inbound"],
            "customParameters": dict(custom_parameters or {}),
            "mediaFormat": dict(media_format or {"encoding": "audio/x-mulaw", "sampleRate": 8000,
                                                 "channels": 1})}


@dataclass(slots=True)
class Arrival:
    """One message from the proxy, checked, with the loop time it arrived."""

    at: float
    message: dict[str, Any]

    @property
    def event(self) -> str:
        return str(self.message["event"])


@dataclass(slots=True)
class _Piece:
    start: float
    end: float
    ulaw: bytes


@dataclass
class TwilioPeer:
    """Twilio's side of one call. Make it with :meth:`call`."""

    ws: ClientConnection
    stream_sid: str
    arrivals: list[Arrival] = field(default_factory=list)
    echoed_marks: list[str] = field(default_factory=list)
    echoed_at: list[float] = field(default_factory=list)
    broken: list[TwilioRuleBroken] = field(default_factory=list)
    close_code: int | None = None
    close_detail: str = ""  # how the socket ended, as websockets tells it (who sent what)
    _sequence: int = 0
    _to_say: bytearray = field(default_factory=bytearray)
    _timeline: list[_Piece] = field(default_factory=list)
    _play_end: float = 0.0
    _pending_marks: deque[tuple[float, str]] = field(default_factory=deque)
    _marks_changed: asyncio.Event = field(default_factory=asyncio.Event)
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)
    _is_started: bool = False

    @classmethod
    @contextlib.asynccontextmanager
    async def call(cls, url: str, *, stream_sid: str = "MZ00000000000000000000000000000001",
                   custom_parameters: Mapping[str, str] | None = None) -> AsyncIterator[TwilioPeer]:
        """Open the stream: connect, ``connected``, ``start``, then media for as long as the
        call lasts. On exit the socket is closed (a hang-up) if :meth:`stop` was not called."""
        async with connect(url, open_timeout=within(10), max_size=2**20) as ws:
            peer = cls(ws, stream_sid)
            await peer._send(inbound_message("connected", None, 0, protocol="Call", version="1.0.0"))
            await peer._send(inbound_message("start", stream_sid, peer._next(), start=start_body(
                stream_sid, custom_parameters=custom_parameters)))
            peer._is_started = True
            # not a TaskGroup: a failing test's own exception should reach pytest unwrapped
            tasks = [asyncio.create_task(peer._receive()), asyncio.create_task(peer._send_media()),
                     asyncio.create_task(peer._echo_marks())]
            try:
                yield peer
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.wait(tasks)
        for task in tasks:  # a bug in the peer itself fails the test too
            if not task.cancelled() and task.exception() is not None:
                raise AssertionError("the Twilio peer failed") from task.exception()
        if peer.broken:
            raise peer.broken[0]

    # -- what the caller does ---------------------------------------------------------------

    def say(self, pcm: bytes) -> None:
        """Speak ``pcm`` (PCM16 at 8 kHz) into the call, from the next 20 ms frame on."""
        self._to_say += pcm16_to_ulaw(pcm)

    async def press(self, digit: str) -> None:
        await self._send(inbound_message("dtmf", self.stream_sid, self._next(),
                                         dtmf={"track": "inbound_track", "digit": digit}))

    async def stop(self) -> None:
        """Twilio's ``stop``: the call ended."""
        await self._send(inbound_message("stop", self.stream_sid, self._next(), stop={
            "accountSid": "AC00000000000000000000000000000001",
            "callSid": "CA00000000000000000000000000000001"}))

    async def hang_up(self) -> None:
        """The socket closes with no ``stop`` (the call dropped)."""
        await self.ws.close()

    # -- what the test reads ----------------------------------------------------------------

    async def wait_for(self, predicate: Callable[[TwilioPeer], bool], timeout_s: float = 10) -> None:
        """Wait under a deadline until ``predicate(self)`` holds; a broken rule fails at once.

        It is looked at on every message in or out (so at least every 20 ms while the call lasts);
        a call the proxy closes first fails at once.
        """
        deadline_s = within(timeout_s)
        try:
            async with asyncio.timeout(deadline_s), self._arrived:
                await self._arrived.wait_for(lambda: bool(self.broken) or predicate(self)
                                             or self.close_code is not None)
        except TimeoutError:  # say what did come, so a failure shows how far the call got
            seen = Counter(arrival.event for arrival in self.arrivals)
            raise TimeoutError(f"not within {deadline_s:.1f} s; the proxy had sent {dict(seen)}") from None
        if self.broken:
            raise self.broken[0]
        if not predicate(self):
            raise AssertionError(f"the call closed (code {self.close_code}: "
                                 f"{self.close_detail or 'a close frame'}) first")

    def of(self, event: str) -> list[Arrival]:
        return [a for a in self.arrivals if a.event == event]

    def received_ulaw(self) -> bytes:
        """Every media payload received, in order."""
        return b"".join(base64.b64decode(a.message["media"]["payload"]) for a in self.of("media"))

    def heard_ulaw(self, now: float | None = None) -> bytes:
        """What has played so far (a ``clear`` cuts what had not)."""
        now = asyncio.get_running_loop().time() if now is None else now
        heard = bytearray()
        for piece in self._timeline:
            played = max(0.0, min(piece.end, now) - piece.start)
            heard += piece.ulaw[: round(played * RATE_HZ)]
        return bytes(heard)

    # -- Twilio's side ----------------------------------------------------------------------

    def _next(self) -> int:
        self._sequence += 1
        return self._sequence

    async def _send(self, text: str) -> None:
        with contextlib.suppress(ConnectionClosed):  # a proxy that hung up: the test reads why
            await self.ws.send(text)

    async def _send_media(self) -> None:
        loop = asyncio.get_running_loop()
        begin = loop.time()
        for chunk in range(1, 10**9):
            frame = bytes(self._to_say[:FRAME_BYTES]).ljust(FRAME_BYTES, ULAW_SILENCE)
            del self._to_say[:FRAME_BYTES]
            await self._send(inbound_message("media", self.stream_sid, self._next(), media={
                "track": "inbound", "chunk": str(chunk), "timestamp": str(round((chunk - 1) * 20)),
                "payload": base64.b64encode(frame).decode()}))
            await self._notify()  # a predicate on the far side's state is looked at every 20 ms
            await at_real_time(begin, chunk * FRAME_S)  # a phone line's pace

    async def _receive(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            async for frame in self.ws:
                now = loop.time()
                try:
                    message = check_outbound(frame, self.stream_sid if self._is_started else None)
                except TwilioRuleBroken as exc:
                    self.broken.append(exc)
                    message = {"event": "broken"}
                self.arrivals.append(Arrival(now, message))
                await self._play(message, now)
                await self._notify()
        except ConnectionClosed as exc:
            self.close_detail = str(exc)
        self.close_code = self.ws.close_code
        await self._notify()

    async def _notify(self) -> None:
        async with self._arrived:
            self._arrived.notify_all()

    async def _play(self, message: dict[str, Any], now: float) -> None:
        if message["event"] == "media":
            ulaw = base64.b64decode(message["media"]["payload"])
            start = max(now, self._play_end)
            self._play_end = start + len(ulaw) / RATE_HZ
            self._timeline.append(_Piece(start, self._play_end, ulaw))
        elif message["event"] == "mark":
            self._pending_marks.append((max(now, self._play_end), message["mark"]["name"]))
            self._marks_changed.set()
        elif message["event"] == "clear":
            # what has not played is gone; the pending marks come back at once
            self._timeline = [_Piece(p.start, min(p.end, now), p.ulaw) for p in self._timeline
                              if p.start < now]
            self._play_end = min(self._play_end, now)
            while self._pending_marks:
                await self._echo(self._pending_marks.popleft()[1])
            self._marks_changed.set()

    async def _echo_marks(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._marks_changed.clear()
            delay = self._pending_marks[0][0] - loop.time() if self._pending_marks else None
            if delay is not None and delay <= 0:
                await self._echo(self._pending_marks.popleft()[1])
                continue
            # a mark falls due, or the marks changed (a new one, or a clear)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._marks_changed.wait()

    async def _echo(self, name: str) -> None:
        self.echoed_marks.append(name)
        self.echoed_at.append(asyncio.get_running_loop().time())
        await self._send(inbound_message("mark", self.stream_sid, self._next(), mark={"name": name}))
        await self._notify()
