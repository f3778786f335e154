"""Inference backends with one interface: ``infer(float32 NCHW batch) -> float32 heatmaps (N, 16, h, w)``.

Heavy libraries (TensorRT, cuda-python, ONNX Runtime, torch) are imported inside each backend's module,
which `open_backend` imports only when it opens that backend.
"""

from stagepose.runtime.backends.base import Backend, BackendConfig
from stagepose.runtime.backends.select import Attempt, open_auto, open_backend

__all__ = ["Attempt", "Backend", "BackendConfig", "open_auto", "open_backend"]
