"""A package's names imported from their modules when first asked for.

Owns: :func:`lazy_names`, the module ``__getattr__`` and ``__dir__`` (PEP 562) of a package
whose ``__init__`` lists where each of its names lives, so importing the package, or one of
its modules, loads no other part of it. Must not: import any part of the package.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["lazy_names"]


def lazy_names(package: str, homes: Mapping[str, str], exported: Iterable[str],
               namespace: dict[str, Any]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``.

    Args:
        package: the package's ``__name__``.
        homes: each name's module, relative to the package (``".edge.serving"``).
        exported: the package's ``__all__``.
        namespace: the package's ``globals()``: a name, once imported, is kept there.
    """
    names = sorted(exported)

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(home, package), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *names})

    return __getattr__, __dir__
