"""`open_backend`: open the backend a `BackendConfig` names, or the best one this machine can run.

``auto`` tries, in order: TensorRT (importable, cuda-python, a GPU and an engine for it), ONNX Runtime
on CUDA, PyTorch on CUDA, ONNX Runtime on the CPU (and PyTorch on the CPU when only weights are given).
Each option that is skipped is logged with the reason, so a technician can see why a show machine did
not get the fast path (e.g. "no engine for this GPU: build it with ...").
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable
from dataclasses import dataclass

from stagepose.errors import EngineError, ModelError, StageposeError
from stagepose.runtime.backends.base import Backend, BackendConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Attempt:
    """One option `auto` considered: the backend, its device, and why it was skipped (None: chosen)."""

    backend: str
    device: str
    skipped: str | None


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _cuda_device(cfg: BackendConfig) -> str:
    return cfg.device if cfg.device.startswith("cuda:") else f"cuda:{cfg.cuda_index}"


def _open_one(name: str, cfg: BackendConfig, device: str) -> Backend:
    """Import and construct one backend (its heavy library is imported here, not earlier)."""
    if name == "tensorrt":
        if device == "cpu":
            raise EngineError("the tensorrt backend runs on CUDA only; use device: cuda or another backend")
        from stagepose.runtime.backends.tensorrt_backend import TensorRTBackend

        return TensorRTBackend(cfg, _cuda_device(cfg))
    if name == "onnxruntime":
        if not _has_module("onnxruntime"):
            raise EngineError("onnxruntime is not installed (pip install onnxruntime, or onnxruntime-gpu)")
        from stagepose.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(cfg, device)
    if name == "torch":
        from stagepose.runtime.backends.torch_backend import TorchBackend

        return TorchBackend(cfg, device)
    raise EngineError(f"unknown backend {name!r}; choose auto, tensorrt, onnxruntime or torch")


def _gpu_present(cfg: BackendConfig) -> bool:
    from stagepose.runtime.engines import detect_gpu

    return detect_gpu(cfg.cuda_index) is not None


def _ort_has_cuda() -> bool:
    from stagepose.runtime.backends.onnxruntime_backend import available_providers

    return "CUDAExecutionProvider" in available_providers()


def _torch_has_cuda() -> bool:
    if not _has_module("torch"):
        return False
    import torch

    return bool(torch.cuda.is_available())


def _plan(cfg: BackendConfig) -> list[tuple[str, str, Callable[[], str | None]]]:
    """(backend, device, precondition) in `auto` order; a precondition returns a skip reason or None."""
    kind = cfg.model_kind
    cuda = _cuda_device(cfg)
    want_gpu = cfg.device != "cpu"
    want_cpu = cfg.device in ("auto", "cpu")

    def trt_ok() -> str | None:
        if not want_gpu:
            return "device is cpu"
        if kind not in ("onnx", "engine"):
            return f"needs an .onnx or .engine model, got {cfg.model.name}"
        if not _has_module("tensorrt"):
            return "TensorRT is not installed (the `gpu` extra)"
        if not (_has_module("cuda.bindings") or _has_module("cuda.cudart")):
            return "cuda-python is not installed (the `gpu` extra)"
        if not _gpu_present(cfg):
            return "no CUDA GPU found"
        return None

    def ort_cuda_ok() -> str | None:
        if not want_gpu:
            return "device is cpu"
        if kind != "onnx":
            return f"needs an .onnx model, got {cfg.model.name}"
        if not _has_module("onnxruntime") or not _ort_has_cuda():
            return "onnxruntime has no CUDAExecutionProvider here (CPU-only onnxruntime)"
        if not _gpu_present(cfg):
            return "no CUDA GPU found"
        return None

    def torch_cuda_ok() -> str | None:
        if not want_gpu:
            return "device is cpu"
        if kind == "engine":
            return "needs weights, got an engine"
        if not _torch_has_cuda():
            return "torch sees no CUDA GPU"
        return None

    def ort_cpu_ok() -> str | None:
        if not want_cpu:
            return f"device is {cfg.device}"
        if kind != "onnx":
            return f"needs an .onnx model, got {cfg.model.name}"
        return None

    def torch_cpu_ok() -> str | None:
        if not want_cpu:
            return f"device is {cfg.device}"
        if kind != "weights":
            return "only used when the model is a checkpoint"
        return None

    return [
        ("tensorrt", cuda, trt_ok),
        ("onnxruntime", cuda, ort_cuda_ok),
        ("torch", cuda, torch_cuda_ok),
        ("onnxruntime", "cpu", ort_cpu_ok),
        ("torch", "cpu", torch_cpu_ok),
    ]


def open_auto(cfg: BackendConfig) -> tuple[Backend, list[Attempt]]:
    """Open the first backend of the `auto` order that works here; also return what was tried.

    Raises:
        EngineError: nothing could be opened (the message lists every reason).
    """
    attempts: list[Attempt] = []
    for name, device, precondition in _plan(cfg):
        reason = precondition()
        if reason is None:
            try:
                backend = _open_one(name, cfg, device)
            except ModelError:
                raise  # the model itself is wrong: every backend would fail the same way
            except StageposeError as exc:
                reason = str(exc)
            else:
                attempts.append(Attempt(name, device, None))
                log.info("backend auto: using %s on %s", name, device)
                return backend, attempts
        attempts.append(Attempt(name, device, reason))
        log.info("backend auto: skipping %s on %s: %s", name, device, reason)
    tried = "; ".join(f"{a.backend}/{a.device}: {a.skipped}" for a in attempts)
    raise EngineError(f"no backend can run {cfg.model} on this machine ({tried})")


def open_backend(cfg: BackendConfig) -> Backend:
    """Open the backend ``cfg`` asks for (``auto``: the best that works here, see the module docstring).

    With an explicit backend and ``device: auto``, that backend runs on CUDA when this machine has a GPU
    it can use, else on the CPU.

    Raises:
        EngineError: the backend cannot run here (missing library, GPU or engine; the message says what
            to install or build).
        ModelError: the model file, sidecar or checkpoint is missing, stale or invalid.
    """
    if cfg.backend == "auto":
        return open_auto(cfg)[0]
    device = cfg.device
    if device == "auto":
        if cfg.backend == "tensorrt":
            device = _cuda_device(cfg)
        elif cfg.backend == "onnxruntime":
            device = _cuda_device(cfg) if _ort_has_cuda() and _gpu_present(cfg) else "cpu"
        else:
            device = _cuda_device(cfg) if _torch_has_cuda() else "cpu"
    elif device == "cuda":
        device = _cuda_device(cfg)
    return _open_one(cfg.backend, cfg, device)
