"""The package's shape: a small top-level API, subpackages that re-export their modules, a pure
core, no import cycles (type-only ones included) and no private names imported across modules."""

from __future__ import annotations

import ast
import importlib
import json
import pathlib
import subprocess
import sys

import pytest

import asgi_audio_proxy
from tests.timing import within

PACKAGE = pathlib.Path(asgi_audio_proxy.__file__).parent
MODULES = sorted(p for p in PACKAGE.rglob("*.py"))
#: modules that must stay free of I/O: bytes and events in, bytes and events out
PURE = ["audio/wav.py", "audio/buffer.py", "audio/resample.py", "events.py", "config.py",
        "errors.py", "dialects/base.py", "dialects/native.py", "dialects/native_client.py",
        "dialects/native_messages.py", "upstreams/minicpm/wire.py",
        "upstreams/minicpm/replies.py", "upstreams/realtime/wire.py", "upstreams/realtime/handshake.py",
        "upstreams/realtime/replies.py", "upstreams/realtime/sendqueue.py", "upstreams/realtime/settings.py",
        "pacing.py", "reply_state.py", "session/outbox.py", "session/replies.py",
        "session/stats.py", "client/audio.py", "client/turns.py", "dialects/realtime/heard.py",
        "dialects/realtime/options.py", "dialects/realtime/response.py", "upstreams/vllm_duplex/upkeep.py"]


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


def test_the_top_level_names_are_imported_when_first_used() -> None:
    """``import asgi_audio_proxy`` loads no part (but the helper that says where each name lives),
    and the simulator loads only what it uses."""
    loaded = subprocess.run(
        [sys.executable, "-c", "import json, sys, asgi_audio_proxy.simulator.app; "
         "print(json.dumps(sorted(m.split('.')[1] for m in sys.modules "
         "if m.startswith('asgi_audio_proxy.'))))"],
        capture_output=True, text=True, check=True, timeout=within(30))
    assert set(json.loads(loaded.stdout)) == {"audio", "lazy", "simulator"}


def test_the_command_line_loads_no_session_until_a_command_needs_one() -> None:
    """Every ``asgi-audio-proxy`` process (``simulate``, ``client``) reads ``serve``'s settings
    from ``edge``: its names are imported when first used, so that loads no session."""
    loaded = subprocess.run(
        [sys.executable, "-c", "import json, sys, asgi_audio_proxy.cli; "
         "print(json.dumps(sorted(m.split('.')[1] for m in sys.modules "
         "if m.startswith('asgi_audio_proxy.'))))"],
        capture_output=True, text=True, check=True, timeout=within(30))
    assert not {"session", "dialects", "pool"} & set(json.loads(loaded.stdout))


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


#: the package's parts, lowest first: a part imports only from its own files and from parts of a
#: lower layer, so a reader follows client -> dialect -> session -> upstream kind -> server down the
#: tree, and the edge (ASGI, serving, VoiceClient) sits on top of everything it wires together
LAYERS: list[set[str]] = [
    {"audio", "errors", "events", "lazy", "tasks"},
    {"pacing", "config", "reply_state"},  # config holds every setting, the VAD's too, and imports
    # no VAD package; reply_state: the one table of a reply's phases, which the parts above ask
    {"vad"},
    {"dialects", "upstreams"},  # the client's wire and connection; the servers' kinds
    {"metrics"},  # counters fed with events
    {"pool"},  # leases slots of servers to sessions; imports no concrete kind
    {"session"},  # one conversation; imports no edge
    {"webrtc"},  # a WebRTC call as a client connection and its dialect; its HTTP endpoint is the edge's
    {"edge"},
    {"simulator", "client"},
    {"demo"},
    {"cli", "__init__"},
]


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _layer(part: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if part in layer)


def backward_imports(imports: dict[str, set[str]]) -> list[str]:
    """Each ``module -> imported`` where the imported part sits in a higher layer than the module's
    own (or in the same layer but another part)."""
    found = []
    for module, targets in sorted(imports.items()):
        own = _part(module)
        for target in sorted(targets):
            other = _part(target)
            if other != own and _layer(other) >= _layer(own):
                found.append(f"{module} -> {target} ({other} is not below {own})")
    return found


def test_every_part_is_in_one_layer() -> None:
    parts = {_part(_dotted(p)) for p in MODULES}
    assert parts == set().union(*LAYERS), parts ^ set().union(*LAYERS)
    assert sum(len(layer) for layer in LAYERS) == len(set().union(*LAYERS))


def test_imports_point_down_the_layers_type_only_ones_included() -> None:
    imports = {_dotted(p): _imports(p) for p in MODULES}
    assert backward_imports(imports) == []


def test_a_backward_import_is_caught() -> None:
    assert backward_imports({"asgi_audio_proxy.session.session": {"asgi_audio_proxy.edge.connection"},
                             "asgi_audio_proxy.pool.pool": {"asgi_audio_proxy.upstreams.kind"}}) == [
        "asgi_audio_proxy.session.session -> asgi_audio_proxy.edge.connection (edge is not below session)"]


def test_no_private_names_imported_across_modules() -> None:
    for path in MODULES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith(
                    "asgi_audio_proxy")):
                private = [a.name for a in node.names if a.name.startswith("_") and a.name != "__version__"]
                assert not private, f"{path.relative_to(PACKAGE)} imports {private}"
