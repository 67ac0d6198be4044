"""Same-run comparisons: a load shape, a dialect or a setting against its baseline, back to back.

Owns: the runs behind three groups of figures and their rows, each beside the baseline measured
in the same run against the same load upstream:

- *dialects*: one proxy (``serve.py proxy --dialects --barge-in off``) serving the native
  protocol, the Realtime dialect and the Twilio dialect; the same number of sessions of each,
  one after the other. Barge-in is off so the figure is the dialect's own work (JSON, base64,
  G.711, resampling); under the default ``control`` policy a Realtime session also runs the
  voice detector for its speech events, whose cost the voice figures give.
- *voice*: native sessions through a proxy with ``barge_in="voice"`` (every session's frames
  through the loop's batched Silero detector) against the same sessions with ``"off"``; and, in
  this process, one session's ear with the detector inline
  (:class:`~asgi_audio_proxy.session.voice.VoiceWatch` fed the load's audio) against many
  sessions' ears batched (:func:`benchmarks.vad_batch.batched_voice_cpu`), CPU per
  session-second.
- *phases*: taken inside the sweep (``__main__``); only its rows are built here.

Must not: print (progress goes through the ``log`` callable).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .dialect_wire import DIALECT_PATHS
from .load import LoadResult
from .marker import FRAME_BYTES, FRAMES_PER_MESSAGE, marked_frame
from .procs import ServerProcess, server
from .report import Row

__all__ = ["as_json", "dialect_rows", "measure_detector_cpu", "measure_dialects", "measure_voice",
           "phase_rows", "voice_rows"]

Log = Callable[[str], None]
RunLoad = Callable[..., LoadResult]


def _dialect_sessions(quick: bool) -> int:
    return 10 if quick else 50


def _voice_levels(quick: bool) -> list[int]:
    return [10] if quick else [50, 100, 200]


def _batched_sessions(quick: bool) -> int:
    return 10 if quick else 200


def measure_dialects(upstream: ServerProcess, run: RunLoad, quick: bool,
                     log: Log) -> tuple[dict[str, LoadResult], dict[int, LoadResult]]:
    """Native, Realtime and Twilio through one proxy; then native at each voice level (the
    barge-in-off baselines, from the same proxy). Returns ``(by dialect, off by sessions)``."""
    n = _dialect_sessions(quick)
    by_dialect: dict[str, LoadResult] = {}
    off: dict[int, LoadResult] = {}
    with server("proxy", "--upstream", upstream.http_url, "--dialects", "--barge-in", "off") as relay:
        for dialect in ("native", "realtime", "twilio"):
            log(f"dialects: {dialect} x {n} sessions ...")
            # native declares itself too: the upstream then checks its count against the marker,
            # which is how the other two are numbered
            by_dialect[dialect] = run(relay, upstream, relay.ws_url + DIALECT_PATHS[dialect],
                                      target=f"proxy-{dialect}", sessions=n, dialect=dialect,
                                      declare=True)
            log(_said(by_dialect[dialect]))
        off[n] = by_dialect["native"]
        for level in _voice_levels(quick):
            if level not in off:
                log(f"voice: barge-in off, native x {level} sessions ...")
                off[level] = run(relay, upstream, relay.ws_url + "/audio", target="proxy-voice-off",
                                 sessions=level)
                log(_said(off[level]))
    return by_dialect, off


def measure_voice(upstream: ServerProcess, run: RunLoad, quick: bool, log: Log) -> dict[int, LoadResult]:
    """Native sessions through a proxy with voice barge-in, at each voice level."""
    on: dict[int, LoadResult] = {}
    with server("proxy", "--upstream", upstream.http_url, "--barge-in", "voice") as relay:
        for level in _voice_levels(quick):
            log(f"voice: barge-in voice, native x {level} sessions ...")
            on[level] = run(relay, upstream, relay.ws_url + "/audio", target="proxy-voice-on",
                            sessions=level)
            log(_said(on[level]))
    return on


def measure_detector_cpu(quick: bool) -> dict[str, Any]:
    """The voice detector alone, in this process, on the load's audio: % of a core per session-s.

    One :class:`~asgi_audio_proxy.session.voice.VoiceWatch` under ``barge_in="voice"``, its
    detector inline, fed the load generator's 20 ms frames (silence with the marker); best of
    three, ``process_time``. Under ``"batched"``: 200 (quick: 10) of them batched on one loop,
    fed the same frames (20 s of them; quick: 5).
    """
    from asgi_audio_proxy.config import ProxyConfig
    from asgi_audio_proxy.session.voice import VoiceWatch

    from .vad_batch import batched_voice_cpu

    seconds = 5 if quick else 60
    messages = round(seconds / (FRAMES_PER_MESSAGE * 0.02))
    frames = [marked_frame(1, m) if i == 0 else bytes(FRAME_BYTES)
              for m in range(messages) for i in range(FRAMES_PER_MESSAGE)]
    voice = ProxyConfig(barge_in="voice").voice
    started = time.process_time()
    VoiceWatch(voice)
    setup_s = time.process_time() - started
    best = float("inf")
    for _ in range(3):
        watch = VoiceWatch(voice)
        started = time.process_time()
        for frame in frames:
            watch.heard(frame, 16_000)
        best = min(best, time.process_time() - started)
    batched_s = 5 if quick else 20
    batched = batched_voice_cpu(frames[: round(batched_s / 0.02)], _batched_sessions(quick), batched_s)
    return {"cpu_pct_per_session_s": round(best / seconds * 100, 3), "audio_s": seconds,
            "setup_cpu_ms": round(setup_s * 1000, 1), "batched": batched}


def _said(run: LoadResult) -> str:
    return (f"  p50 {run.latency_ms.get('p50')} ms p99 {run.latency_ms.get('p99')} ms, "
            f"cpu {run.relay_cpu_s} s, valid {run.valid} {run.invalid_reasons}")


def _pct(run: LoadResult) -> float:
    return round(run.cpu_s_per_audio_s * 100, 3)


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b <= 0 or a < 0 else round(a / b, 2)


def _invalid(*runs: LoadResult) -> str:
    reasons = [f"{r.target}: {why}" for r in runs for why in r.invalid_reasons]
    return "INVALID: " + "; ".join(reasons) if reasons else ""


def _latency_rows(label: str, run: LoadResult, base: LoadResult, base_name: str) -> list[Row]:
    rows = []
    for q in ("p50", "p99"):
        value, b = run.latency_ms.get(q), base.latency_ms.get(q)
        added = None if value is None or b is None else value - b
        rows.append(Row(f"{label}: client->upstream {q}, {run.sessions} sessions", value, "ms", b,
                        _ratio(value, b), note=_invalid(run, base) or (
                            f"{added:+.3f} ms against {base_name}" if added is not None else "")))
    return rows


def phase_rows(aligned: dict[str, LoadResult], random: dict[str, LoadResult]) -> list[Row]:
    """Aligned against random message phases: the proxy's latency (what it adds over the bare
    relay, in the same shape, in the note) and its CPU per session."""
    proxy, bare = aligned["proxy"], aligned["bare"]
    proxy_r, bare_r = random["proxy"], random["bare"]
    invalid = _invalid(proxy, bare, proxy_r, bare_r)
    rows = []
    for q in ("p50", "p99"):
        p, b, pr, br = (r.latency_ms.get(q) for r in (proxy, bare, proxy_r, bare_r))
        added = "no latency measured"
        if p is not None and b is not None and pr is not None and br is not None:
            added = f"added (proxy - bare): aligned {p - b:+.3f} ms, random {pr - br:+.3f} ms"
        rows.append(Row(f"phases aligned vs random: client->upstream {q}, {proxy.sessions} sessions",
                        p, "ms", pr, _ratio(p, pr), note=invalid or added))
    rows.append(Row(f"phases aligned vs random: CPU s per audio s per session, {proxy.sessions} sessions",
                    _pct(proxy), "% core", _pct(proxy_r), _ratio(_pct(proxy), _pct(proxy_r)),
                    note=invalid or f"bare: aligned {_pct(bare)}, random {_pct(bare_r)} % core"))
    return rows


def dialect_rows(by_dialect: dict[str, LoadResult]) -> list[Row]:
    """Realtime and Twilio against native, same proxy, same load."""
    native = by_dialect["native"]
    rows = []
    for dialect, label in (("realtime", "Realtime vs native"), ("twilio", "Twilio vs native")):
        run = by_dialect[dialect]
        rows.append(Row(f"{label}: CPU s per audio s per session, {run.sessions} sessions",
                        _pct(run), "% core", _pct(native), _ratio(_pct(run), _pct(native)),
                        note=_invalid(run, native)))
        rows.extend(_latency_rows(label, run, native, "native"))
    return rows


def voice_rows(on: dict[int, LoadResult], off: dict[int, LoadResult],
               detector: dict[str, Any]) -> list[Row]:
    """Voice barge-in on against off, per level; and the detector alone."""
    rows = []
    for level in sorted(on, reverse=True):
        run, base = on[level], off[level]
        added = (run.relay_cpu_s - base.relay_cpu_s) / (run.window_s * level) * 100
        rows.append(Row(f"voice barge-in on vs off: CPU s per audio s per session, {level} sessions",
                        _pct(run), "% core", _pct(base), _ratio(_pct(run), _pct(base)),
                        note=_invalid(run, base) or f"on - off: {added:+.3f} % core per session"))
        rows.extend(_latency_rows("voice barge-in on vs off", run, base, "off"))
    top = max(off)
    per_session = detector["cpu_pct_per_session_s"]
    rows.append(Row("voice detector alone (VoiceWatch, in-process): CPU per session-second",
                    per_session, "% core", _pct(off[top]), _ratio(per_session, _pct(off[top])),
                    note=f"baseline: whole proxy per session, barge-in off, {top} sessions; one event "
                         f"loop holds about {100 / (per_session + _pct(off[top])):.0f} voice sessions; "
                         f"set-up {detector['setup_cpu_ms']} ms CPU per session"))
    batched = detector["batched"]
    n = batched["sessions"]
    rows.append(Row(f"voice detector batched vs alone (VoiceWatch, in-process): CPU per session-second, "
                    f"{n} sessions", batched["cpu_pct_per_session_s"], "% core", per_session,
                    _ratio(batched["cpu_pct_per_session_s"], per_session),
                    note=f"of it on the event loop: {batched['loop_cpu_pct_per_session_s']} % core "
                         f"(the decisions; the model runs in the batch's thread); "
                         f"{batched['calls']} model calls for {batched['frames']} frames"))
    return rows


def as_json(by_dialect: dict[str, LoadResult], on: dict[int, LoadResult], off: dict[int, LoadResult],
            detector: dict[str, Any]) -> dict[str, Any]:
    return {"dialects": {d: r.as_dict() for d, r in by_dialect.items()},
            "voice": {"on": {str(n): r.as_dict() for n, r in on.items()},
                      "off": {str(n): r.as_dict() for n, r in off.items()}, "detector": detector}}
