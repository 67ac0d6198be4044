"""A stand-in for the few ``torch`` names speech-to-speech's Realtime path touches.

The server imports torch for its VAD stage only (``VAD/vad_handler.py``, ``VAD/vad_iterator.py``):
``from_numpy``, ``cat``, ``is_tensor``, ``Tensor``, ``no_grad`` and ``hub.load`` of the Silero VAD
network. Here a tensor is a 1-D float32 numpy array with ``dim``/``cpu``/``numpy``/``item``, and
``hub.load`` returns :class:`EnergyVAD`, which calls a 512-sample window speech by its level
instead of by the Silero network (downloading it from GitHub is not possible here). Anything else
is absent on purpose: a new use by the server fails loudly rather than quietly doing nothing.
"""

from __future__ import annotations

import os
import types
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

__version__ = "0.0+stand-in"

F = TypeVar("F", bound=Callable[..., Any])


class Tensor(np.ndarray):  # type: ignore[type-arg]
    """A numpy array with the torch methods the VAD calls."""

    def __new__(cls, data: Any = ()) -> Tensor:
        return np.asarray(data, dtype=np.float32).view(cls)

    def dim(self) -> int:
        return int(self.ndim)

    def cpu(self) -> Tensor:
        return self

    def numpy(self) -> np.ndarray:  # type: ignore[type-arg]
        return np.asarray(self)

    def item(self) -> float:  # type: ignore[override]
        return float(np.asarray(self).reshape(-1)[0])


def from_numpy(array: np.ndarray) -> Tensor:  # type: ignore[type-arg]
    return np.asarray(array).view(Tensor)


def is_tensor(value: object) -> bool:
    return isinstance(value, Tensor)


def cat(tensors: Sequence[Any]) -> Tensor:
    return np.concatenate([np.asarray(t) for t in tensors]).view(Tensor)


def no_grad() -> Callable[[F], F]:
    def decorate(function: F) -> F:
        return function

    return decorate


class EnergyVAD:
    """Stand-in for the Silero VAD network: speech probability from a window's RMS level.

    ``model(window, sample_rate).item()`` is 1.0 when the window's RMS is at least
    ``S2S_STUB_VAD_LEVEL`` of full scale (default 0.01, about -40 dBFS), else 0.0. espeak-ng
    speech is far above it between words and far below it in the silence after.
    """

    def __init__(self) -> None:
        self.level = float(os.environ.get("S2S_STUB_VAD_LEVEL", "0.01"))

    def reset_states(self) -> None:
        pass

    def __call__(self, window: Any, sample_rate: int) -> Tensor:
        samples = np.asarray(window, dtype=np.float64).reshape(-1)
        rms = float(np.sqrt(np.mean(samples * samples))) if samples.size else 0.0
        return Tensor([1.0 if rms >= self.level else 0.0])


def _hub_load(repo: str, model: str, *args: Any, **kwargs: Any) -> tuple[EnergyVAD, None]:
    if model != "silero_vad":
        raise NotImplementedError(f"stand-in torch.hub cannot load {repo}:{model}")
    return EnergyVAD(), None


hub = types.SimpleNamespace(load=_hub_load)
