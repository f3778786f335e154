"""PyTorch CUDA checks of trained (or random) weights: latency, and FP16 accuracy against FP32.

Shared by ``stagepose recipe gpu`` (its last stage) and ``stagepose bench gpu`` (`gpu_check_report`), so the
numbers a GPU session reports come from one place. Both run the torch backend as a GPU show machine without
TensorRT would: FP32 or ``.half()``, eager or CUDA-graph replay. Latency is p50/p95/p99 over ``runs`` calls
after ``warmup`` untimed ones, CUDA synchronised before each clock read (``bench.time_calls``); FP32 latency
uses torch's defaults (TF32 convolutions allowed on Ampere and newer). FP16 accuracy is measured on real crops
against a strict FP32 reference (TF32 off): decoded joints in input pixels, and the joints whose reference
peak stands clear (``parity``), which is what matters for trained models.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from stagepose.errors import EngineError
from stagepose.sizes import ImageSize

GPU_CHECK_PRESETS = ("lshm-2", "lshm-4", "teacher-hg8")
DEFAULT_LSPET = Path("../shared/data/lspet")  # the training configs' data, relative to the repository root

# (precision, CUDA graph) pairs the recipe and the tool time, each at every requested batch size
LATENCY_MODES: tuple[tuple[Literal["fp32", "fp16"], bool], ...] = (
    ("fp32", False), ("fp32", True), ("fp16", False), ("fp16", True),
)  # fmt: skip


@dataclass(frozen=True)
class LatencyCase:
    """One timed configuration of the torch backend."""

    precision: Literal["fp32", "fp16"]
    cuda_graph: bool
    batch: int

    @property
    def key(self) -> str:
        """``fp16/graph/b1``: the key of this case in reports."""
        return f"{self.precision}/{'graph' if self.cuda_graph else 'eager'}/b{self.batch}"


def latency_cases(batches: Sequence[int], modes: Sequence[tuple[Literal["fp32", "fp16"], bool]] = LATENCY_MODES,
                  ) -> tuple[LatencyCase, ...]:  # fmt: skip
    """Every (precision, graph) mode at every batch size."""
    return tuple(LatencyCase(p, g, int(b)) for p, g in modes for b in batches)


def cuda_unavailable(device: str) -> str | None:
    """Why torch cannot run on CUDA ``device`` here (the reason a report records), or None if it can."""
    import torch

    if not device.startswith("cuda"):
        return f"device {device!r} is not a CUDA device"
    if not torch.cuda.is_available():
        why = "a CPU-only torch build" if torch.version.cuda is None else "no CUDA GPU or driver visible"
        return f"torch {torch.__version__} sees no CUDA GPU ({why})"
    return None


def describe_gpu(device: str) -> dict[str, Any]:
    """GPU name, compute capability and the torch/CUDA versions, for reports."""
    import torch

    index = int(device.split(":")[1]) if ":" in device else 0
    return {
        "gpu": torch.cuda.get_device_name(index),
        "compute_capability": ".".join(map(str, torch.cuda.get_device_capability(index))),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
    }


def torch_latency(
    weights: str | Path,
    *,
    input_size: ImageSize,
    device: str,
    cases: Sequence[LatencyCase],
    runs: int = 200,
    warmup: int = 20,
) -> dict[str, dict[str, float]]:
    """Latency of the torch backend on ``weights`` for each case.

    Args:
        weights: ``.safetensors`` or a training ``.pt``.
        input_size: model input (width, height).
        device: "cuda", "cuda:N" (or "cpu" for a dry run: precision and graphs then do not apply).
        cases: what to time; cases sharing (precision, graph) share one opened backend.
        runs, warmup: timed and untimed calls per case.

    Returns:
        ``{case.key: {p50, p95, p99, mean, min, max (ms), images_per_s}}``.

    Raises:
        EngineError, ModelError: the backend cannot open these weights here.
    """
    from stagepose.runtime import BackendConfig, open_backend
    from stagepose.runtime.bench import latency_stats, time_calls

    input_size = ImageSize.of(input_size)
    out: dict[str, dict[str, float]] = {}
    modes = dict.fromkeys((c.precision, c.cuda_graph) for c in cases)
    for precision, graph in modes:
        cfg = BackendConfig(Path(weights), backend="torch", device=device, fp16=precision == "fp16",
                            cuda_graph=graph, input_size=input_size)  # fmt: skip
        with open_backend(cfg) as backend:
            for case in (c for c in cases if (c.precision, c.cuda_graph) == (precision, graph)):
                batch = np.random.default_rng(case.batch).standard_normal((case.batch, 3, *input_size.hw))
                call = functools.partial(backend.infer, batch.astype(np.float32))
                stats = latency_stats(time_calls(call, backend.synchronize, runs, warmup))
                out[case.key] = {**stats, "images_per_s": round(case.batch * 1e3 / stats["mean"], 1)}
    return out


def fp16_parity(weights: str | Path, *, input_size: ImageSize, device: str, crops: np.ndarray) -> dict[str, Any]:
    """FP16 vs strict FP32 (TF32 off) heatmaps and decoded joints of ``weights`` on ``crops`` (N, 3, H, W).

    Returns:
        ``parity.HeatmapParity`` as JSON, plus the joint distances in input pixels
        (``joint_diff_input_px``, ``clear_max_diff_input_px``) and ``clear_within_half_input_px``.
    """
    import torch

    from stagepose.codec import DEFAULT_SIGMA
    from stagepose.runtime import BackendConfig, open_backend
    from stagepose.runtime.parity import compare_heatmaps

    input_size = ImageSize.of(input_size)
    outputs, sigma = [], DEFAULT_SIGMA
    cudnn_tf32, matmul_tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    try:
        for fp16 in (False, True):
            torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
            cfg = BackendConfig(Path(weights), backend="torch", device=device, fp16=fp16, input_size=input_size)
            with open_backend(cfg) as backend:
                outputs.append(np.concatenate([backend.infer(crops[i : i + 16]) for i in range(0, len(crops), 16)]))
                sigma = backend.heatmap_sigma  # decode with the sigma the model was trained with
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = cudnn_tf32, matmul_tf32
    parity = compare_heatmaps(outputs[0], outputs[1], sigma=sigma).to_json()
    stride = input_size.width / outputs[0].shape[-1]
    parity["joint_diff_input_px"] = {k: v * stride for k, v in parity["joint_diff_px"].items()}
    parity["clear_max_diff_input_px"] = parity["clear_max_diff_px"] * stride
    parity["clear_within_half_input_px"] = parity["clear_max_diff_input_px"] <= 0.5
    return parity


def dataset_crops(spec: str, count: int, input_size: ImageSize) -> np.ndarray:
    """(N <= count, 3, H, W) normalised person crops of a data set's val split (``stagepose.data`` specs).

    Args:
        spec: e.g. ``lspet:../shared/data/lspet@0:64``.
        count: at most this many crops (the first ones).
        input_size: model input (width, height).
    """
    from stagepose.data import build_dataset

    dataset = build_dataset(spec, split="val", input_size=ImageSize.of(input_size))
    return np.stack([dataset[i]["image"].numpy() for i in range(min(count, len(dataset)))])


def gpu_check_report(
    presets: Sequence[str] = GPU_CHECK_PRESETS,
    *,
    checkpoints: dict[str, Path] | None = None,
    input_size: ImageSize | None = None,
    lspet: Path = DEFAULT_LSPET,
    crops: int = 64,
    batches: Sequence[int] = (1, 8),
    runs: int = 200,
    warmup: int = 20,
    device: str = "cuda:0",
    say: Callable[[str], None] = lambda line: None,
) -> dict[str, Any]:
    """FP16 vs FP32 accuracy (on LSPET crops, if found) and torch latency of ``presets`` on one CUDA GPU.

    Args:
        presets: model presets; random weights unless ``checkpoints`` names trained ones.
        checkpoints: ``{preset: weights file}``.
        input_size: model input (width, height); None: 256x256.
        lspet: LSPET folder (joints.mat, images/); FP16 accuracy is skipped when it is missing.
        crops: LSPET crops for the FP16 comparison.
        batches: batch sizes timed, each in every `LATENCY_MODES` mode.
        runs, warmup: timed and untimed calls per case.
        device: "cuda" or "cuda:N"; "cpu" dry-runs the measurements (FP16 and graphs then do not apply).
        say: progress lines.

    Returns:
        The GPU and versions, settings, notes, ``accuracy_data`` and per preset ``weights``,
        ``fp16_vs_fp32`` (`fp16_parity`) and ``latency_ms`` (`torch_latency`).

    Raises:
        EngineError: ``device`` is not a usable CUDA device (and not "cpu").
    """
    import tempfile

    import torch

    from stagepose.models import build_model
    from stagepose.models.checkpoint import save_weights

    dry_run = device == "cpu"
    reason = None if dry_run else cuda_unavailable(device)
    if reason is not None:
        raise EngineError(f"{reason}; `--device cpu` dry-runs the measurements")
    checkpoints = checkpoints or {}
    size = ImageSize.of(input_size) if input_size is not None else ImageSize(256, 256)
    gpu = {"gpu": "none (dry run on the CPU)", "compute_capability": None, "torch": torch.__version__,
           "cuda": torch.version.cuda} if dry_run else describe_gpu(device)  # fmt: skip
    report: dict[str, Any] = {
        **gpu,
        "input_size": list(size),
        "runs": runs,
        "warmup": warmup,
        "notes": [
            "fp32 latency uses torch's defaults (TF32 convolutions allowed on Ampere and newer); the FP16 "
            "accuracy reference is strict FP32 (TF32 off)",
            "joint distances are in input pixels",
        ],
        "presets": {},
    }
    data = None
    if (lspet / "joints.mat").is_file():
        data = dataset_crops(f"lspet:{lspet}@0:{crops}", crops, size)
        report["accuracy_data"] = f"{len(data)} LSPET crops from {lspet}"
    else:
        report["accuracy_data"] = f"LSPET not found at {lspet}: FP16 accuracy not measured"
    cases = latency_cases(batches)
    with tempfile.TemporaryDirectory(prefix="stagepose-gpu-check-") as tmp:
        for preset in presets:
            if preset in checkpoints:
                weights, origin = Path(checkpoints[preset]), str(checkpoints[preset])
            else:
                torch.manual_seed(0)
                weights = save_weights(Path(tmp) / f"{preset}.safetensors", build_model(preset), preset)
                origin = "random-init"
            say(f"gpu check: {preset}")
            entry: dict[str, Any] = {"weights": origin}
            if data is not None:
                entry["fp16_vs_fp32"] = fp16_parity(weights, input_size=size, device=device, crops=data)
            entry["latency_ms"] = torch_latency(weights, input_size=size, device=device, cases=cases, runs=runs,
                                                warmup=warmup)  # fmt: skip
            report["presets"][preset] = entry
    return report
