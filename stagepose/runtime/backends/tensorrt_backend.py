"""TensorRT backend: a per-GPU engine, cuda-python buffers, one stream, optional CUDA graphs.

Written against the TensorRT 10/11 Python API (name-based I/O tensors, ``execute_async_v3``) and
cuda-python's runtime bindings (every call returns ``(cudaError_t, *values)``). Buffers are allocated
once for the engine's largest batch: page-locked host memory (so copies are truly asynchronous) and
device memory. A call copies the batch in, runs the engine and copies the heatmaps out on one stream,
then synchronises that stream. With ``cuda_graph`` the three steps are captured once per batch size
(each in its own execution context, so a later shape change cannot invalidate a captured graph) and
replayed with a single launch.

TensorRT cannot be installed on the development machines (its libraries come from NVIDIA's index at
install time), so this module is exercised by the ``tensorrt``-marked tests on a GPU machine only.
"""

from __future__ import annotations

import ctypes
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stagepose.errors import EngineError, ModelError
from stagepose.runtime.backends.base import Backend, BackendConfig
from stagepose.runtime.engines import (
    EngineKey,
    Precision,
    build_command,
    detect_gpu,
    load_manifest,
    select_engine,
    tensorrt_version,
)
from stagepose.runtime.sidecar import Sidecar

log = logging.getLogger(__name__)


def import_cudart() -> Any:
    """cuda-python's runtime module (``cuda.bindings.runtime``; ``cuda.cudart`` in older releases)."""
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart  # type: ignore[no-redef]
        except ImportError:
            raise EngineError(
                "the tensorrt backend needs cuda-python (pip install 'stagepose[gpu]', see the README)"
            ) from None
    return cudart


class _Cuda:
    """Tiny checked wrapper over cuda-python's runtime calls."""

    def __init__(self) -> None:
        self.rt = import_cudart()

    def __call__(self, result: Any, what: str) -> Any:
        err, *values = result if isinstance(result, tuple) else (result,)
        if err != self.rt.cudaError_t.cudaSuccess:
            _, text = self.rt.cudaGetErrorString(err)
            message = text.decode() if isinstance(text, bytes) else str(text)
            raise EngineError(f"CUDA error in {what}: {message} ({err})")
        if not values:
            return None
        return values[0] if len(values) == 1 else tuple(values)


@dataclass
class _GraphEntry:
    context: Any
    graph: Any
    graph_exec: Any


def resolve_engine(cfg: BackendConfig) -> tuple[Path, Sidecar]:
    """The engine file for ``cfg`` on this machine and the sidecar of the ONNX it was built from.

    For an ``.onnx`` model the engine is selected by key (and built first when ``build_if_missing``);
    for an ``.engine`` file its key must fit this GPU and TensorRT version.

    Raises:
        EngineError: no GPU, no TensorRT, no fitting engine (with the command that builds one).
    """
    gpu = detect_gpu(cfg.cuda_index)
    trt_version = tensorrt_version()
    precision: Precision = "fp16" if cfg.fp16 else "fp32"
    engines_dir = cfg.resolved_engines_dir()
    if cfg.model_kind == "onnx":
        sidecar = Sidecar.read(cfg.model.with_suffix(".json"), model_path=cfg.model)
        try:
            path = select_engine(cfg.model, engines_dir, gpu, trt_version, precision, sidecar.input_size.hw)
        except EngineError:
            if not (cfg.build_if_missing and gpu is not None and trt_version is not None):
                raise
            from stagepose.runtime.trt_build import build_engine

            log.warning("tensorrt: no engine for %s on %s; building one now (build_if_missing)",
                        cfg.model, gpu.describe())  # fmt: skip
            record = build_engine(cfg.model, engines_dir, fp16=cfg.fp16, max_batch=cfg.max_batch, gpu=gpu)
            path = engines_dir / record.file
        return path, sidecar
    if cfg.model_kind != "engine":
        raise EngineError(f"{cfg.model}: the tensorrt backend runs an exported .onnx (engine chosen per GPU) "
                          "or a built .engine")  # fmt: skip
    key = EngineKey.parse(cfg.model.name)
    if key is None:
        raise EngineError(f"{cfg.model}: not a stagepose engine name; build engines with `stagepose engine build`")
    if not key.fits_machine(gpu, trt_version):
        here = f"{gpu.describe() if gpu else 'no GPU'}, TensorRT {trt_version or 'not installed'}"
        raise EngineError(f"{cfg.model}: built for {key.describe()}, but this machine has {here}; "
                          "rebuild it here with `stagepose engine build --onnx ...`")  # fmt: skip
    listed = load_manifest(cfg.model.parent).find(cfg.model.name)
    if listed is None:
        raise EngineError(f"{cfg.model}: not listed in {cfg.model.parent / 'manifest.json'}, so its ONNX and "
                          "sidecar are unknown; pass the .onnx as the model instead")  # fmt: skip
    onnx_path = cfg.model.parent / listed.onnx
    return cfg.model, Sidecar.read(onnx_path.with_suffix(".json"), model_path=onnx_path)


