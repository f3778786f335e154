"""The one interface every inference backend offers, and the configuration that opens one.

``infer(batch)`` takes normalised float32 NCHW crops and returns float32 heatmaps (N, 16, h, w) of the
last stack, as host numpy arrays, whatever runs underneath (TensorRT, ONNX Runtime, PyTorch). The live
loop therefore never needs to know which backend it has. Each backend imports its heavy
library inside its own module, which `open_backend` imports only when that backend is chosen.
"""

from __future__ import annotations

import abc
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import numpy as np

from stagepose.codec import DEFAULT_SIGMA, HeatmapCodec, Refine
from stagepose.errors import EngineError, ModelError
from stagepose.runtime.sidecar import Sidecar
from stagepose.sizes import ImageSize
from stagepose.transforms import InputFormat

log = logging.getLogger(__name__)

BackendName = Literal["auto", "tensorrt", "onnxruntime", "torch"]


MAX_THREADS = 256
_DEVICE = re.compile(r"^(auto|cpu|cuda|cuda:\d{1,3})$")


@dataclass(frozen=True, kw_only=True)
class InferenceSettings:
    """How the model runs: the one definition (and defaults) behind `BackendConfig` and the show's
    ``model`` section (`stagepose.show.config.ModelConfig`), so a show and a benchmark mean the same.

    Attributes:
        backend: "auto" (TensorRT > ONNX Runtime CUDA > PyTorch CUDA > ONNX Runtime CPU), or one by name.
        device: "auto", "cpu", "cuda" or "cuda:N".
        fp16: run in half precision on the GPU (TensorRT fp16 engine, FP16 ONNX on ORT CUDA, torch
            ``.half()``). Off by default: it moves joints slightly and is refused (with a warning) on
            the CPU, so a GPU show opts in with ``fp16: true``.
        cuda_graph: replay CUDA graphs per batch size (TensorRT and torch on CUDA).
        threads: CPU threads for ONNX Runtime intra-op / torch, 1..256 (None: number of usable cores,
            at most 8).
        spin_wait: let ONNX Runtime's CPU worker threads busy-wait for work between operators. A little
            faster for the model alone, but in a show they keep the cores busy while the cameras'
            decoding threads need them, which makes every frame later (see the README's latency
            table); off by default.
    """

    backend: BackendName = "auto"
    device: str = "auto"
    fp16: bool = False
    cuda_graph: bool = False
    threads: int | None = None
    spin_wait: bool = False

    def __post_init__(self) -> None:
        if self.backend not in ("auto", "tensorrt", "onnxruntime", "torch"):
            raise ValueError(f"backend must be auto, tensorrt, onnxruntime or torch, got {self.backend!r}")
        if not _DEVICE.match(self.device):
            raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N' (N = GPU index), got {self.device!r}")
        if self.threads is not None and not 1 <= self.threads <= MAX_THREADS:
            raise ValueError(f"threads must be 1..{MAX_THREADS} (or null for all usable cores), got {self.threads}")


@dataclass(frozen=True)
class BackendConfig(InferenceSettings):
    """How to run the model: `InferenceSettings` (keyword-only) plus the files and batch size.

    Attributes:
        model: the model file: ``NAME.onnx`` (sidecar ``NAME.json`` next to it; TensorRT engines are
            looked up for it in ``engines_dir``), a built ``.engine``, or ``.safetensors`` / ``.pt``
            weights (torch only; ``NAME.safetensors`` next to ``NAME.onnx`` is also found by torch).
        engines_dir: where TensorRT engines live (None: the ONNX's folder).
        build_if_missing: build the TensorRT engine at start-up when none fits this machine (minutes).
        max_batch: largest batch a TensorRT engine built at start-up accepts (the show's camera count).
        input_size: (width, height) for weights without a sidecar (torch); None: from the sidecar, else 256x256.
    """

    model: Path
    engines_dir: Path | None = None
    build_if_missing: bool = False
    max_batch: int = 8
    input_size: ImageSize | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "model", Path(self.model))
        if self.input_size is not None:
            object.__setattr__(self, "input_size", ImageSize.of(self.input_size))
        if self.engines_dir is not None:
            object.__setattr__(self, "engines_dir", Path(self.engines_dir))
        if self.max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {self.max_batch}")

    @property
    def model_kind(self) -> Literal["onnx", "engine", "weights", "unknown"]:
        suffix = self.model.suffix.lower()
        if suffix == ".onnx":
            return "onnx"
        if suffix == ".engine":
            return "engine"
        if suffix in (".safetensors", ".pt"):
            return "weights"
        return "unknown"

    @property
    def cuda_index(self) -> int:
        """CUDA device index named by ``device`` (0 for "cuda" and "auto")."""
        return int(self.device[5:]) if self.device.startswith("cuda:") else 0

    def resolved_engines_dir(self) -> Path:
        return self.engines_dir if self.engines_dir is not None else self.model.parent


def default_threads() -> int:
    """Usable CPU cores, capped at 8 (beyond that the small convolutions stop scaling)."""
    import os

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 8))


