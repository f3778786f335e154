"""Deployment of the student: ONNX export with a sidecar, TensorRT engines per GPU, and backends.

Importing this package is cheap: torch, ONNX Runtime, TensorRT and cuda-python are imported only inside
the functions and backends that use them (`export_onnx` lives in ``stagepose.runtime.export`` and
imports torch).
"""

from stagepose.runtime.backends import Attempt, Backend, BackendConfig, open_auto, open_backend
from stagepose.runtime.engines import (
    EngineKey,
    EngineRecord,
    GpuInfo,
    Manifest,
    detect_gpu,
    list_engines,
    load_manifest,
    select_engine,
    tensorrt_version,
)
from stagepose.runtime.sidecar import Sidecar, sidecar_path

__all__ = [
    "Attempt",
    "Backend",
    "BackendConfig",
    "EngineKey",
    "EngineRecord",
    "GpuInfo",
    "Manifest",
    "Sidecar",
    "detect_gpu",
    "list_engines",
    "load_manifest",
    "open_auto",
    "open_backend",
    "select_engine",
    "sidecar_path",
    "tensorrt_version",
]
