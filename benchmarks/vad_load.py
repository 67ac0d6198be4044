"""Voice barge-in under load: the bare relay, the proxy with barge-in off and with voice, side by side.

Owns: the load part of :mod:`benchmarks.vad_scale`. At each level, one run of each target against
one load upstream, back to back, so all three see the machine alike; the proxy's added latency is
against the bare relay of the same level. Must not: print but through ``print_load``.
"""

from __future__ import annotations

from typing import Any

from .load import LoadResult, run_load
from .procs import server

__all__ = ["measure_load", "print_load"]


def _figures(run: LoadResult) -> dict[str, Any]:
    return {"valid": run.valid, "invalid": run.invalid_reasons, "latency_ms": run.latency_ms,
            "cpu_pct_per_session_s": round(run.cpu_s_per_audio_s * 100, 3),
            "rss_per_session_kib": run.rss_per_session_kib}


def measure_load(levels: tuple[int, ...], quick: bool) -> list[dict[str, Any]]:
    """``{"sessions", "bare", "off", "voice"}`` per level, each the figures of one run."""
    warmup, window = (0.5, 2.0) if quick else (2.0, 8.0)
    rows: list[dict[str, Any]] = []
    with server("load-upstream") as upstream, \
            server("bare", "--upstream", upstream.http_url) as bare, \
            server("proxy", "--upstream", upstream.http_url, "--barge-in", "off") as off, \
            server("proxy", "--upstream", upstream.http_url, "--barge-in", "voice") as voice:
        targets = {"bare": (bare, bare.ws_url + "/relay"), "off": (off, off.ws_url + "/audio"),
                   "voice": (voice, voice.ws_url + "/audio")}
        for n in levels:
            row: dict[str, Any] = {"sessions": n}
            for name, (relay, url) in targets.items():
                run = run_load(relay, upstream, url, target=f"{name}-{n}", sessions=n,
                               warmup_s=warmup, window_s=window)
                row[name] = _figures(run)
            rows.append(row)
    return rows


def print_load(rows: list[dict[str, Any]]) -> None:
    print("| sessions | barge-in | CPU per session-s | voice / off | added p50 / p99 vs bare relay "
          "| RSS per session | valid |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        bare = row["bare"]["latency_ms"]
        for name in ("off", "voice"):
            run = row[name]
            latency = run["latency_ms"]
            added = " / ".join(
                f"{latency[q] - bare[q]:+.2f} ms" if q in latency and q in bare else "n/a"
                for q in ("p50", "p99"))
            ratio = run["cpu_pct_per_session_s"] / max(row["off"]["cpu_pct_per_session_s"], 1e-9)
            valid = "yes" if run["valid"] and row["bare"]["valid"] else "no: " + "; ".join(
                run["invalid"] + row["bare"]["invalid"])
            print(f"| {row['sessions']} | {name} | {run['cpu_pct_per_session_s']:.3f}% | {ratio:.2f}x "
                  f"| {added} | {run['rss_per_session_kib']:.0f} KiB | {valid} |")
