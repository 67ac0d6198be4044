"""``python -m benchmarks.codecs``: where a Realtime or Twilio frame's CPU goes, piece by piece.

Owns: in-process timings, in microseconds per 20 ms frame, of every step the proxy takes on one
inbound frame of each dialect, beside the faster codecs that could replace a step: the JSON
parse (stdlib ``json`` against ``orjson`` and ``msgspec``), the base64 decode (``base64`` against
``binascii`` directly and ``pybase64``), the building of an outbound Twilio ``media`` (a dict
through ``json.dumps``, the message written out around its escaped strings, and ``orjson``),
the loudest sample of an append, the μ-law decode and the resampling to the upstream's 16 kHz.
A codec that is not installed is reported as missing, not measured. Must not: start processes
or do network I/O, outside ``--sessions``.

``--sessions N [--window S]`` runs the end-to-end "Realtime vs native" and "Twilio vs native"
rows of ``python -m benchmarks`` alone (a proxy and a load upstream as processes; about a
minute with 50 sessions).

Each in-process figure is the best of five runs of ``--frames`` frames (``time.perf_counter``), so it is
the step's own cost on an idle core; the machine's load only makes every figure slower.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import importlib
import json
import random
import time
from collections.abc import Callable
from typing import Any

from asgi_audio_proxy.audio.g711 import ulaw_to_pcm16
from asgi_audio_proxy.audio.resample import Resampler
from asgi_audio_proxy.config import ProxyConfig
from asgi_audio_proxy.dialects.jsonwire import loads
from asgi_audio_proxy.dialects.native import native_dialect
from asgi_audio_proxy.dialects.realtime.codec import peak, strict_b64decode
from asgi_audio_proxy.dialects.realtime.dialect import RealtimeDialect
from asgi_audio_proxy.dialects.twilio import TwilioDialect
from asgi_audio_proxy.dialects.twilio.messages import outbound
from asgi_audio_proxy.events import AudioIn

__all__ = ["end_to_end", "main", "measure"]

#: 20 ms of 24 kHz PCM16 (a Realtime append) and of 8 kHz μ-law (a Twilio media message)
_PCM_24K = bytes(range(256)) * 3 + bytes(192)
_ULAW_8K = bytes(range(96, 256))
_APPEND = json.dumps({"type": "input_audio_buffer.append", "event_id": "event_0001",
                      "audio": base64.b64encode(_PCM_24K).decode("ascii")})
_MEDIA = json.dumps({"event": "media", "sequenceNumber": "3", "streamSid": "MZ" + "0" * 32,
                     "media": {"track": "inbound", "chunk": "2", "timestamp": "20",
                               "payload": base64.b64encode(_ULAW_8K).decode("ascii")}})
_SID = "MZ" + "0" * 32


def _best_us(step: Callable[[], object], frames: int) -> float:
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(frames):
            step()
        best = min(best, time.perf_counter() - t0)
    return round(best / frames * 1e6, 2)


def _optional(name: str) -> Any | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _steps() -> dict[str, Callable[[], object] | None]:
    orjson, msgspec, pybase64 = _optional("orjson"), _optional("msgspec"), _optional("pybase64")
    audio = json.loads(_APPEND)["audio"]
    payload = json.loads(_MEDIA)["media"]["payload"]
    up_24k, up_8k = Resampler(24_000, 16_000), Resampler(8_000, 16_000)
    msgspec_decode = msgspec.json.Decoder().decode if msgspec else None
    return {
        "json parse, append: json.loads": lambda: json.loads(_APPEND),
        "json parse, append: orjson.loads": (lambda: orjson.loads(_APPEND)) if orjson else None,
        "json parse, append: msgspec": (lambda: msgspec_decode(_APPEND)) if msgspec_decode else None,
        "json parse, append: jsonwire.loads (what the dialects use)": lambda: loads(_APPEND),
        "json parse, media: json.loads": lambda: json.loads(_MEDIA),
        "json parse, media: orjson.loads": (lambda: orjson.loads(_MEDIA)) if orjson else None,
        "base64 decode, append: base64.b64decode(validate)":
            lambda: base64.b64decode(audio, validate=True),
        "base64 decode, append: binascii.a2b_base64(strict)":
            lambda: binascii.a2b_base64(audio, strict_mode=True),
        "base64 decode, append: strict_b64decode (what the Realtime dialect uses)":
            lambda: strict_b64decode(audio),
        "base64 decode, append: pybase64.b64decode(validate)":
            (lambda: pybase64.b64decode(audio, validate=True)) if pybase64 else None,
        "base64 decode, media: base64.b64decode(validate)":
            lambda: base64.b64decode(payload, validate=True),
        "outbound media: dict + json.dumps": lambda: json.dumps(
            {"event": "media", "streamSid": _SID, "media": {"payload": payload}},
            separators=(",", ":")),
        "outbound media: written out (twilio.messages.outbound)":
            lambda: outbound("media", _SID, {"payload": payload}),
        "outbound media: orjson.dumps": (lambda: orjson.dumps(
            {"event": "media", "streamSid": _SID, "media": {"payload": payload}}).decode())
            if orjson else None,
        "loudest sample of an append: peak": lambda: peak(_PCM_24K),
        "mu-law decode, media: ulaw_to_pcm16": lambda: ulaw_to_pcm16(_ULAW_8K),
        "resample, append: 24 kHz to 16 kHz": lambda: up_24k.feed(_PCM_24K),
        "resample, media: 8 kHz to 16 kHz": lambda: up_8k.feed(_PCM_24K[:320]),
    }


def _inbound() -> dict[str, Callable[[], object]]:
    """One 20 ms frame of each dialect read and brought to the upstream's 16 kHz: the part of a
    frame's CPU that differs between dialects (the socket, the session and the upstream send are
    the same for all three), on noise rather than the load's silence."""
    noise = bytes(random.Random(1).randrange(256) for _ in range(960))
    config = ProxyConfig()
    native = native_dialect({"type": "websocket", "path": "/"}, config)
    realtime, to_16k = RealtimeDialect(config), Resampler(24_000, 16_000)
    twilio, from_8k = TwilioDialect(), Resampler(8_000, 16_000)
    twilio.receive(json.dumps({"event": "start", "sequenceNumber": "1", "streamSid": _SID,
                               "start": {"streamSid": _SID, "callSid": "CA1", "accountSid": "AC1"}}))
    append = json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(noise).decode()})
    media = json.dumps({"event": "media", "sequenceNumber": "2", "streamSid": _SID, "media": {
        "track": "inbound", "chunk": "1", "timestamp": "0",
        "payload": base64.b64encode(noise[:160]).decode()}})

    def through(dialect: Any, frame: str | bytes, resampler: Resampler | None) -> Callable[[], object]:
        def step() -> None:
            for event in dialect.receive(frame):
                if resampler is not None and isinstance(event, AudioIn):
                    resampler.feed(event.pcm)
        return step

    return {"inbound frame, native: dialect (16 kHz, no resampling)": through(native, noise[:640], None),
            "inbound frame, Realtime: dialect + 24 to 16 kHz": through(realtime, append, to_16k),
            "inbound frame, Twilio: dialect + 8 to 16 kHz": through(twilio, media, from_8k)}


