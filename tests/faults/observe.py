"""What a fault scenario sees, and how it says whether the promised behaviour held.

Owns: :class:`Outcome` (one row of the fault table), :class:`Checks` (named comparisons that
collect failures instead of raising, so the command can print every row), :class:`Transcript`
(what a client got up to its close), the proxy and simulator set-up every scenario shares, and
the bystander: a second client whose round trip must check out while another misbehaves. What
the proxy sends is read through the native protocol's client half (a frame it does not have
fails the scenario with ``BadProxyMessage``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from asgi_audio_proxy.config import DEFAULT_CONNECT_TIMEOUT_S, ProxyConfig
from asgi_audio_proxy.dialects.native_client import (
    AudioMessage,
    ErrorMessage,
    NativeClient,
    ProxyMessage,
    ReadyMessage,
    TurnEndMessage,
    decode_message,
)
from asgi_audio_proxy.edge.admission import Authenticator
from asgi_audio_proxy.edge.middleware import AudioProxy
from asgi_audio_proxy.session.stats import SessionStats
from asgi_audio_proxy.simulator.recorder import SimulatorRecorder
from tests.clients import at_real_time
from tests.conftest import Upstream, running_simulator
from tests.fakes import OpenLeaser
from tests.servers import serve
from tests.signals import dominant_frequency_hz, silence, tone
from tests.timing import within

__all__ = ["UTTERANCE", "Checks", "Outcome", "ProxyUnderTest", "Transcript", "bystander", "heard",
           "opened", "proxy_on", "read_to_close", "table_config", "table_simulator", "upstream_settled"]


def table_simulator(**options: Any) -> contextlib.AbstractAsyncContextManager[Upstream]:
    """The table's model server, with ``options``: a simulator in the scenarios' own event loop,
    which a busy machine starves. It then reads a second of audio that the proxy paced in real
    time in one burst (seven 200 ms messages in 0.25 s, seen with three busy processes on two
    cores), and the real server's rule that a turn lasts 0.6 s on its clock drops the turn: the
    bystander talks to a model that never answers. What the table checks is the proxy's answer
    to a fault, so its simulators judge a turn by the audio alone (pacing has its own tests)."""
    return running_simulator(min_turn_s=0.0, **options)


def table_config(upstream_url: str, **config: Any) -> ProxyConfig:
    """The table's proxy settings: ``config``, and the time to reach the model server scaled as
    every test deadline (:func:`tests.timing.within`) unless a scenario sets its own. That
    server answers from the same event loop, which a busy machine starves: the default 5 s
    handshake once timed out there, and the session ended 1011 before its scenario began."""
    config.setdefault("connect_timeout_s", within(DEFAULT_CONNECT_TIMEOUT_S))
    return ProxyConfig(upstream_url=upstream_url, **config)


#: a short turn the simulator's VAD ends: 0.8 s of 440 Hz, then 1 s of quiet (9 messages)
UTTERANCE = tone(440, 0.8) + silence(1.0)
#: the bystander's turn: 1.2 s of 440 Hz, then 1 s of quiet. The real server ignores a turn
#: whose end it hears less than 0.6 s (its own clock) after its start; 0.8 s of tone leaves that
#: about 1.2 s of audio apart and 1.2 s leaves 1.6 s, room for a loop running late, though not
#: for a starved one (hence :func:`table_simulator`)
SPOKEN = tone(440, 1.2) + silence(1.0)
FRAME_BYTES = 640  # 20 ms


@dataclass
class Outcome:
    """One row of the fault table."""

    scenario: str
    server: str
    expected: str
    observed: str = ""
    failures: list[str] = field(default_factory=list)

    @property
    def held(self) -> bool:
        return not self.failures


class Checks:
    """Named comparisons; each miss is kept as one line saying what, expected and got."""

    def __init__(self) -> None:
        self.failures: list[str] = []

    def equal(self, what: str, got: object, expected: object) -> None:
        if got != expected:
            self.failures.append(f"{what}: expected {expected!r}, got {got!r}")

    def that(self, what: str, ok: bool, detail: object = "") -> None:
        if not ok:
            self.failures.append(f"{what}" + (f" ({detail})" if detail != "" else ""))


@dataclass
class Transcript:
    """What a client received until its connection closed (its events decoded, its audio
    counted)."""

    messages: list[ProxyMessage] = field(default_factory=list)
    audio_bytes: int = 0
    close_code: int | None = None  # None: no close frame came (TCP dropped, 1006)
    close_reason: str = ""
    closed_at: float | None = None  # time.monotonic() when the connection was seen closed

    @property
    def errors(self) -> list[tuple[str, int]]:
        return [(m.kind, m.code) for m in self.messages if isinstance(m, ErrorMessage)]

    def describe(self) -> str:
        errors = ", ".join(f"{kind} {code}" for kind, code in self.errors) or "no error event"
        close = "no close frame" if self.close_code is None else f"close {self.close_code}"
        return f"{errors}; {close}"


async def opened(ws: ClientConnection, checks: Checks, what: str = "first event") -> None:
    """Read the proxy's first message: it must be ``ready``."""
    first = decode_message(await ws.recv())
    checks.that(f"{what} is ready", isinstance(first, ReadyMessage), first)


