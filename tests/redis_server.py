"""A throwaway ``redis-server`` on a free loopback port, for the tests that need a real Redis.

``with redis_server() as url``: starts ``redis-server`` (no persistence, loopback only), returns
once it logs that it is ready (under a deadline), and stops it on exit. Tests skip with the
reason :data:`SKIP_REASON` where the binary is missing.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator

from tests.servers import free_port
from tests.timing import within

__all__ = ["HAVE_REDIS", "SKIP_REASON", "redis_server"]

REDIS_SERVER = shutil.which("redis-server")
HAVE_REDIS = REDIS_SERVER is not None
SKIP_REASON = "redis-server is not installed (Debian: apt-get install redis-server)"


_drains: dict[int, list[threading.Thread]] = {}


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """Run a private redis-server; yields its ``redis://127.0.0.1:<port>/0`` URL."""
    assert REDIS_SERVER is not None, SKIP_REASON
    for _attempt in range(5):  # another process may take the free port before redis binds it
        port = free_port()
        process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
             "no", "--protected-mode", "yes", "--loglevel", "notice"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            if _wait_ready(process):
                yield f"redis://127.0.0.1:{port}/0"
                return
        finally:
            process.terminate()
            process.wait(within(10))
            for thread in _drains.pop(process.pid, ()):
                thread.join(within(5))
            assert process.stdout is not None
            process.stdout.close()
    raise RuntimeError("redis-server did not start on any of five free ports")


def _wait_ready(process: subprocess.Popen[str]) -> bool:
    """Read the server's log until it is ready (True) or it exits (False), under a deadline."""
    assert process.stdout is not None
    deadline = time.monotonic() + within(10)
    for line in process.stdout:  # ends when the process exits
        if "Ready to accept connections" in line:
            # keep draining its log, so a full pipe never stalls the server
            drain = threading.Thread(target=process.stdout.read, daemon=True)
            drain.start()
            _drains[process.pid] = [drain]
            return True
        if time.monotonic() > deadline:
            raise TimeoutError("redis-server did not get ready in time")
    return False