class Backend(abc.ABC):
    """A loaded model that turns normalised crops into heatmaps.

    Attributes:
        name: "tensorrt", "onnxruntime" or "torch".
        device: where it runs ("cpu", "cuda:0").
        input_size: model input (width, height).
        heatmap_size: output heatmap (width, height).
        num_joints: output channels (16).
        max_batch: largest batch accepted (None: any).
        precision: "fp32" or "fp16".
        sidecar: the exported model's sidecar, when there is one.
        heatmap_sigma: the training targets' sigma, which the heatmap decoder must use: the sidecar's,
            else the one the weights record (``codec.DEFAULT_SIGMA`` for files that record none).
    """

    name: str = "backend"

    def __init__(
        self,
        *,
        device: str,
        input_size: ImageSize,
        num_joints: int = 16,
        max_batch: int | None = None,
        precision: str = "fp32",
        sidecar: Sidecar | None = None,
        heatmap_sigma: float = DEFAULT_SIGMA,
    ) -> None:
        self.device = device
        self.input_size = ImageSize.of(input_size)
        self.heatmap_size = sidecar.heatmap_size if sidecar is not None else self.input_size.heatmap()
        self.num_joints = num_joints
        self.max_batch = max_batch
        self.precision = precision
        self.sidecar = sidecar
        self.heatmap_sigma = float(sidecar.heatmap_sigma if sidecar is not None else heatmap_sigma)
        self._closed = False

    # -- the interface -----------------------------------------------------------------------

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Heatmaps of the last stack for a batch of crops.

        Args:
            batch: (N, 3, H, W) float32, normalised as the sidecar says (``to_model_input``).

        Returns:
            (N, num_joints, *heatmap_size.hw) float32 heatmaps in host memory, owned by the caller.

        Raises:
            ModelError: wrong dtype, rank, size or batch (the message gives expected and actual).
            EngineError: the backend was closed.
        """
        if self._closed:
            raise EngineError(f"{self.name} backend is closed")
        batch = self._check(batch)
        out = self._infer(batch)
        return out

    def warmup(self, batch_sizes: tuple[int, ...] = (1,), runs: int = 3) -> float:
        """Run zero batches of each size ``runs`` times (lazy allocations, kernel choice, CUDA graph
        capture happen here, not on the first show frame). Returns the seconds it took."""
        start = time.perf_counter()
        for n in batch_sizes:
            zeros = np.zeros((n, 3, *self.input_size.hw), dtype=np.float32)
            for _ in range(max(1, runs)):
                self.infer(zeros)
        self.synchronize()
        return time.perf_counter() - start

    @property
    def input_format(self) -> InputFormat:
        """How to turn BGR crops into this model's input (the sidecar's colour order and normalisation)."""
        return self.sidecar.input_format if self.sidecar is not None else InputFormat(self.input_size)

    def codec(self, refine: Refine = "dark") -> HeatmapCodec:
        """The heatmap decoder for this model, with the sigma it was trained with."""
        return HeatmapCodec(self.input_size, self.heatmap_size, sigma=self.heatmap_sigma, refine=refine)

    def synchronize(self) -> None:
        """Wait for queued device work (no-op where `infer` already returns finished host arrays)."""
        return None

    def close(self) -> None:
        """Release the model and device memory; further `infer` calls raise EngineError."""
        if not self._closed:
            self._closed = True
            self._release()

    def describe(self) -> dict[str, Any]:
        """Plain data about the backend (for logs, status and benchmarks)."""
        return {
            "backend": self.name,
            "device": self.device,
            "precision": self.precision,
            "input_size": list(self.input_size),
            "heatmap_sigma": self.heatmap_sigma,
            "max_batch": self.max_batch,
            "preset": self.sidecar.preset if self.sidecar else None,
        }

    def __enter__(self) -> Backend:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.device} {self.precision} {self.input_size.text()}>"

    # -- for subclasses ----------------------------------------------------------------------

    @abc.abstractmethod
    def _infer(self, batch: np.ndarray) -> np.ndarray:
        """Run a checked, C-contiguous float32 batch; return (N, K, h, w) float32 on the host."""

    def _release(self) -> None:
        """Free resources (called once by `close`)."""
        return None

    def _check(self, batch: np.ndarray) -> np.ndarray:
        if not isinstance(batch, np.ndarray):
            raise ModelError(f"{self.name}: batch must be a numpy array, got {type(batch).__name__}")
        h, w = self.input_size.hw
        if batch.ndim != 4 or batch.shape[1:] != (3, h, w) or batch.shape[0] < 1:
            raise ModelError(
                f"{self.name}: model expects a batch of shape (N, 3, {h}, {w}), got {tuple(batch.shape)}; "
                "crop to the model's input size (see its sidecar)"
            )
        if batch.dtype != np.float32:
            raise ModelError(f"{self.name}: batch must be float32 (normalised crops), got {batch.dtype}")
        if self.max_batch is not None and batch.shape[0] > self.max_batch:
            raise ModelError(
                f"{self.name}: batch of {batch.shape[0]} exceeds this model's maximum of {self.max_batch}; "
                "rebuild the engine with a larger --max-batch"
            )
        return np.ascontiguousarray(batch)


def weights_beside(onnx_path: Path, sidecar: Sidecar | None) -> Path | None:
    """The checkpoint an ONNX was exported from, when it sits next to it (for the torch backend)."""
    names = [sidecar.checkpoint] if sidecar and sidecar.checkpoint else []
    names += [onnx_path.with_suffix(".safetensors").name]
    for name in names:
        candidate = onnx_path.parent / name
        if candidate.is_file():
            return candidate
    return None


def warn_fp16_on_cpu(name: str) -> None:
    log.warning("%s: fp16 applies to CUDA only; running float32 on the CPU", name)
