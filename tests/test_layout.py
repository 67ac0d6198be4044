"""The package's shape: a small top-level API, subpackages that re-export their modules, a pure
core, no import cycles (type-only ones included) and no private names imported across modules."""

from __future__ import annotations

import ast
import importlib
import pathlib

import pytest

import asgi_audio_proxy

PACKAGE = pathlib.Path(asgi_audio_proxy.__file__).parent
MODULES = sorted(p for p in PACKAGE.rglob("*.py"))
#: modules that must stay free of I/O: bytes and events in, bytes and events out
PURE = ["audio/wav.py", "audio/buffer.py", "audio/resample.py", "events.py", "config.py",
        "errors.py", "dialects/base.py", "dialects/native.py", "upstreams/minicpm/wire.py",
        "upstreams/minicpm/replies.py", "upstreams/realtime/wire.py", "upstreams/realtime/handshake.py",
        "upstreams/realtime/replies.py", "upstreams/realtime/sendqueue.py", "upstreams/realtime/settings.py",
        "pacing.py", "session/outbox.py",
        "session/stats.py", "client/audio.py", "client/turns.py"]


def _dotted(path: pathlib.Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: pathlib.Path) -> set[str]:
    """Every module this one imports, at any depth (``TYPE_CHECKING`` blocks included)."""
    here = _dotted(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join([*base, *(node.module.split(".") if node.module else [])])
            for alias in node.names:  # ``from . import x`` may name a module
                candidate = f"{target}.{alias.name}"
                found.add(candidate if importlib.util.find_spec(candidate.split(".")[0]) and
                          _is_module(candidate) else target)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return {name for name in found if name.startswith("asgi_audio_proxy")}


def _is_module(name: str) -> bool:
    rel = pathlib.Path(*name.split(".")[1:])
    return (PACKAGE / rel).with_suffix(".py").exists() or (PACKAGE / rel / "__init__.py").exists()


def test_top_level_api_is_small_and_importable() -> None:
    assert len(asgi_audio_proxy.__all__) <= 25
    for name in asgi_audio_proxy.__all__:
        assert getattr(asgi_audio_proxy, name) is not None, name


@pytest.mark.parametrize("package", sorted({p.parent for p in MODULES if p.parent != PACKAGE}),
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_each_subpackage_exports_its_modules_all(package: pathlib.Path) -> None:
    module = importlib.import_module(_dotted(package / "__init__.py"))
    names: set[str] = set()
    for path in package.glob("*.py"):
        if path.name not in ("__init__.py", "__main__.py"):
            names |= set(importlib.import_module(_dotted(path)).__all__)
    lazy = {"RedisLeaseStore"}  # an optional extra, imported on first use
    assert set(module.__all__) - lazy <= names
    for name in module.__all__:
        assert hasattr(module, name), name


def test_every_module_declares_all() -> None:
    for path in MODULES:
        tree = ast.parse(path.read_text())
        assigned = {t.id for node in tree.body if isinstance(node, ast.Assign)
                    for t in node.targets if isinstance(t, ast.Name)}
        assert "__all__" in assigned or path.name == "__main__.py", path


def test_pure_core_imports_no_io_library() -> None:
    for module in PURE:
        tree = ast.parse((PACKAGE / module).read_text())
        imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                    if isinstance(node, ast.Import) for alias in node.names}
        imported |= {(node.module or "").split(".")[0] for node in ast.walk(tree)
                     if isinstance(node, ast.ImportFrom) and node.level == 0}
        assert not imported & {"asyncio", "httpx", "httpx_sse", "websockets", "time", "socket"}, module


def test_no_import_cycles_not_even_type_only() -> None:
    graph = {_dotted(p): {m for m in _imports(p) if _is_module(m)} for p in MODULES}
    # a package's __init__ re-exports its own modules: edges into it from inside are not cycles
    # by themselves, so only module -> module edges between different files count
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(node: str, stack: list[str]) -> bool:
        state[node] = 1
        for nxt in graph.get(node, ()):
            if nxt == node or (node.startswith(nxt + ".") and nxt in graph):
                continue  # a module reaching its own package's __init__ (its parent)
            if state.get(nxt) == 1:
                cycle.extend([*stack, node, nxt])
                return True
            if state.get(nxt) is None and visit(nxt, [*stack, node]):
                return True
        state[node] = 2
        return False

    for node in graph:
        if state.get(node) is None and visit(node, []):
            break
    assert not cycle, " -> ".join(cycle)


def test_no_private_names_imported_across_modules() -> None:
    for path in MODULES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith(
                    "asgi_audio_proxy")):
                private = [a.name for a in node.names if a.name.startswith("_") and a.name != "__version__"]
                assert not private, f"{path.relative_to(PACKAGE)} imports {private}"
