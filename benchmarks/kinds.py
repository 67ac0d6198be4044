"""``python -m benchmarks.kinds [--sessions N] [--seconds S] [--warmup S] [--json PATH]``.

The CPU one ``asgi-audio-proxy serve`` process spends per session in front of each upstream
kind, every kind measured in the same run, each against the ``minicpm`` kind (the baseline).

Owns: :data:`KIND_UPSTREAMS`, the table of how to start a server of each kind on loopback with
room for every session (``minicpm``: the simulator; ``realtime``: a second ``serve`` in front of
the simulator, whose ``/v1/realtime`` is the Realtime upstream; ``vllm-duplex`` and
``minicpm-demo``: their simulators), plus any other kind ``asgi-audio-proxy simulate --kind``
plays (:func:`kinds_to_measure`); per kind, a front ``serve --upstream-kind KIND --slots N``
process (:mod:`benchmarks.commands` starts the package's commands) and N native sessions taking
turns through it (:mod:`benchmarks.talkers`, a process of its own, which reads the front
process's CPU, user + system, at the window's edges); the judgement of each run, the rows and
the JSON. Must not: measure any process but the front ``serve``, or run anything off loopback.

A kind that completes no turn in the window measured nothing (a kind that silently does nothing
would look cheapest): its run is invalid, the command says so and exits 1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .commands import serve_command, simulate_command, simulator_app
from .load import MAX_LATE_MS, MAX_LATE_P99_MS
from .procs import child_env, python_command, server
from .report import Row
from .talkers import TURN_TIMEOUT_S, TalkFigures

__all__ = ["BASELINE_KIND", "KIND_UPSTREAMS", "KindRun", "as_json", "kind_rows", "kinds_to_measure",
           "main", "measure_kinds", "simulator_kinds"]

#: every other kind's CPU is given as a ratio to this one's, measured in the same run
BASELINE_KIND = "minicpm"
#: the simulated model: 4 reply chunks 0.5 s apart (about real time, as a GPU sends them)
SIMULATOR_ARGS = ("--first-chunk-delay-s", "0.05", "--chunk-delay-s", "0.5", "--reply-chunks", "4")

#: beyond warm-up and window: connecting every session, their tail and closing, a busy machine
_TALKERS_SLACK_S = 90.0

#: how to start a server of a kind: given the sessions it must hold, yields its upstream URL
UpstreamStarter = Callable[[int], contextlib.AbstractContextManager[str]]


@contextlib.contextmanager
def _simulator(sessions: int) -> Iterator[str]:
    """The simulator, one conversation per uid (``asgi-audio-proxy simulate`` holds only one)."""
    with server("simulator", *SIMULATOR_ARGS) as sim:
        yield sim.http_url


@contextlib.contextmanager
def _serve_in_front_of_the_simulator(sessions: int) -> Iterator[str]:
    """Another proxy's ``/v1/realtime``, that proxy in front of the simulator.

    Its barge-in is off: under ``control`` each of its Realtime sessions runs the voice detector
    for ``speech_started`` (1.5 % of a core per session, docs/benchmarks.md), and with 20 of them
    on two cores that upstream fell behind and stopped answering, which is not the front's cost.
    """
    with _simulator(sessions) as url, serve_command("minicpm", url, "--barge-in", "off",
                                                    slots=sessions) as back:
        yield back.ws_url + "/v1/realtime"


def _simulate(kind: str) -> UpstreamStarter:
    """``asgi-audio-proxy simulate --kind KIND``, at the URL it announces."""

    def start(sessions: int) -> contextlib.AbstractContextManager[str]:
        return simulate_command(kind)

    return start


def _app(target: str, capacity: str, url: str) -> UpstreamStarter:
    """A simulator class (``module:Class``) with ``capacity`` (its keyword) set to the sessions;
    ``url`` is where it serves, ``{address}`` its host and port."""

    def start(sessions: int) -> contextlib.AbstractContextManager[str]:
        return simulator_app(target, url, **{capacity: sessions})

    return start


#: kind name -> how to start its upstream server, with room for every session at once. A kind
#: ``serve`` knows and ``asgi-audio-proxy simulate --kind`` plays needs no entry (see
#: :func:`kinds_to_measure`) if that simulator holds as many conversations as the run has
#: sessions; ``simulate`` builds each with its real server's capacity, hence these entries
KIND_UPSTREAMS: dict[str, UpstreamStarter] = {
    "minicpm": _simulator,
    "realtime": _serve_in_front_of_the_simulator,
    "vllm-duplex": _app("asgi_audio_proxy.simulator.vllm_duplex.app:DuplexSimulator", "max_sessions",
                        "ws://{address}/v1/realtime"),
    "minicpm-demo": _app("asgi_audio_proxy.simulator.minicpm_demo.app:GatewaySimulator", "workers",
                         "http://{address}"),
}


def kinds_to_measure(simulated: Sequence[str] | None = None,
                     known: Sequence[str] | None = None) -> dict[str, UpstreamStarter]:
    """Every kind ``serve`` knows (``known``, by default
    :data:`~asgi_audio_proxy.upstreams.registry.KIND_NAMES`) that :data:`KIND_UPSTREAMS` has,
    in its order, then those whose simulator ``asgi-audio-proxy simulate --kind`` has
    (``simulated``, by default :func:`simulator_kinds`)."""
    from asgi_audio_proxy.upstreams.registry import KIND_NAMES

    names = KIND_NAMES if known is None else known
    kinds = {name: start for name, start in KIND_UPSTREAMS.items() if name in names}
    for name in simulator_kinds() if simulated is None else simulated:
        if name in names and name not in kinds:
            kinds[name] = _simulate(name)
    return kinds


def simulator_kinds(parser: argparse.ArgumentParser | None = None) -> tuple[str, ...]:
    """The choices of ``simulate --kind`` in ``parser`` (by default ``asgi-audio-proxy``'s own)."""
    if parser is None:
        from asgi_audio_proxy.cli import build_parser

        parser = build_parser()
    # argparse has no public way to list a subcommand's options: its action list is read
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and "simulate" in action.choices:
            for option in action.choices["simulate"]._actions:
                if "--kind" in option.option_strings and option.choices is not None:
                    return tuple(str(choice) for choice in option.choices)
    return ()


@dataclass
class KindRun:
    """One kind's run: the front ``serve``'s CPU over the window and what the sessions did."""

    kind: str
    target: str
    upstream: str
    sessions: int
    window_s: float
    front_cpu_s: float = 0.0
    cpu_ms_per_session_s: float = 0.0
    ratio_to_baseline: float | None = None
    reply_audio_s_per_turn: float = 0.0
    talk: dict[str, Any] = field(default_factory=dict)
    valid: bool = True
    invalid_reasons: list[str] = field(default_factory=list)

    def invalidate(self, reason: str) -> None:
        self.valid = False
        self.invalid_reasons.append(reason)


def measure_kind(kind: str, start_upstream: UpstreamStarter, *, sessions: int, warmup_s: float,
                 window_s: float) -> KindRun:
    """N sessions through a front ``serve`` of ``kind``; its CPU per session over the window."""
    run = KindRun(kind=kind, target=f"serve --upstream-kind {kind}", upstream="", sessions=sessions,
                  window_s=window_s)
    with start_upstream(sessions) as url, serve_command(kind, url, slots=sessions) as front:
        run.upstream = url
        figures = _talk(front.ws_url + "/audio_proxy", front.process.pid, sessions, warmup_s, window_s)
    run.front_cpu_s = round(figures.metered, 3)
    run.cpu_ms_per_session_s = round(figures.metered * 1000 / (window_s * max(figures.connected, 1)), 3)
    run.reply_audio_s_per_turn = round(figures.reply_audio_s / max(figures.turns_total, 1), 2)
    run.talk = asdict(figures)
    _judge(run, figures)
    return run


def _talk(url: str, front_pid: int, sessions: int, warmup_s: float, window_s: float) -> TalkFigures:
    """The sessions, in a process of their own (:mod:`benchmarks.talkers`), under a deadline."""
    argv = python_command("benchmarks.talkers", url, "--sessions", str(sessions), "--warmup",
                          str(warmup_s), "--window", str(window_s), "--cpu-of", str(front_pid))
    try:
        done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=None, text=True, env=child_env(),
                              timeout=warmup_s + window_s + _TALKERS_SLACK_S, check=True)
    except (subprocess.TimeoutExpired, subprocess.CalledProcessError) as exc:
        raise RuntimeError(f"the sessions' process failed: {exc}") from exc
    return TalkFigures(**json.loads(done.stdout))