def measure(frames: int) -> dict[str, float | None]:
    """Microseconds per frame of each step (``None``: its codec is not installed)."""
    steps = {**_steps(), **_inbound()}
    return {name: None if step is None else _best_us(step, frames) for name, step in steps.items()}


def end_to_end(sessions: int, window_s: float) -> dict[str, float]:
    """The "Realtime vs native" and "Twilio vs native" rows alone: one proxy serving the three
    dialects (barge-in off), ``sessions`` of each one after the other, then native again; the
    proxy's CPU per session in % of a core, and each dialect's ratio to the two native runs'
    mean. A run the load generator calls invalid is marked so in its key."""
    from .dialect_wire import DIALECT_PATHS
    from .load import run_load
    from .procs import server

    cpu: dict[str, float] = {}
    with server("load-upstream") as upstream, server("proxy", "--upstream", upstream.http_url,
                                                     "--dialects", "--barge-in", "off") as relay:
        for i, dialect in enumerate(("native", "realtime", "twilio", "native")):
            run = run_load(relay, upstream, relay.ws_url + DIALECT_PATHS[dialect], target=dialect,
                           sessions=sessions, dialect=dialect, declare=True, warmup_s=1.0,
                           window_s=window_s)
            name = f"{dialect}{'' if i < 3 else ' again'}{'' if run.valid else ' (INVALID)'}"
            cpu[f"{name}: % core per session"] = round(run.cpu_s_per_audio_s * 100, 3)
    values = list(cpu.values())
    native = (values[0] + values[3]) / 2
    cpu["Realtime vs native: x"] = round(values[1] / native, 2)
    cpu["Twilio vs native: x"] = round(values[2] / native, 2)
    return cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.codecs", description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=2000, help="frames per run (best of five runs)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--sessions", type=int, default=0,
                        help="instead, the end-to-end dialect rows with this many sessions each")
    parser.add_argument("--window", type=float, default=8.0, help="seconds measured per run (--sessions)")
    args = parser.parse_args(argv)
    if args.sessions:
        for name, value in end_to_end(args.sessions, args.window).items():
            print(f"{name:<40} {value}")
        return 0
    figures = measure(args.frames)
    if args.json:
        print(json.dumps(figures, indent=1))
        return 0
    width = max(map(len, figures))
    for name, us in figures.items():
        print(f"{name:<{width}}  {'not installed' if us is None else f'{us:8.2f} us/frame'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
