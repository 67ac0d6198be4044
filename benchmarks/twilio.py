"""Phone-call figures: G.711 speed beside ``audioop``, and the Twilio dialect's CPU per call.

Owns: two in-process measurements, taken on the same machine in the same run as their
baselines. Must not: do I/O or start processes (the end-to-end load figures live in
``benchmarks.load``).

How each figure is taken:

- *G.711 speed*: 60 s of a voice-like signal (noise shaped to a speech spectrum, at a talking
  level) encoded to μ-law and decoded back, once in Twilio's 20 ms frames (160 samples, the size
  each call's traffic comes in) and once in 1 s blocks; seconds of audio per second of CPU
  (``time.process_time``), best of three. The baseline is CPython's ``audioop`` (3.12 and older,
  or the ``audioop-lts`` package) on the same frames.
- *dialect CPU per call*: one simulated call-second of a Twilio stream through
  :class:`~asgi_audio_proxy.dialects.twilio.TwilioDialect`: 50 inbound ``media`` messages read
  (JSON, base64, μ-law decode) and one second of 8 kHz reply audio written (in 20 ms events:
  μ-law encode, pieces, marks, JSON), plus the marks echoed back; CPU milliseconds per
  call-second, best of three over 60 call-seconds. The same is taken for the native dialect
  (16 kHz PCM binary frames in, 16 kHz reply audio out, nothing to encode), as the baseline.
"""

from __future__ import annotations

import base64
import importlib
import json
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from types import ModuleType

import numpy as np

from asgi_audio_proxy.audio.g711 import pcm16_to_ulaw, ulaw_to_pcm16
from asgi_audio_proxy.config import ProxyConfig
from asgi_audio_proxy.dialects.native import native_dialect
from asgi_audio_proxy.dialects.twilio import TwilioDialect
from asgi_audio_proxy.events import ReplyAudio, ReplyEnded, ReplyStarted

__all__ = ["DialectFigures", "G711Figures", "main", "measure_dialect_cpu", "measure_g711"]

RATE_HZ = 8_000
FRAME_SAMPLES = 160
SECONDS = 60


@dataclass(frozen=True)
class G711Figures:
    """Seconds of audio per CPU second, μ-law encode and decode, by frame size."""

    name: str
    encode_20ms_x: float
    decode_20ms_x: float
    encode_1s_x: float
    decode_1s_x: float


@dataclass(frozen=True)
class DialectFigures:
    """One dialect's CPU per call-second, in milliseconds, in and out."""

    name: str
    receive_ms_per_call_s: float
    send_ms_per_call_s: float

    @property
    def total_ms_per_call_s(self) -> float:
        return self.receive_ms_per_call_s + self.send_ms_per_call_s


def _voice_like(seconds: float, rate_hz: int = RATE_HZ) -> bytes:
    rng = np.random.default_rng(7)
    noise = rng.standard_normal(int(seconds * rate_hz))
    spectrum = np.fft.rfft(noise)
    freqs = np.fft.rfftfreq(noise.size, 1 / rate_hz)
    spectrum *= 1 / (1 + (freqs / 500) ** 2)  # speech's energy falls off above a few hundred Hz
    voice = np.fft.irfft(spectrum, noise.size)
    return bytes(np.round(voice / np.abs(voice).max() * 12000).astype("<i2").tobytes())


def _best_rate(work: Callable[[], None], audio_s: float) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        work()
        best = min(best, time.process_time() - start)
    return audio_s / best if best > 0 else float("inf")


def _audioop() -> ModuleType | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            return importlib.import_module("audioop")
        except ImportError:
            return None


def _each(convert: Callable[[bytes], bytes], frames: list[bytes]) -> Callable[[], None]:
    def work() -> None:
        for frame in frames:
            convert(frame)

    return work