async def read_to_close(ws: ClientConnection, timeout_s: float,
                        per_message: Callable[[], Awaitable[None]] | None = None) -> Transcript:
    """Read every message until the proxy closes; ``per_message`` paces a slow reader."""
    transcript = Transcript()
    try:
        async with asyncio.timeout(within(timeout_s)):
            while True:
                if per_message is not None:
                    await per_message()
                message = decode_message(await ws.recv())
                if isinstance(message, AudioMessage):
                    transcript.audio_bytes += len(message.pcm)
                else:
                    transcript.messages.append(message)
    except ConnectionClosed as closed:
        transcript.closed_at = time.monotonic()
        if closed.rcvd is not None:
            transcript.close_code, transcript.close_reason = closed.rcvd.code, closed.rcvd.reason
    return transcript


@dataclass
class ProxyUnderTest:
    proxy: AudioProxy
    url: str
    ended: list[SessionStats]

    async def idle(self, timeout_s: float = 5) -> None:
        """Every session has ended (the registry is empty)."""
        async with asyncio.timeout(within(timeout_s)):
            await self.proxy.wait_idle()

    def unbalanced(self) -> list[str]:
        return [f"{s.session_id}: {s.summary()}" for s in self.ended if not s.balanced]


@contextlib.asynccontextmanager
async def proxy_on(server: str, upstream_url: str, *, authenticate: Authenticator | None = None,
                   many: bool = False, **config: Any) -> AsyncIterator[ProxyUnderTest]:
    """An :class:`AudioProxy` on ``server`` whose sessions' stats are kept as they end;
    ``many``: the upstream holds any number of conversations (a multi-conversation simulator)."""
    ended: list[SessionStats] = []
    proxy = AudioProxy(table_config(upstream_url, **config), on_session_end=ended.append,
                       authenticate=authenticate, leaser=OpenLeaser(upstream_url) if many else None)
    try:
        async with serve(server, proxy) as port:
            yield ProxyUnderTest(proxy, f"ws://127.0.0.1:{port}/", ended)
    finally:
        await proxy.aclose()


def heard(recorder: SimulatorRecorder, pcm: bytes) -> bool:
    """Some conversation's accepted audio starts with exactly ``pcm``."""
    return any(b"".join(chunks)[:len(pcm)] == pcm for chunks in recorder.chunks.values())


async def upstream_settled(recorder: SimulatorRecorder, checks: Checks, timeout_s: float = 3) -> None:
    """Every upstream WebSocket and ``/completions`` body the simulator opened is closed."""
    try:
        await recorder.wait_for(lambda r: r.ws_opened == r.ws_closed and r.sse_opened == r.sse_closed,
                                timeout=within(timeout_s))
    except TimeoutError:
        checks.failures.append(f"upstream left open: ws {recorder.ws_opened}/{recorder.ws_closed}, "
                               f"sse {recorder.sse_opened}/{recorder.sse_closed} opened/closed")


async def bystander(url: str, recorder: SimulatorRecorder, checks: Checks, timeout_s: float = 12) -> None:
    """A well-behaved client's full round trip, beside whatever else is going on.

    It streams :data:`SPOKEN` at real-time pace and then silence, as a live client does,
    until its reply ends; the reply must be complete and play back its 440 Hz tone, and the
    upstream must have heard the utterance intact.
    """
    done = asyncio.Event()
    proxy = NativeClient()
    audio = bytearray()
    sent_bytes = 0
    began = asyncio.get_running_loop().time()

    async def speak(ws: ClientConnection) -> None:
        nonlocal sent_bytes
        start = asyncio.get_running_loop().time()
        pcm, offset = SPOKEN, 0
        while not done.is_set():
            if offset >= len(pcm):
                pcm, offset = pcm + silence(0.2), offset  # then silence, until the reply ends
            await ws.send(pcm[offset:offset + FRAME_BYTES])
            offset += FRAME_BYTES
            sent_bytes = offset
            await at_real_time(start, offset / 32_000)

    try:
        async with asyncio.timeout(within(timeout_s)), connect(url, open_timeout=within(5)) as ws:
            await opened(ws, checks, "bystander: first event")
            speaker = asyncio.create_task(speak(ws))
            try:
                while not proxy.replies and not proxy.errors:
                    message = proxy.receive(await ws.recv())
                    if isinstance(message, AudioMessage):
                        audio += message.pcm
            finally:
                done.set()
                await speaker
    except (TimeoutError, ConnectionClosed, OSError) as exc:
        took = asyncio.get_running_loop().time() - began
        checks.failures.append(f"bystander: round trip failed: {exc!r} after {took:.1f} s, "
                               f"{sent_bytes / 32_000:.1f} s of audio sent, {len(audio)} bytes of reply "
                               f"audio, text {[r.text for r in proxy.replies]!r}")
        return
    end = [TurnEndMessage(r.reason) for r in proxy.replies] + proxy.errors
    checks.equal("bystander: turn end", end, [TurnEndMessage("complete")])
    text = proxy.replies[0].text if proxy.replies else ""
    checks.that("bystander: reply text", text.startswith("Turn 1: heard"), text)
    frequency = dominant_frequency_hz(bytes(audio)) if len(audio) > 3200 else 0.0
    checks.that("bystander: reply is its 440 Hz tone", abs(frequency - 440) < 5, f"{frequency:.0f} Hz")
    checks.that("bystander: upstream heard its utterance intact", heard(recorder, SPOKEN))
