"""ONNX Runtime backend: CPU everywhere; CUDA and TensorRT execution providers where installed.

ONNX Runtime silently falls back to the CPU when a requested GPU provider fails to load (missing CUDA
or cuDNN libraries). A show that believes it runs on the GPU but runs on the CPU misses its frame
budget, so the session's actual providers are checked and a fallback is an error.
"""

from __future__ import annotations

import logging

import numpy as np

from stagepose.errors import EngineError, ModelError
from stagepose.runtime.backends.base import Backend, BackendConfig, default_threads, warn_fp16_on_cpu
from stagepose.runtime.sidecar import Sidecar

log = logging.getLogger(__name__)


def available_providers() -> list[str]:
    """ONNX Runtime's execution providers in this install ([] when onnxruntime is missing)."""
    try:
        import onnxruntime as ort
    except ImportError:
        return []
    return list(ort.get_available_providers())


class OnnxRuntimeBackend(Backend):
    """Runs ``NAME.onnx`` with ONNX Runtime; reads the sidecar ``NAME.json`` (hash-checked)."""

    name = "onnxruntime"

    def __init__(self, cfg: BackendConfig, device: str) -> None:
        import onnxruntime as ort

        onnx_path = cfg.model
        if cfg.model_kind != "onnx":
            raise EngineError(
                f"{onnx_path}: the onnxruntime backend runs .onnx models (exported by `stagepose export`)"
            )
        sidecar = Sidecar.read(onnx_path.with_suffix(".json"), model_path=onnx_path)
        on_gpu = device.startswith("cuda")
        fp16 = cfg.fp16 and on_gpu
        if cfg.fp16 and not on_gpu:
            warn_fp16_on_cpu(self.name)
        super().__init__(
            device=device, input_size=sidecar.input_size, num_joints=sidecar.num_joints,
            precision="fp16" if fp16 else "fp32", sidecar=sidecar,
        )  # fmt: skip

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.intra_op_num_threads = cfg.threads or default_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: provider chatter would flood the show log
        # idle workers sleep instead of spinning: the cores go to the decoding threads (InferenceSettings)
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if cfg.spin_wait else "0")
        self.threads = options.intra_op_num_threads

        providers = self._providers(cfg, device, fp16)
        model: str | bytes = str(onnx_path)
        if fp16 and providers[0][0] == "CUDAExecutionProvider":
            from stagepose.runtime.fp16 import fp16_model_bytes

            model = fp16_model_bytes(onnx_path)  # FP16 weights and compute, float32 I/O
        try:
            self._session = ort.InferenceSession(model, sess_options=options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise ModelError(f"{onnx_path}: ONNX Runtime cannot load the model: {str(exc)[:400]}") from None
        active = self._session.get_providers()
        required = "CUDAExecutionProvider" if on_gpu else "CPUExecutionProvider"
        if required not in active:
            raise EngineError(
                f"ONNX Runtime did not start {required} (active: {', '.join(active)}); check the CUDA/cuDNN "
                "libraries of onnxruntime-gpu, or run with device: cpu"
            )
        if on_gpu and providers[0][0] not in active:
            log.warning("onnxruntime: %s did not start (TensorRT libraries missing?); using %s",
                        providers[0][0], active[0])  # fmt: skip
        self.provider = active[0]
        self._input = sidecar.input_name
        self._output = sidecar.output_name
        names = [i.name for i in self._session.get_inputs()], [o.name for o in self._session.get_outputs()]
        if names != ([self._input], [self._output]):
            raise ModelError(f"{onnx_path}: inputs/outputs {names} do not match its sidecar "
                             f"({self._input!r} -> {self._output!r})")  # fmt: skip
        sidecar.check_shapes(self._session.get_inputs()[0].shape, self._session.get_outputs()[0].shape, onnx_path)

    @staticmethod
    def _providers(cfg: BackendConfig, device: str, fp16: bool) -> list[tuple[str, dict[str, str]]]:
        available = available_providers()
        if not device.startswith("cuda"):
            return [("CPUExecutionProvider", {})]
        index = str(cfg.cuda_index)
        out: list[tuple[str, dict[str, str]]] = []
        if "TensorrtExecutionProvider" in available:
            cache = str(cfg.resolved_engines_dir() / "ort-trt-cache")
            out.append(("TensorrtExecutionProvider", {
                "device_id": index, "trt_fp16_enable": str(fp16), "trt_engine_cache_enable": "True",
                "trt_engine_cache_path": cache, "trt_timing_cache_enable": "True",
            }))  # fmt: skip
        if "CUDAExecutionProvider" not in available:
            raise EngineError(
                "ONNX Runtime has no CUDAExecutionProvider in this install (CPU-only onnxruntime); install "
                "onnxruntime-gpu, or run with device: cpu"
            )
        out.append(("CUDAExecutionProvider", {"device_id": index}))
        out.append(("CPUExecutionProvider", {}))
        return out

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        (heatmaps,) = self._session.run([self._output], {self._input: batch})
        return np.asarray(heatmaps, dtype=np.float32)

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "provider": self.provider, "threads": self.threads}

    def _release(self) -> None:
        self._session = None  # type: ignore[assignment]

