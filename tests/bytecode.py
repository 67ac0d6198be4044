"""A plugin (``-p tests.bytecode`` in the pytest settings) that lets the suite's Python processes
share compiled bytecode even where ``PYTHONDONTWRITEBYTECODE`` is set.

The suite starts hundreds of Python processes: its workers, and the ``serve``, ``simulate`` and
client commands the tests run. With no bytecode written, each one compiles the package and the
tests from source again: 5 s of CPU per worker's collection alone, on two cores a third of the
suite's budget. So when the variable asks for no bytecode beside the sources, the bytecode goes
to a directory of its own under the system's temporary directory (``PYTHONPYCACHEPREFIX``) and
the source tree stays as clean as the variable wants it.
"""

from __future__ import annotations

import os
import sys
import tempfile

if os.environ.pop("PYTHONDONTWRITEBYTECODE", None) is not None:
    prefix = os.path.join(tempfile.gettempdir(), "asgi-audio-proxy-pycache")
    os.environ.setdefault("PYTHONPYCACHEPREFIX", prefix)
    sys.pycache_prefix = os.environ["PYTHONPYCACHEPREFIX"]
    sys.dont_write_bytecode = False