def measure_g711() -> list[G711Figures]:
    """Ours, and ``audioop`` where it exists, on the same frames."""
    pcm = _voice_like(SECONDS)
    codecs: list[tuple[str, Callable[[bytes], bytes], Callable[[bytes], bytes]]] = [
        ("asgi_audio_proxy.audio.g711", pcm16_to_ulaw, ulaw_to_pcm16)]
    audioop = _audioop()
    if audioop is not None:
        codecs.append(("audioop", lambda b: bytes(audioop.lin2ulaw(b, 2)),
                       lambda b: bytes(audioop.ulaw2lin(b, 2))))  # bytes(): typed, and free
    figures = []
    for name, encode, decode in codecs:
        ulaw = encode(pcm)
        rates = []
        for samples in (FRAME_SAMPLES, RATE_HZ):
            pcm_frames = [pcm[i:i + 2 * samples] for i in range(0, len(pcm), 2 * samples)]
            ulaw_frames = [ulaw[i:i + samples] for i in range(0, len(ulaw), samples)]
            rates.append(_best_rate(_each(encode, pcm_frames), SECONDS))
            rates.append(_best_rate(_each(decode, ulaw_frames), SECONDS))
        figures.append(G711Figures(name, round(rates[0]), round(rates[1]), round(rates[2]),
                                   round(rates[3])))
    return figures


def _twilio_call() -> tuple[Callable[[], None], Callable[[], None]]:
    sid = "MZ00000000000000000000000000000001"
    dialect = TwilioDialect()
    dialect.receive(json.dumps({"event": "start", "sequenceNumber": "1", "streamSid": sid,
                                "start": {"streamSid": sid, "callSid": "CA1", "accountSid": "AC1"}}))
    ulaw = pcm16_to_ulaw(_voice_like(1))
    frames = [json.dumps({"event": "media", "sequenceNumber": str(i + 2), "streamSid": sid, "media": {
        "track": "inbound", "chunk": str(i + 1), "timestamp": str(20 * i),
        "payload": base64.b64encode(ulaw[i * 160:(i + 1) * 160]).decode()}}) for i in range(50)]
    reply = _voice_like(1)
    events = [ReplyAudio(reply[i:i + 320], RATE_HZ) for i in range(0, len(reply), 320)]

    def receive() -> None:
        for _ in range(SECONDS):
            for frame in frames:
                dialect.receive(frame)

    def send() -> None:
        for _ in range(SECONDS):
            dialect.send(ReplyStarted())
            marks = [f for e in events for f in dialect.send(e) if '"mark"' in f]
            marks += [f for f in dialect.send(ReplyEnded("complete")) if '"mark"' in f]
            for mark in marks:  # Twilio echoes each mark, as it was sent, once its audio played
                dialect.receive(mark)

    return receive, send


def _native_call() -> tuple[Callable[[], None], Callable[[], None]]:
    dialect = native_dialect({"type": "websocket", "path": "/"}, ProxyConfig())
    rate = dialect.output_rate_hz
    frames = [bytes(_voice_like(0.02, rate)) for _ in range(50)]
    reply = _voice_like(1, rate)
    step = rate * 2 // 50
    events = [ReplyAudio(reply[i:i + step], rate) for i in range(0, len(reply), step)]

    def receive() -> None:
        for _ in range(SECONDS):
            for frame in frames:
                dialect.receive(frame)

    def send() -> None:
        for _ in range(SECONDS):
            dialect.send(ReplyStarted())
            for event in events:
                dialect.send(event)
            dialect.send(ReplyEnded("complete"))

    return receive, send


def measure_dialect_cpu() -> list[DialectFigures]:
    """The Twilio dialect's CPU per call-second, and the native one's beside it."""
    figures = []
    for name, make in (("twilio", _twilio_call), ("native", _native_call)):
        receive, send = make()
        figures.append(DialectFigures(name, round(1000 / _best_rate(receive, SECONDS), 3),
                                      round(1000 / _best_rate(send, SECONDS), 3)))
    return figures


def main() -> None:
    """``python -m benchmarks.twilio``: print both figures as JSON."""
    report = {"g711": [asdict(f) for f in measure_g711()],
              "dialect_cpu": [{**asdict(f), "total_ms_per_call_s": round(f.total_ms_per_call_s, 3)}
                              for f in measure_dialect_cpu()]}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
