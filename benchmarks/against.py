"""``python -m benchmarks.against REV [--sessions N] [--rounds R] [--window S] [--json PATH]``.

The proxy's CPU per session in this tree against the proxy at another git revision, both
measured in the same window under the same load: did a change make the proxy dearer?

Owns: a temporary ``git worktree`` of ``REV`` (removed at the end), and per round a pair of proxy
processes, one from each tree, each with its own load upstream and load generators
(:func:`benchmarks.load.run_load`, native sessions), started together; the order in which they
start alternates by round. Prints a table (CPU seconds of each, the ratio this/REV) and writes
the JSON report. ``REV`` must have ``benchmarks/serve.py`` taking ``proxy --upstream URL`` and
serving the native protocol on ``/audio`` (every revision since the benchmarks came does); it
runs with this environment's packages.

Why paired and not one after the other: on a two-core machine the CPU one proxy spends on the
same load varies by 10-30 % from run to run with what else is scheduled meanwhile (how many
frames each wake-up finds); two proxies measured in the same window see the same machine, and
their ratio varies by a few percent.
Must not: touch the working tree or the repository's branches (the worktree is detached).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .load import LoadResult, run_load
from .procs import ServerProcess, server

__all__ = ["main", "measure"]

ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def checkout(rev: str) -> Iterator[Path]:
    """A detached worktree of ``rev`` for the block's duration."""
    with tempfile.TemporaryDirectory(prefix="against-") as tmp:
        path = Path(tmp) / "tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet", str(path), rev],
                       check=True, capture_output=True, text=True)
        try:
            if not (path / "benchmarks" / "serve.py").is_file():
                raise SystemExit(f"{rev} has no benchmarks/serve.py to run its proxy with")
            yield path
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)],
                           check=False, capture_output=True)


def _pair_round(trees: dict[str, str | None], upstreams: dict[str, ServerProcess], sessions: int,
                warmup_s: float, window_s: float) -> dict[str, LoadResult]:
    """One round: both proxies up, both loads started together, each read over its window."""
    results: dict[str, LoadResult] = {}
    errors: list[BaseException] = []
    with contextlib.ExitStack() as stack:
        relays = {name: stack.enter_context(server("proxy", "--upstream", upstreams[name].http_url,
                                                   cwd=cwd))
                  for name, cwd in trees.items()}

        def load(name: str) -> None:
            try:
                results[name] = run_load(relays[name], upstreams[name], relays[name].ws_url + "/audio",
                                         target=f"proxy@{name}", sessions=sessions,
                                         warmup_s=warmup_s, window_s=window_s)
            except BaseException as exc:  # re-raised below, in the caller's thread
                errors.append(exc)

        threads = [threading.Thread(target=load, args=(name,)) for name in trees]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    if errors:
        raise errors[0]
    return results


def measure(rev_tree: Path, *, sessions: int, rounds: int, warmup_s: float, window_s: float,
            log: Any = print) -> dict[str, Any]:
    """Run the rounds; returns the report (each round's CPU, the ratios and their spread)."""
    rows: list[dict[str, Any]] = []
    with server("load-upstream") as up_this, server("load-upstream") as up_rev:
        upstreams = {"this": up_this, "rev": up_rev}
        for i in range(rounds):
            order: dict[str, str | None] = {"this": None, "rev": str(rev_tree)}
            if i % 2:  # the other one starts first
                order = dict(reversed(list(order.items())))
            log(f"round {i + 1}/{rounds}: {sessions} sessions on each proxy ...")
            runs = _pair_round(order, upstreams, sessions, warmup_s, window_s)
            this, rev = runs["this"], runs["rev"]
            rows.append({"round": i + 1, "this_cpu_s": this.relay_cpu_s, "rev_cpu_s": rev.relay_cpu_s,
                         "ratio": round(this.relay_cpu_s / rev.relay_cpu_s, 3) if rev.relay_cpu_s else None,
                         "valid": this.valid and rev.valid,
                         "invalid_reasons": this.invalid_reasons + rev.invalid_reasons})
    ratios = [r["ratio"] for r in rows if r["valid"] and r["ratio"] is not None]
    return {"sessions_each": sessions, "rounds": rows, "window_s": window_s,
            "ratio": {"median": round(statistics.median(ratios), 3), "min": min(ratios),
                      "max": max(ratios), "n": len(ratios)} if ratios else {"n": 0}}


def format_table(report: dict[str, Any], rev: str) -> str:
    lines = [f"| round | {rev} CPU s | this tree CPU s | this / {rev} | note |", "|---|---|---|---|---|"]
    for r in report["rounds"]:
        note = "" if r["valid"] else "INVALID: " + "; ".join(r["invalid_reasons"])
        lines.append(f"| {r['round']} | {r['rev_cpu_s']:.2f} | {r['this_cpu_s']:.2f} | {r['ratio']} "
                     f"| {note} |")
    ratio = report["ratio"]
    if ratio["n"]:
        lines.append(f"\nthis / {rev}: median {ratio['median']}, min {ratio['min']}, max {ratio['max']} "
                     f"over {ratio['n']} valid rounds ({report['sessions_each']} sessions on each, "
                     f"{report['window_s']:g} s windows)")
    else:
        lines.append("\nno valid round")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.against",
                                     description="The proxy's CPU in this tree against REV's, paired.")
    parser.add_argument("rev", help="the git revision to compare against (a commit, tag or branch)")
    parser.add_argument("--sessions", type=int, default=50, help="sessions on each proxy (default 50)")
    parser.add_argument("--rounds", type=int, default=6, help="pairs measured (default 6)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before the window (default 2)")
    parser.add_argument("--window", type=float, default=10.0, help="seconds measured (default 10)")
    parser.add_argument("--json", metavar="PATH", help="write the report here too")
    args = parser.parse_args(argv)
    with checkout(args.rev) as tree:
        report = measure(tree, sessions=args.sessions, rounds=args.rounds, warmup_s=args.warmup,
                         window_s=args.window, log=lambda line: print(line, file=sys.stderr, flush=True))
    report["rev"] = args.rev
    print(format_table(report, args.rev))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0 if report["ratio"]["n"] else 1


if __name__ == "__main__":
    sys.exit(main())
