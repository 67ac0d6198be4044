"""The serving process's collector (edge.collector): start-up objects frozen out of collections."""

from __future__ import annotations

import subprocess
import sys

from tests.timing import within

_PROBE = """
import gc
import asgi_audio_proxy.edge.middleware, asgi_audio_proxy.edge.serving  # a serving process's start-up
from asgi_audio_proxy.edge.collector import YOUNG_THRESHOLD, settle_collector

frozen = settle_collector()
assert frozen == gc.get_freeze_count() > 10_000, frozen
assert gc.get_threshold()[0] == YOUNG_THRESHOLD
cycle = []
cycle.append(cycle)  # made after the freeze: still collected
del cycle
assert gc.collect() >= 1
print(frozen)
"""


def test_start_up_objects_are_frozen_and_later_garbage_still_collected() -> None:
    # a process of its own: freezing and thresholds are the whole process's, not a test's
    done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=within(60))
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) > 10_000
