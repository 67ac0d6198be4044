"""The table: each figure beside its same-run baseline, the ratio, the goal and whether it holds.

Owns: turning measured runs into :class:`Row` objects, the text table, and the optional PNG
(latency and CPU against sessions; skipped with a note when matplotlib is missing).
Must not: measure anything.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .load import LoadResult, summary
from .resampler import ResamplerFigures

__all__ = ["Row", "build_rows", "format_table", "plot"]


@dataclass(frozen=True)
class Row:
    figure: str
    value: float | None
    unit: str
    baseline: float | None = None
    ratio: float | None = None
    goal: str = ""
    holds: bool | None = None
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _r(x: float | None, nd: int = 3) -> float | None:
    return None if x is None else round(float(x), nd)


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b <= 0 else round(a / b, 2)


def _by_sessions(runs: list[LoadResult]) -> dict[int, LoadResult]:
    return {r.sessions: r for r in runs}


def build_rows(bare: list[LoadResult], proxy: list[LoadResult], replies: LoadResult,
               turns: dict[str, Any], soak: LoadResult | None, resamplers: list[ResamplerFigures],
               router: dict[str, float]) -> list[Row]:
    rows: list[Row] = []
    bare_at, proxy_at = _by_sessions(bare), _by_sessions(proxy)
    for n, run in sorted(proxy_at.items()):
        base = bare_at.get(n)
        valid = run.valid and (base is None or base.valid)
        reasons = run.invalid_reasons + (base.invalid_reasons if base else [])
        note = "" if valid else "INVALID: " + "; ".join(reasons)
        for q, goal_ms in (("p50", 1.0), ("p99", 5.0)):
            value = run.latency_ms.get(q)
            b = base.latency_ms.get(q) if base else None
            added = None if value is None or b is None else value - b
            goal = f"added <= {goal_ms:g} ms at 100" if n == 100 else ""
            rows.append(Row(f"client->upstream {q}, {n} sessions (added = proxy - bare)", _r(value), "ms",
                            _r(b), _ratio(value, b), goal,
                            (added is not None and added <= goal_ms and valid) if goal else None,
                            note or (f"added {added:+.3f} ms" if added is not None else "")))
    for n, run in sorted(proxy_at.items()):
        base = bare_at.get(n)
        if n < 50:
            continue
        ratio = _ratio(run.cpu_s_per_audio_s, base.cpu_s_per_audio_s if base else None)
        rows.append(Row(f"CPU s per audio s per session, {n} sessions",
                        _r(run.cpu_s_per_audio_s * 100, 3), "% core",
                        _r(base.cpu_s_per_audio_s * 100, 3) if base else None, ratio,
                        "<= 1.5x bare", ratio is not None and ratio <= 1.5 and run.valid,
                        "" if run.valid else "INVALID"))
    held = [r.sessions for r in proxy if r.valid and r.latency_ms.get("p99", 1e9) < 20]
    bare_held = [r.sessions for r in bare if r.valid and r.latency_ms.get("p99", 1e9) < 20]
    tried = ",".join(str(r.sessions) for r in proxy)
    rows.append(Row(f"most sessions with p99 < 20 ms (tried: {tried})",
                    max(held, default=0), "sessions", max(bare_held, default=0), None, ">= 200",
                    (max(held, default=0) >= 200) if max(r.sessions for r in proxy) >= 200 else None))
    top = max(proxy, key=lambda r: r.sessions)
    rows.append(Row(f"RSS per live session ({top.sessions} sessions)", top.rss_per_session_kib, "KiB",
                    bare_at[top.sessions].rss_per_session_kib if top.sessions in bare_at else None,
                    None, "<= 256 KiB", top.rss_per_session_kib <= 256))
    reply = summary(replies.reply_ms) if replies.reply_ms else {}
    e2e = summary(replies.reply_e2e_ms) if replies.reply_e2e_ms else {}
    rows.append(Row(f"reply path p50, SSE event in proxy -> client has PCM ({replies.sessions} sess.)",
                    reply.get("p50"), "ms", None, None, "<= 2 ms",
                    reply.get("p50") is not None and reply["p50"] <= 2.0,
                    f"p99 {reply.get('p99')} ms, n {reply.get('n', 0)}; upstream write -> client p50 "
                    f"{e2e.get('p50')} ms"))
    rows.append(Row("reply compute per 0.53 s chunk (JSON+b64+WAV+resample)",
                    router["cpu_ms_per_event"], "ms CPU", None, None, "", None,
                    f"{router['x_realtime']}x real time"))
    proxied, direct, cut = turns["proxy"], turns["direct"], turns["barge_in"]
    p_ms = float(np.median(proxied.first_audio_ms)) if proxied.first_audio_ms else None
    d_ms = float(np.median(direct.first_audio_ms)) if direct.first_audio_ms else None
    ratio = _ratio(p_ms, d_ms)
    rows.append(Row("first reply audio after speech ends (median)", _r(p_ms, 1), "ms", _r(d_ms, 1), ratio,
                    "<= 1.05x direct", ratio is not None and ratio <= 1.05,
                    f"turns {len(proxied.first_audio_ms)}/{len(direct.first_audio_ms)}; "
                    + "; ".join(proxied.failures + direct.failures)))
    cut_ms = max(cut.stop_to_turn_end_ms) if cut.stop_to_turn_end_ms else None
    rows.append(Row("barge-in: stop sent -> turn_end 'stopped' (worst, client round trip)", _r(cut_ms), "ms",
                    None, None, "<= 20 ms, 0 audio after",
                    cut_ms is not None and cut_ms <= 20 and cut.pcm_after_turn_end == 0,
                    f"PCM after turn_end {cut.pcm_after_turn_end}, "
                    f"in flight {cut.pcm_between_stop_and_turn_end}" + "; ".join(cut.failures)))
    if soak is not None and len(soak.rss_samples) >= 2:
        t = np.array([s[0] for s in soak.rss_samples])
        rss = np.array([s[1] for s in soak.rss_samples])
        half = len(rss) // 2
        growth = float(rss[half:].mean() - rss[:half].mean())
        slope = float(np.polyfit(t, rss, 1)[0]) * 60
        rows.append(Row(f"soak RSS growth, 2nd half vs 1st ({soak.window_s:.0f} s, 50 sessions)",
                        _r(growth, 1), "KiB", None, None, "no growth",
                        growth < 512 and soak.valid,
                        f"slope {slope:+.1f} KiB/min; RSS {rss[0]:.0f} -> {rss[-1]:.0f} KiB"
                        + ("" if soak.valid else "; INVALID " + "; ".join(soak.invalid_reasons))))
    for fig in resamplers:
        rows.append(Row(f"resampler {fig.name}: alias rejection", fig.alias_rejection_db, "dB", None, None,
                        ">= 60 dB", fig.alias_rejection_db >= 60,
                        f"worst tone {fig.worst_alias_tone_hz:.0f} Hz"))
        rows.append(Row(f"resampler {fig.name}: passband ripple to 7 kHz", fig.passband_ripple_db, "dB",
                        None, None, "<= 0.1 dB", fig.passband_ripple_db <= 0.1))
        rows.append(Row(f"resampler {fig.name}: delay + held back", _r(fig.delay_ms + fig.held_back_ms),
                        "ms", None, None, "", None, f"filter {fig.delay_ms} ms, held {fig.held_back_ms} ms"))
        rows.append(Row(f"resampler {fig.name}: speed", fig.speed_x_realtime, "x real time", None, None,
                        ">= 500x", fig.speed_x_realtime >= 500))
    return rows


def _cell(x: float | None) -> str:
    return "-" if x is None else (f"{x:g}" if abs(x) < 1e6 else f"{x:.3g}")


def format_table(rows: list[Row], elapsed_s: float) -> str:
    header = ("figure", "proxy", "baseline", "ratio", "unit", "goal", "holds", "note")
    cells = [header] + [(r.figure, _cell(r.value), _cell(r.baseline), _cell(r.ratio), r.unit, r.goal,
                         {True: "yes", False: "NO", None: ""}[r.holds], r.note) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header) - 1)]
    lines = ["| " + " | ".join(c[i].ljust(widths[i]) if i < len(widths) else c[i]
                               for i in range(len(header))) + " |" for c in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|---|")
    lines.append("\n(baseline: bare relay for load rows, direct client for first audio; "
                 f"run took {elapsed_s:.0f} s)")
    return "\n".join(lines)


def plot(path: str, bare: list[LoadResult], proxy: list[LoadResult]) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "plot skipped: matplotlib is not installed"
    fig, (lat, cpu) = plt.subplots(1, 2, figsize=(11, 4))
    for runs, label in ((bare, "bare relay"), (proxy, "proxy")):
        n = [r.sessions for r in runs]
        lat.plot(n, [r.latency_ms.get("p50", np.nan) for r in runs], "o-", label=f"{label} p50")
        lat.plot(n, [r.latency_ms.get("p99", np.nan) for r in runs], "s--", label=f"{label} p99")
        cpu.plot(n, [r.relay_cpu_s / r.window_s * 100 for r in runs], "o-", label=label)
    lat.set(xlabel="sessions", ylabel="client -> upstream latency (ms)", yscale="log")
    cpu.set(xlabel="sessions", ylabel="relay process CPU (% of one core)")
    lat.legend()
    cpu.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return f"plot written to {path}"