class TensorRTBackend(Backend):
    """Runs a serialized TensorRT engine on one CUDA device."""

    name = "tensorrt"

    def __init__(self, cfg: BackendConfig, device: str) -> None:
        engine_path, sidecar = resolve_engine(cfg)  # raises first when there is no GPU, TensorRT or engine
        import tensorrt as trt

        self._cuda = _Cuda()
        rt = self._cuda.rt
        self._cuda(rt.cudaSetDevice(cfg.cuda_index), "cudaSetDevice")
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        engine = self._runtime.deserialize_cuda_engine(engine_path.read_bytes())
        if engine is None:
            onnx = cfg.model if cfg.model_kind == "onnx" else Path("engines/NAME.onnx")
            raise EngineError(
                f"{engine_path}: TensorRT {trt.__version__} cannot deserialise this engine (corrupt, or built "
                "by another TensorRT or GPU); delete it and rebuild with: "
                f"{build_command(onnx, engine_path.parent, 'fp16' if cfg.fp16 else 'fp32')}"
            )
        self._engine = engine
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if inputs != [sidecar.input_name] or outputs != [sidecar.output_name]:
            raise ModelError(f"{engine_path}: I/O tensors {inputs} -> {outputs} do not match the sidecar "
                             f"({sidecar.input_name} -> {sidecar.output_name})")  # fmt: skip
        for name in names:
            if engine.get_tensor_dtype(name) != trt.DataType.FLOAT:
                raise ModelError(f"{engine_path}: tensor {name!r} is {engine.get_tensor_dtype(name)}, expected "
                                 "float32 I/O (export keeps float32 inputs and outputs)")  # fmt: skip
        self._in, self._out = inputs[0], outputs[0]
        _, _, max_shape = engine.get_tensor_profile_shape(self._in, 0)
        max_batch = int(max_shape[0])
        key = EngineKey.parse(engine_path.name)
        super().__init__(
            device=f"cuda:{cfg.cuda_index}", input_size=sidecar.input_size, num_joints=sidecar.num_joints,
            max_batch=max_batch, precision=key.precision if key else ("fp16" if cfg.fp16 else "fp32"),
            sidecar=sidecar,
        )  # fmt: skip
        self.engine_path = engine_path
        h, w = self.input_size.hw
        hh, hw = self.heatmap_size.hw
        self._in_item = 3 * h * w
        self._out_item = self.num_joints * hh * hw
        in_bytes = max_batch * self._in_item * 4
        out_bytes = max_batch * self._out_item * 4
        self._stream = self._cuda(rt.cudaStreamCreate(), "cudaStreamCreate")
        self._d_in = self._cuda(rt.cudaMalloc(in_bytes), "cudaMalloc")
        self._d_out = self._cuda(rt.cudaMalloc(out_bytes), "cudaMalloc")
        self._h_in_ptr = self._cuda(rt.cudaMallocHost(in_bytes), "cudaMallocHost")
        self._h_out_ptr = self._cuda(rt.cudaMallocHost(out_bytes), "cudaMallocHost")
        self._h_in = _host_array(self._h_in_ptr, max_batch * self._in_item)
        self._h_out = _host_array(self._h_out_ptr, max_batch * self._out_item)
        self._context = self._new_context()
        self._context_batch = 0
        self._use_graphs = cfg.cuda_graph
        self._graphs: dict[int, _GraphEntry] = {}

    def _new_context(self) -> Any:
        context = self._engine.create_execution_context()
        if context is None:
            raise EngineError(f"{self.engine_path}: TensorRT could not create an execution context (GPU memory?)")
        context.set_tensor_address(self._in, int(self._d_in))
        context.set_tensor_address(self._out, int(self._d_out))
        return context

    def _enqueue(self, context: Any, n: int) -> None:
        """Queue copy-in, inference and copy-out of ``n`` items on the stream (no synchronisation)."""
        rt = self._cuda.rt
        self._cuda(rt.cudaMemcpyAsync(self._d_in, self._h_in_ptr, n * self._in_item * 4,
                                      rt.cudaMemcpyKind.cudaMemcpyHostToDevice, self._stream), "copy in")  # fmt: skip
        if not context.execute_async_v3(int(self._stream)):
            raise EngineError(f"{self.engine_path}: TensorRT execute_async_v3 failed for batch {n}")
        self._cuda(rt.cudaMemcpyAsync(self._h_out_ptr, self._d_out, n * self._out_item * 4,
                                      rt.cudaMemcpyKind.cudaMemcpyDeviceToHost, self._stream), "copy out")  # fmt: skip

    def _set_batch(self, context: Any, n: int) -> None:
        h, w = self.input_size.hw
        if not context.set_input_shape(self._in, (n, 3, h, w)):
            raise EngineError(f"{self.engine_path}: batch {n} is outside the engine's profile (max {self.max_batch})")

    def _graph_for(self, n: int) -> _GraphEntry:
        entry = self._graphs.get(n)
        if entry is not None:
            return entry
        rt = self._cuda.rt
        context = self._new_context()
        self._set_batch(context, n)
        self._enqueue(context, n)  # one plain run after a shape change, before capture (TensorRT's rule)
        self._cuda(rt.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")
        mode = rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        self._cuda(rt.cudaStreamBeginCapture(self._stream, mode), "cudaStreamBeginCapture")
        try:
            self._enqueue(context, n)
        finally:
            graph = self._cuda(rt.cudaStreamEndCapture(self._stream), "cudaStreamEndCapture")
        graph_exec = self._cuda(rt.cudaGraphInstantiate(graph, 0), "cudaGraphInstantiate")
        entry = _GraphEntry(context, graph, graph_exec)
        self._graphs[n] = entry
        log.debug("tensorrt: captured a CUDA graph for batch %d", n)
        return entry

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        rt = self._cuda.rt
        n = batch.shape[0]
        self._h_in[: n * self._in_item] = batch.reshape(-1)
        if self._use_graphs:
            entry = self._graph_for(n)
            self._cuda(rt.cudaGraphLaunch(entry.graph_exec, self._stream), "cudaGraphLaunch")
        else:
            if n != self._context_batch:
                self._set_batch(self._context, n)
                self._context_batch = n
            self._enqueue(self._context, n)
        self._cuda(rt.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")
        hh, hw = self.heatmap_size.hw
        return self._h_out[: n * self._out_item].reshape(n, self.num_joints, hh, hw).copy()

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "engine": self.engine_path.name, "cuda_graph": self._use_graphs}

    def _release(self) -> None:
        rt = self._cuda.rt
        rt.cudaStreamSynchronize(self._stream)
        for entry in self._graphs.values():
            rt.cudaGraphExecDestroy(entry.graph_exec)
            rt.cudaGraphDestroy(entry.graph)
        self._graphs.clear()
        self._context = None
        rt.cudaFree(self._d_in)
        rt.cudaFree(self._d_out)
        rt.cudaFreeHost(self._h_in_ptr)
        rt.cudaFreeHost(self._h_out_ptr)
        rt.cudaStreamDestroy(self._stream)
        self._engine = None


def _host_array(ptr: Any, count: int) -> np.ndarray:
    """A float32 numpy view of ``count`` items of page-locked host memory at ``ptr``."""
    return np.ctypeslib.as_array((ctypes.c_float * count).from_address(int(ptr)))