def _judge(run: KindRun, figures: TalkFigures) -> None:
    if figures.connect_failures:
        run.invalidate(f"{len(figures.connect_failures)} of {figures.sessions} sessions failed to "
                       f"connect: {figures.connect_failures[0]}")
    if figures.turns_in_window == 0:
        run.invalidate(f"the {run.kind} kind completed no turn in the {run.window_s:g} s window "
                       f"({figures.turns_total} turns ended in all, {figures.unanswered_turns} "
                       "without a reply)")
    elif figures.unanswered_turns:  # a kind that answers some turns only does less work
        run.invalidate(f"{figures.unanswered_turns} of {figures.turns_total} turns got no reply "
                       f"(within {TURN_TIMEOUT_S:g} s of the utterance, or not a complete one)")
    late = figures.late_ms
    if late.get("p99", 0.0) > MAX_LATE_P99_MS or late.get("max", 0.0) > MAX_LATE_MS:
        run.invalidate(f"load generator fell behind (late p99 {late.get('p99')} ms, "
                       f"max {late.get('max')} ms)")
    if figures.errors or figures.unexpected_closes:
        run.invalidate(f"session errors {figures.errors[:3]}, closes {figures.unexpected_closes[:3]}")


def measure_kinds(*, sessions: int, warmup_s: float, window_s: float,
                  log: Callable[[str], None] = print) -> dict[str, KindRun]:
    """Every kind of :func:`kinds_to_measure`, one after the other, the baseline first."""
    runs: dict[str, KindRun] = {}
    for kind, start_upstream in kinds_to_measure().items():
        log(f"kinds: {kind} x {sessions} sessions through serve ...")
        run = runs[kind] = measure_kind(kind, start_upstream, sessions=sessions, warmup_s=warmup_s,
                                        window_s=window_s)
        log(f"  {run.cpu_ms_per_session_s} ms CPU per session-s, {run.talk['turns_in_window']} turns "
            f"in the window, valid {run.valid} {run.invalid_reasons}")
    base = runs[BASELINE_KIND].cpu_ms_per_session_s
    for run in runs.values():
        run.ratio_to_baseline = round(run.cpu_ms_per_session_s / base, 2) if base > 0 else None
    return runs


