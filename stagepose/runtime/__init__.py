"""Deployment of the student: ONNX export with a sidecar, TensorRT engines per GPU, and backends.

Importing this package is cheap: names are imported lazily (``stagepose --help`` imports
``stagepose.runtime.cli`` and nothing else), and torch, ONNX Runtime, TensorRT and cuda-python are
imported only inside the functions and backends that use them (`export_onnx` lives in
``stagepose.runtime.export`` and imports torch).
"""

from __future__ import annotations

from stagepose.lazy import lazy_getattr

_EXPORTS = {
    "Attempt": "stagepose.runtime.backends",
    "Backend": "stagepose.runtime.backends",
    "BackendConfig": "stagepose.runtime.backends",
    "open_auto": "stagepose.runtime.backends",
    "open_backend": "stagepose.runtime.backends",
    "EngineKey": "stagepose.runtime.engines",
    "EngineRecord": "stagepose.runtime.engines",
    "GpuInfo": "stagepose.runtime.engines",
    "Manifest": "stagepose.runtime.engines",
    "detect_gpu": "stagepose.runtime.engines",
    "list_engines": "stagepose.runtime.engines",
    "load_manifest": "stagepose.runtime.engines",
    "select_engine": "stagepose.runtime.engines",
    "tensorrt_version": "stagepose.runtime.engines",
    "Sidecar": "stagepose.runtime.sidecar",
    "sidecar_path": "stagepose.runtime.sidecar",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_getattr(__name__, _EXPORTS)
