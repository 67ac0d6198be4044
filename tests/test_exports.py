"""The package's ``__all__`` is exactly its modules' ``__all__`` combined; the pure core stays pure."""

from __future__ import annotations

import ast
import importlib
import pathlib

import asgi_audio_proxy

PACKAGE = pathlib.Path(asgi_audio_proxy.__file__).parent
#: modules whose names are re-exported at the top level
PUBLIC = ["admission", "audio", "config", "connection", "controls", "errors", "health", "lease",
          "leases", "metrics",
          "middleware", "pool", "serving", "session", "stats", "upstream", "voice_client"]


def test_top_level_all_is_the_union_of_the_public_modules() -> None:
    names = {"__version__"}
    for module in PUBLIC:
        names |= set(importlib.import_module(f"asgi_audio_proxy.{module}").__all__)
    assert set(asgi_audio_proxy.__all__) == names
    for name in asgi_audio_proxy.__all__:
        assert hasattr(asgi_audio_proxy, name), name


def test_every_module_declares_all() -> None:
    for path in PACKAGE.glob("*.py"):
        tree = ast.parse(path.read_text())
        assigned = {t.id for node in tree.body if isinstance(node, ast.Assign)
                    for t in node.targets if isinstance(t, ast.Name)}
        assert "__all__" in assigned or path.name == "__main__.py", path.name


def test_pure_core_imports_no_io_library() -> None:
    for module in ("audio", "router", "protocol", "config", "errors", "pacing", "outbox", "stats", "controls",
                   "talk_audio", "talk_turns"):
        tree = ast.parse((PACKAGE / f"{module}.py").read_text())
        imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                    if isinstance(node, ast.Import) for alias in node.names}
        imported |= {(node.module or "").split(".")[0] for node in ast.walk(tree)
                     if isinstance(node, ast.ImportFrom) and node.level == 0}
        assert not imported & {"asyncio", "httpx", "httpx_sse", "websockets", "time", "socket"}, module
