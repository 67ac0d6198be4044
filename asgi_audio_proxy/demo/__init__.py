"""The demo: the page, the proxy and the simulator on one port.
"""

from __future__ import annotations

from .server import DEMO_PAGE_DIR, DemoServer, build_demo_app, run_demo

__all__ = [
    "DEMO_PAGE_DIR",
    "DemoServer",
    "build_demo_app",
    "run_demo",
]