def kind_rows(runs: dict[str, KindRun]) -> list[Row]:
    """One row per kind: its front ``serve``'s CPU per session-second against the baseline kind's."""
    base = runs[BASELINE_KIND]
    rows = []
    for kind, run in runs.items():
        is_base = kind == BASELINE_KIND
        note = (f"turns in window {run.talk['turns_in_window']}, reply audio {run.reply_audio_s_per_turn} s "
                f"per turn; front serve CPU {run.front_cpu_s} s" + ("; the baseline" if is_base else ""))
        if not (run.valid and base.valid):
            note = "INVALID: " + "; ".join(run.invalid_reasons + ([] if is_base else base.invalid_reasons))
        rows.append(Row(f"upstream kind {kind} vs {BASELINE_KIND}: serve CPU per session-second, "
                        f"{run.sessions} sessions", run.cpu_ms_per_session_s, "ms CPU/s",
                        None if is_base else base.cpu_ms_per_session_s,
                        None if is_base else run.ratio_to_baseline, note=note))
    return rows


def as_json(runs: dict[str, KindRun]) -> dict[str, Any]:
    return {"baseline": BASELINE_KIND, "kinds": {kind: asdict(run) for kind, run in runs.items()}}


def format_table(runs: dict[str, KindRun]) -> str:
    lines = [f"| kind | upstream | serve CPU ms per session-s | vs {BASELINE_KIND} | turns in window "
             "| reply audio s per turn | front CPU s | note |", "|---|---|---|---|---|---|---|---|"]
    for kind, run in runs.items():
        note = "" if run.valid else "INVALID: " + "; ".join(run.invalid_reasons)
        lines.append(f"| {kind} | {run.upstream} | {run.cpu_ms_per_session_s} | {run.ratio_to_baseline} "
                     f"| {run.talk['turns_in_window']} | {run.reply_audio_s_per_turn} | {run.front_cpu_s} "
                     f"| {note} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.kinds",
                                     description="serve's CPU per session in front of each upstream kind.")
    parser.add_argument("--sessions", type=int, default=20, help="sessions at once (default 20)")
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds measured (default 20)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before the window (default 3)")
    parser.add_argument("--json", metavar="PATH", help="write the report here too")
    args = parser.parse_args(argv)
    if args.sessions < 1 or args.seconds <= 0 or args.warmup < 0:
        parser.error("--sessions must be >= 1, --seconds > 0 and --warmup >= 0")
    started = time.monotonic()
    runs = measure_kinds(sessions=args.sessions, warmup_s=args.warmup, window_s=args.seconds,
                         log=lambda line: print(line, file=sys.stderr, flush=True))
    report = {"sessions": args.sessions, "warmup_s": args.warmup, "window_s": args.seconds,
              "elapsed_s": round(time.monotonic() - started, 1), **as_json(runs),
              "figures": [row.as_dict() for row in kind_rows(runs)]}
    print(format_table(runs))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    invalid = [run for run in runs.values() if not run.valid]
    for run in invalid:
        print(f"INVALID {run.kind}: {'; '.join(run.invalid_reasons)}", file=sys.stderr)
    return 1 if invalid else 0


if __name__ == "__main__":
    sys.exit(main())
