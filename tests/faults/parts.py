"""Which part of the suite runs each row of the fault table, and each part's outcomes.

The default run (the README's test command) has every scenario once: its uvicorn row, and the
rows with no server choice. The same scenarios on hypercorn, their second copies, are in the
slow part (``pytest -m slow``, which CI runs after the default run; pyproject.toml's ``slow``
marker): 16 s of CPU (``python -m tests.faults --server hypercorn``) the default run, at the
edge of its three minutes on two cores, has no room for. ``python -m tests.faults`` runs every
row. A group's rows of one part run at once, once per worker (each module here goes to one
worker whole: ``tests/scheduling.py``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import pytest

from tests.faults.observe import Outcome
from tests.faults.table import Scenario, outcomes_of, scenarios

__all__ = ["check", "is_second_copy", "rows"]

#: a row's part: ``True`` for the slow one
Part = Callable[[Scenario], bool]


def is_second_copy(scenario: Scenario) -> bool:
    """The scenario on hypercorn: the second server the table runs it on."""
    return scenario.server == "hypercorn"


def rows(group: str, *, slow: Part = is_second_copy, keep: Callable[[Scenario], bool] = lambda s: True,
         ids: Callable[[Scenario], str] = lambda s: s.id) -> list[Any]:
    """The group's rows that ``keep`` keeps, as parameters, the slow part's marked ``slow``."""
    return [pytest.param(s, id=ids(s), marks=[pytest.mark.slow] if slow(s) else [])
            for s in scenarios(group) if keep(s)]


def check(scenario: Scenario, slow: Part = is_second_copy) -> None:
    """The row held; its part of its group runs at once, the first time one of its rows is checked."""
    outcome = _outcomes(scenario.group, slow, slow(scenario))[scenario.id]
    assert outcome.held, "\n".join([outcome.observed, *outcome.failures])


@functools.cache
def _outcomes(group: str, slow: Part, is_slow: bool) -> dict[str, Outcome]:
    return outcomes_of([s for s in scenarios(group) if slow(s) == is_slow])
