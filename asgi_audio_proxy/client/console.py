"""The test client's terminal: live transcript, one progress line, per-turn results.

Owns: how ``asgi-audio-proxy client`` shows a conversation: reply text as it arrives (stdout),
a progress line rewritten in place while audio streams (stderr, only on a terminal), status
lines, each turn's reply length and latency, and a summary. Must not: decide anything.
"""

from __future__ import annotations

from typing import TextIO

from .turns import TurnResult, TurnTracker

__all__ = ["Console"]

#: rewrite the progress line at most this often (seconds of audio sent)
_PROGRESS_STEP_S = 0.25


class Console:
    """Writes the conversation to a terminal or to plain streams.

    Args:
        out: the transcript and turn results (normally stdout).
        err: status and the progress line (normally stderr).
        live: rewrite a progress line in place (only sensible on a terminal).
    """

    def __init__(self, out: TextIO, err: TextIO, *, live: bool) -> None:
        self.out, self.err, self.live = out, err, live
        self._in_reply = False
        self._progress_shown = False
        self._last_progress_s = -1.0

    def _clear_progress(self) -> None:
        if self._progress_shown:
            self.err.write("\r\033[K")
            self.err.flush()
            self._progress_shown = False

    def status(self, text: str) -> None:
        """One line about the connection or the run."""
        self._clear_progress()
        if self._in_reply:
            self.out.write("\n")
            self.out.flush()
            self._in_reply = False
        self.err.write(f"* {text}\n")
        self.err.flush()

    def reply_text(self, delta: str) -> None:
        """A piece of the reply's text, shown as soon as it arrives."""
        self._clear_progress()
        if not self._in_reply:
            self.out.write("assistant: ")
            self._in_reply = True
        self.out.write(delta)
        self.out.flush()

    def progress(self, tracker: TurnTracker) -> None:
        """The progress line: audio sent, turns done, whether a reply is coming in."""
        if not self.live or tracker.sent_s - self._last_progress_s < _PROGRESS_STEP_S:
            return
        if self._in_reply:  # never overwrite a transcript line that is still growing
            return
        self._last_progress_s = tracker.sent_s
        state = "reply arriving" if tracker.in_reply else "streaming"
        self.err.write(f"\r\033[K  {state}: {tracker.sent_s:6.1f} s sent, "
                       f"{len(tracker.results)} turn(s) done")
        self.err.flush()
        self._progress_shown = True

    def turn_result(self, result: TurnResult) -> None:
        """One finished turn: reply length, latency, how it ended."""
        self._clear_progress()
        if self._in_reply:
            self.out.write("\n")
            self._in_reply = False
        latency = f"{result.latency_s * 1000:.0f} ms" if result.latency_s is not None else "n/a"
        self.out.write(f"turn {result.number}: {result.reply_audio_s:.2f} s of reply audio, "
                       f"latency {latency} ({result.reason})\n")
        self.out.flush()

    def summary(self, results: list[TurnResult], answered: bool) -> None:
        """The last line: how many turns got a reply."""
        self._clear_progress()
        replied = sum(r.got_reply for r in results)
        latencies = [r.latency_s for r in results if r.latency_s is not None]
        mean = f", mean latency {sum(latencies) / len(latencies) * 1000:.0f} ms" if latencies else ""
        verdict = "ok" if answered else "FAILED"
        self.out.write(f"{verdict}: {replied}/{len(results)} turn(s) got a reply{mean}\n")
        self.out.flush()
