"""PyTorch backend: the reference on the CPU, and a fallback on CUDA with FP16 and CUDA-graph replay.

It loads the safetensors (or training) checkpoint, not the ONNX, so it also serves machines where only
the weights are shipped. On CUDA, ``fp16`` converts the whole network with ``.half()`` (batch norm in
eval mode is an affine map, safe in half precision) and inputs/outputs stay float32 for the caller;
``cuda_graph`` captures one graph per batch size on first use and replays it afterwards, which removes
the per-layer launch overhead that dominates these small networks at batch 1.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stagepose.errors import EngineError, ModelError
from stagepose.hashing import sha256_file
from stagepose.models.checkpoint import load_model_and_metadata, recorded_sigma
from stagepose.runtime.backends.base import Backend, BackendConfig, warn_fp16_on_cpu, weights_beside
from stagepose.runtime.export import LastStack
from stagepose.runtime.sidecar import Sidecar
from stagepose.sizes import ImageSize

# input size of weights without a sidecar when the config names none
DEFAULT_SIZE = ImageSize(256, 256)

log = logging.getLogger(__name__)


@dataclass
class _Graph:
    """One captured CUDA graph for a fixed batch size, with its static and pinned buffers."""

    graph: Any
    device_in: torch.Tensor
    device_out: torch.Tensor
    host_in: torch.Tensor
    host_out: torch.Tensor


def resolve_weights(cfg: BackendConfig) -> tuple[Path, Sidecar | None]:
    """The checkpoint to load and the sidecar that describes it (if any), for ``cfg.model``.

    Raises:
        EngineError: an ONNX without its checkpoint next to it, or an engine file.
        ModelError: a checkpoint whose sha256 differs from the one its sidecar records.
    """
    kind = cfg.model_kind
    if kind == "onnx":
        sidecar: Sidecar | None = Sidecar.read(cfg.model.with_suffix(".json"), model_path=cfg.model)
        weights = weights_beside(cfg.model, sidecar)
        if weights is None:
            expected = (sidecar.checkpoint if sidecar else "") or cfg.model.with_suffix(".safetensors").name
            raise EngineError(
                f"{cfg.model}: the torch backend loads weights, not ONNX; put the checkpoint it was exported "
                f"from next to it ({cfg.model.parent / expected}) or pass the .safetensors as the model"
            )
    elif kind == "weights":
        weights = cfg.model
        side = cfg.model.with_suffix(".json")
        sidecar = Sidecar.read(side, check_hash=False) if side.is_file() else None
    else:
        raise EngineError(f"{cfg.model}: the torch backend loads .safetensors or .pt checkpoints (or an exported .onnx "
                          "with its checkpoint beside it)")  # fmt: skip
    if sidecar is not None and weights.is_file() and sha256_file(weights) != sidecar.checkpoint_sha256:
        raise ModelError(
            f"{weights}: sha256 differs from the checkpoint its sidecar {cfg.model.with_suffix('.json')} was "
            "exported from; re-export the model or remove the stale sidecar"
        )
    return weights, sidecar


class TorchBackend(Backend):
    """Runs the stacked hourglass from its checkpoint with PyTorch on the CPU or one CUDA device."""

    name = "torch"

    def __init__(self, cfg: BackendConfig, device: str) -> None:
        weights, sidecar = resolve_weights(cfg)
        model, spec, metadata = load_model_and_metadata(weights, sidecar.preset if sidecar else None)
        size = sidecar.input_size if sidecar else DEFAULT_SIZE
        if cfg.input_size:
            size = cfg.input_size
        multiple = spec.min_input_multiple
        if size.width % multiple or size.height % multiple:
            raise ModelError(f"input size {size.text()} must be a multiple of {multiple} for {spec.name}")
        on_gpu = device.startswith("cuda")
        if on_gpu and not torch.cuda.is_available():
            raise EngineError("torch cannot see a CUDA GPU (CPU-only torch build or no driver); use device: cpu")
        fp16 = cfg.fp16 and on_gpu
        if cfg.fp16 and not on_gpu:
            warn_fp16_on_cpu(self.name)
        super().__init__(
            device=device, input_size=size, num_joints=spec.num_joints,
            precision="fp16" if fp16 else "fp32", sidecar=sidecar, heatmap_sigma=recorded_sigma(metadata, weights),
        )  # fmt: skip
        self.preset = spec.name
        self.weights = weights
        if not on_gpu and cfg.threads:
            torch.set_num_threads(cfg.threads)  # process-wide: torch has no per-module thread pool
        self._device = torch.device(device)
        module = LastStack(model).eval().to(self._device)
        self._module = module.half() if fp16 else module
        self._fp16 = fp16
        self._use_graphs = cfg.cuda_graph and on_gpu
        if cfg.cuda_graph and not on_gpu:
            log.warning("torch: cuda_graph applies to CUDA only; running eagerly on the CPU")
        self._graphs: dict[int, _Graph] = {}

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._fp16:
            x = x.half()
        return self._module(x).float()

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            if self._device.type == "cpu":
                return self._forward(torch.from_numpy(batch)).numpy()
            if not self._use_graphs:
                x = torch.from_numpy(batch).to(self._device)
                return self._forward(x).cpu().numpy()
            graph = self._graphs.get(batch.shape[0]) or self._capture(batch.shape[0])
            graph.host_in.numpy()[...] = batch
            graph.device_in.copy_(graph.host_in, non_blocking=True)
            graph.graph.replay()
            graph.host_out.copy_(graph.device_out, non_blocking=True)
            torch.cuda.current_stream(self._device).synchronize()
            return graph.host_out.numpy().copy()

    def _capture(self, n: int) -> _Graph:
        """Capture the forward pass for batch ``n`` (after warm-up runs on a side stream, as required)."""
        device_in = torch.zeros((n, 3, *self.input_size.hw), device=self._device)
        side = torch.cuda.Stream(self._device)
        side.wait_stream(torch.cuda.current_stream(self._device))
        with torch.cuda.stream(side):
            for _ in range(3):
                self._forward(device_in)
        torch.cuda.current_stream(self._device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            device_out = self._forward(device_in)
        entry = _Graph(
            graph=graph, device_in=device_in, device_out=device_out,
            host_in=torch.empty(device_in.shape, dtype=torch.float32, pin_memory=True),
            host_out=torch.empty(device_out.shape, dtype=torch.float32, pin_memory=True),
        )  # fmt: skip
        self._graphs[n] = entry
        log.debug("torch: captured a CUDA graph for batch %d", n)
        return entry

    def synchronize(self) -> None:
        if self._device.type == "cuda":
            torch.cuda.synchronize(self._device)

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "preset": self.preset, "cuda_graph": self._use_graphs,
                "threads": torch.get_num_threads() if self._device.type == "cpu" else None}  # fmt: skip

    def _release(self) -> None:
        self._graphs.clear()
        self._module = None  # type: ignore[assignment]
        if self._device.type == "cuda":
            torch.cuda.empty_cache()
