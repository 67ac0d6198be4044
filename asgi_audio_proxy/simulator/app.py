"""An ASGI app that behaves like the MiniCPM-o web-demo model server, with no GPU and no model.

Owns: the upstream's wire behaviour (``UPSTREAM_PROTOCOL.md`` sections 2, 3, 4 and 8, section 8
winning): every route at its bare and ``/api/v1`` path, the stream WebSocket and its acks and
error closes, the ``/completions`` SSE body byte for byte, and the timers; plus fault modes and a
many-conversations load mode that the real server lacks. Conversation state is
``state.py`` (its model ``model.py``, its VAD ``vad.py``), the record ``recorder.py``; the
HTTP endpoints and the SSE body live in ``http.py``, the stream socket in ``ws.py``, both typed
against ``host.SimulatorHost``, which this app implements.

Must not: import ``session`` or ``upstream`` (it plays the other side).

Run it::

    run_simulator(host="127.0.0.1", port=32550, version="2.6", *, first_chunk_delay_s=0.05,
                  chunk_delay_s=0.02, reply_chunks=None, fault=None, multi_conversation=False,
                  log_level="info") -> None

or mount ``UpstreamSimulator(...)`` (itself an ASGI app) in any ASGI server. Replies are
deterministic: text ``Turn N: heard H s of audio, V s of it sound.`` split over the chunks, audio
the audio the model heard (its prefills), at 24 kHz in 12 800-sample chunks for "2.6" or at
16 kHz in 16 000-sample chunks for "4.5".
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import get_args

import uvicorn
from starlette import status
from starlette.requests import Request
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from asgi_audio_proxy.audio.wav import AudioFormatError, wav_to_pcm16
from asgi_audio_proxy.simulator.host import FAULTS, Fault
from asgi_audio_proxy.simulator.http import HttpEndpoints
from asgi_audio_proxy.simulator.model import SimulatorVersion
from asgi_audio_proxy.simulator.recorder import SimulatorRecorder
from asgi_audio_proxy.simulator.state import MIN_TURN_S, Conversation, OptionsStore
from asgi_audio_proxy.simulator.ws import StreamSocket

__all__ = ["UpstreamSimulator", "run_simulator"]


logger = logging.getLogger("asgi_audio_proxy.simulator")

#: the upstream's timers (section 1): no-audio trigger, inactivity reset, check period
NO_AUDIO_TIMEOUT_S = 3.0
INACTIVITY_RESET_S = 900.0
ACTIVITY_CHECK_INTERVAL_S = 1.0
#: defaults much faster than a GPU, so tests stay short
FIRST_CHUNK_DELAY_S = 0.05
CHUNK_DELAY_S = 0.02
_WS_PATHS = frozenset({"/ws/stream", "/ws/api/v1/stream"})


class UpstreamSimulator:
    """The simulated model server; an ASGI app (``await sim(scope, receive, send)``).

    Args:
        version: which upstream to mimic: "2.6" (``main``) or "4.5" (the update).
        first_chunk_delay_s: seconds from end of turn to the first reply chunk.
        chunk_delay_s: seconds between later reply chunks.
        reply_chunks: ``None`` plays back all the audio heard; a number fixes the chunk count.
        fault: a fault mode (see :data:`FAULTS`), or ``None``; also settable at run time.
        multi_conversation: keep state per uid (no takeover) and record message arrival times.
        no_audio_timeout_s, inactivity_reset_s, activity_check_interval_s: the timers.
        clock: seconds, monotonic; read for every time rule (VAD, echo guard, timers).
        min_turn_s: the shortest speech, on ``clock`` from its start, that ends a turn (the
            real server's 0.6 s). 0 judges a turn by its audio alone, for a simulator that shares
            a starved event loop with the proxy and its clients, and so may read a second of
            audio in a burst that the proxy paced in real time.

    Raises:
        ValueError: a setting out of range, naming it.
    """

    def __init__(
        self,
        *,
        version: SimulatorVersion = "2.6",
        first_chunk_delay_s: float = FIRST_CHUNK_DELAY_S,
        chunk_delay_s: float = CHUNK_DELAY_S,
        reply_chunks: int | None = None,
        fault: Fault | None = None,
        multi_conversation: bool = False,
        no_audio_timeout_s: float = NO_AUDIO_TIMEOUT_S,
        inactivity_reset_s: float = INACTIVITY_RESET_S,
        activity_check_interval_s: float = ACTIVITY_CHECK_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
        min_turn_s: float = MIN_TURN_S,
    ) -> None:
        if version not in get_args(SimulatorVersion):
            raise ValueError(f"version must be '2.6' or '4.5', got {version!r}")
        for name, value in (
            ("first_chunk_delay_s", first_chunk_delay_s),
            ("chunk_delay_s", chunk_delay_s),
            ("min_turn_s", min_turn_s),
        ):
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        for name, value in (
            ("no_audio_timeout_s", no_audio_timeout_s),
            ("inactivity_reset_s", inactivity_reset_s),
            ("activity_check_interval_s", activity_check_interval_s),
        ):
            if value <= 0:
                raise ValueError(f"{name} must be > 0, got {value}")
        if reply_chunks is not None and reply_chunks < 1:
            raise ValueError(f"reply_chunks must be >= 1 or None, got {reply_chunks}")
        if fault is not None and fault not in FAULTS:
            raise ValueError(f"fault must be one of {FAULTS} or None, got {fault!r}")
        self.version: SimulatorVersion = version
        self.first_chunk_delay_s = first_chunk_delay_s
        self.chunk_delay_s = chunk_delay_s
        self.reply_chunks = reply_chunks
        self.fault: Fault | None = fault
        self.multi_conversation = multi_conversation
        self.no_audio_timeout_s = no_audio_timeout_s
        self.inactivity_reset_s = inactivity_reset_s
        self.activity_check_interval_s = activity_check_interval_s
        self.clock = clock
        self.min_turn_s = min_turn_s
        self.recorder = SimulatorRecorder()
        self.options = OptionsStore()
        self._shared = self._new_conversation()
        self._by_uid: dict[str, Conversation] = {}
        self._turn_events: dict[Conversation, asyncio.Event] = {}
        self._dooms: set[asyncio.Future[None]] = set()
        self._ticker: asyncio.TimerHandle | None = None
        self._ticker_loop: asyncio.AbstractEventLoop | None = None
        self._http = HttpEndpoints(self)

    # -- conversations --------------------------------------------------------------------------

    def _new_conversation(self) -> Conversation:
        return Conversation(version=self.version, options=self.options, reply_chunks=self.reply_chunks,
                            min_turn_s=self.min_turn_s)

    def conversation_for(self, uid: str) -> Conversation:
        """The conversation a request with ``uid`` talks to (always the one, unless load mode)."""
        if not self.multi_conversation:
            return self._shared
        conversation = self._by_uid.get(uid)
        if conversation is None:
            conversation = self._by_uid[uid] = self._new_conversation()
        return conversation

    def conversations(self) -> list[Conversation]:
        return list(self._by_uid.values()) if self.multi_conversation else [self._shared]

    def turn_event(self, conversation: Conversation) -> asyncio.Event:
        """Set while ``conversation``'s turn has ended: what a waiting ``/completions`` awaits."""
        event = self._turn_events.get(conversation)
        if event is None:
            event = self._turn_events[conversation] = asyncio.Event()
            if conversation.turn_complete:
                event.set()
        return event

    def synced(self, conversation: Conversation) -> None:
        """Mirror ``conversation``'s flags into its event and wake the recorder's waiters."""
        event = self._turn_events.get(conversation)
        if event is not None:
            if conversation.turn_complete:
                event.set()
            else:
                event.clear()
        self.recorder.turn_ends = sum(c.turn_ends for c in self.conversations())
        self.recorder.changed()

    def record_accepted(self, uid: str, conversation: Conversation) -> None:
        for wav in conversation.take_accepted():
            try:
                pcm = wav_to_pcm16(wav).pcm
            except AudioFormatError:
                pcm = wav  # kept raw: the upstream fails it later, at the 5-message merge
            self.recorder.chunks[uid].append(pcm)

    def die(self, conversation: Conversation) -> None:
        """Fault ``die_mid_turn``: drop every socket and forget all state, as a crash would."""
        self.recorder.fault_struck(self.clock())
        for doom in self._dooms:
            if not doom.done():
                doom.set_result(None)
        self._turn_events.pop(conversation, None)
        if self.multi_conversation:
            self._by_uid = {u: c for u, c in self._by_uid.items() if c is not conversation}
        else:
            self._shared = self._new_conversation()

    # -- ASGI -----------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        self._ensure_ticker()
        path = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :] or "/"
        if scope["type"] == "websocket":
            websocket = WebSocket(scope, receive, send)
            if path in _WS_PATHS:
                socket = StreamSocket(self, websocket)
                self._dooms.add(socket.doom)
                try:
                    await socket.run()
                finally:
                    self._dooms.discard(socket.doom)
            else:  # as Starlette's router: no route, refuse the handshake
                await websocket.close(code=status.WS_1008_POLICY_VIOLATION)
            return
        if scope["type"] == "http":
            response = await self._http.respond(path, Request(scope, receive))
            await response(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._ensure_ticker()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def close(self) -> None:
        """Stop the background timer (a later request starts it again)."""
        if self._ticker is not None:
            self._ticker.cancel()
        self._ticker, self._ticker_loop = None, None

    def _ensure_ticker(self) -> None:
        loop = asyncio.get_running_loop()
        if self._ticker_loop is not loop:
            self._ticker_loop = loop
            self._ticker = loop.call_later(self.activity_check_interval_s, self._tick)

    def _tick(self) -> None:
        """The upstream's ``check_activity``, once per interval."""
        now = self.clock()
        for conversation in self.conversations():
            before = conversation.turn_ends
            conversation.tick(
                now, inactivity_s=self.inactivity_reset_s, no_audio_s=self.no_audio_timeout_s
            )
            if conversation.turn_ends != before:
                logger.debug("no audio for %.1f s: turn ended", self.no_audio_timeout_s)
            self.synced(conversation)
        if self._ticker_loop is not None:
            self._ticker = self._ticker_loop.call_later(self.activity_check_interval_s, self._tick)


def run_simulator(
    host: str = "127.0.0.1",
    port: int = 32550,
    version: SimulatorVersion = "2.6",
    *,
    first_chunk_delay_s: float = FIRST_CHUNK_DELAY_S,
    chunk_delay_s: float = CHUNK_DELAY_S,
    reply_chunks: int | None = None,
    fault: Fault | None = None,
    multi_conversation: bool = False,
    log_level: str = "info",
) -> None:
    """Serve an :class:`UpstreamSimulator` with uvicorn until interrupted (blocks).

    Args:
        host: address to bind.
        port: port to bind (the upstream's default is 32550).
        version: "2.6" or "4.5".
        first_chunk_delay_s, chunk_delay_s, reply_chunks, fault, multi_conversation: as for
            :class:`UpstreamSimulator`.
        log_level: uvicorn's log level.
    """
    simulator = UpstreamSimulator(
        version=version,
        first_chunk_delay_s=first_chunk_delay_s,
        chunk_delay_s=chunk_delay_s,
        reply_chunks=reply_chunks,
        fault=fault,
        multi_conversation=multi_conversation,
    )
    uvicorn.run(simulator, host=host, port=port, log_level=log_level, lifespan="on")

