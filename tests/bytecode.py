"""A plugin (``-p tests.bytecode`` in the pytest settings) that lets the suite's Python processes
share compiled bytecode even where ``PYTHONDONTWRITEBYTECODE`` is set.

The suite starts hundreds of Python processes: its workers, and the ``serve``, ``simulate`` and
client commands the tests run. With no bytecode written, each one compiles the package and the
tests from source again: 5 s of CPU per worker's collection alone, on two cores a third of the
suite's budget. So when the variable asks for no bytecode beside the sources, the bytecode goes
to a directory of its own under the system's temporary directory (``PYTHONPYCACHEPREFIX``) and
the source tree stays as clean as the variable wants it.

Python then reads bytecode from that directory only, not the ``__pycache__`` that pip wrote
beside each installed package. On a fresh machine (a CI run, a first run) every worker would
compile the same packages at the same time: 10 s of CPU each, before its first test. So the
run's first process, before any worker starts, links pip's bytecode into the directory (once
for each set of installed packages) and compiles this repository's, once.
"""

from __future__ import annotations

import compileall
import hashlib
import os
import sys
import sysconfig
import tempfile
from pathlib import Path

#: this repository's Python, compiled before the workers start
_SOURCES = ("asgi_audio_proxy", "benchmarks", "demo_app", "tests")


def _seed(prefix: str) -> None:
    """Installed packages' bytecode where Python looks for it under ``prefix`` (a stamp per set
    of installed packages makes it once), then this repository's compiled there."""
    for site in sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}):
        if not os.path.isdir(site):
            continue
        installed = sorted(name for name in os.listdir(site) if name.endswith(".dist-info"))
        stamp = Path(prefix + site) / f".linked-{hashlib.sha256(repr(installed).encode()).hexdigest()[:16]}"
        if not stamp.exists():
            _link_bytecode(site, prefix)
            stamp.parent.mkdir(parents=True, exist_ok=True)
            stamp.touch()
    repository = Path(__file__).resolve().parents[1]
    for name in _SOURCES:
        compileall.compile_dir(repository / name, quiet=2)


def _link_bytecode(site: str, prefix: str) -> None:
    """Link (or, across file systems, point to) each ``__pycache__`` file of this Python under
    ``site`` at its place under ``prefix``; one already there is kept."""
    tag = f".{sys.implementation.cache_tag}.pyc"  # not another Python's, nor an optimised one
    for cache in Path(site).rglob("__pycache__"):
        target = Path(prefix + str(cache.parent))
        for pyc in cache.glob(f"*{tag}"):
            linked = target / pyc.name
            if linked.exists():
                continue
            target.mkdir(parents=True, exist_ok=True)
            try:
                linked.hardlink_to(pyc)
            except OSError:
                linked.symlink_to(pyc)


if os.environ.pop("PYTHONDONTWRITEBYTECODE", None) is not None:
    prefix = os.path.join(tempfile.gettempdir(), "asgi-audio-proxy-pycache")
    os.environ.setdefault("PYTHONPYCACHEPREFIX", prefix)
    sys.pycache_prefix = os.environ["PYTHONPYCACHEPREFIX"]
    sys.dont_write_bytecode = False
    if "PYTEST_XDIST_WORKER" not in os.environ:  # the run's first process: no worker yet
        _seed(sys.pycache_prefix)
