"""GPU check with PyTorch CUDA only (no TensorRT needed): FP16 accuracy and latency of the presets.

For lshm-2, lshm-4 and teacher-hg8 (random weights unless --checkpoint PRESET=FILE is given) it measures

* FP16 vs FP32 heatmaps and decoded joints on real LSPET crops, through stagepose's torch backend
  (``.half()``), against a strict FP32 reference (TF32 off). Joint distances are in input pixels; the
  "clear" figures count only joints whose reference peak is unambiguous (see stagepose.runtime.parity),
  which is what matters for trained models (untrained heatmaps are flat and their arg-max is fragile);
* latency at batch 1 and 8, FP32 and FP16, with and without CUDA-graph replay (p50/p95/p99 over --runs
  calls after --warmup, CUDA synchronised before each clock read), and images/s.

It prints one JSON object. Run from the repository root on a machine with a CUDA GPU and stagepose
installed (``pip install -e .``):

    .venv/bin/python tools/gpu_check.py > gpu_check.json
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_LSPET = Path(__file__).resolve().parents[2] / "shared" / "data" / "lspet"
PRESETS = ("lshm-2", "lshm-4", "teacher-hg8")


def lspet_crops(root: Path, count: int, size: int) -> np.ndarray:
    """(count, 3, size, size) normalised crops around the labelled people of the first LSPET images."""
    import cv2
    import scipy.io

    from stagepose.transforms import CROP_MARGIN, box_with_aspect, crop_affine, to_model_input, warp_crop

    joints = scipy.io.loadmat(str(root / "joints.mat"))["joints"]  # (14, 3, N): x, y, visible
    crops = []
    for i in range(count):
        xy = joints[:, :2, i][joints[:, 2, i] > 0]
        image = cv2.imread(str(root / "images" / f"im{i + 1:05d}.jpg"))
        if image is None or len(xy) < 2:
            continue
        lo, hi = xy.min(axis=0), xy.max(axis=0)
        width, height = (hi - lo) * CROP_MARGIN + 1.0
        affine = crop_affine((lo + hi) / 2, box_with_aspect(width, height, 1.0), (size, size))
        crops.append(warp_crop(image, affine, (size, size)))
    return to_model_input(np.stack(crops))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", default=",".join(PRESETS), help="comma-separated presets")
    parser.add_argument("--checkpoint", action="append", default=[], metavar="PRESET=FILE",
                        help="trained weights for a preset (default: random init)")  # fmt: skip
    parser.add_argument("--input-size", type=int, default=256, help="square input side (256)")
    parser.add_argument("--lspet", type=Path, default=DEFAULT_LSPET, help="LSPET folder (joints.mat, images/)")
    parser.add_argument("--crops", type=int, default=64, help="LSPET crops for the FP16 comparison (64)")
    parser.add_argument("--batches", default="1,8", help="batch sizes to time (1,8)")
    parser.add_argument("--runs", type=int, default=200, help="timed calls per case (200)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed calls first (20)")
    parser.add_argument("--device", default="cuda:0", help="CUDA device (cuda:0); 'cpu' = dry run of the script")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    from stagepose.models import build_model
    from stagepose.models.checkpoint import save_weights
    from stagepose.runtime import BackendConfig, open_backend
    from stagepose.runtime.bench import latency_stats, time_calls
    from stagepose.runtime.parity import compare_heatmaps

    dry_run = args.device == "cpu"  # exercises the script without a GPU; fp16 and graphs do not apply
    if not dry_run and not torch.cuda.is_available():
        print(json.dumps({"error": "torch sees no CUDA GPU", "torch": torch.__version__}))
        return 2
    checkpoints = dict(item.split("=", 1) for item in args.checkpoint)
    size = (args.input_size, args.input_size)
    batches = [int(b) for b in args.batches.split(",")]
    index = int(args.device.split(":")[1]) if ":" in args.device else 0
    report: dict[str, Any] = {
        "gpu": "none (dry run on the CPU)" if dry_run else torch.cuda.get_device_name(index),
        "compute_capability": None if dry_run else ".".join(map(str, torch.cuda.get_device_capability(index))),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "input_size": list(size),
        "runs": args.runs,
        "warmup": args.warmup,
        "notes": [
            "fp32 latency uses torch's defaults (TF32 convolutions allowed on Ampere and newer); the FP16 "
            "accuracy reference is strict FP32 (TF32 off)",
            "joint distances are in input pixels",
        ],
        "presets": {},
    }
    crops = None
    if (args.lspet / "joints.mat").is_file():
        crops = lspet_crops(args.lspet, args.crops, args.input_size)
        report["accuracy_data"] = f"{len(crops)} LSPET crops from {args.lspet}"
    else:
        report["accuracy_data"] = f"LSPET not found at {args.lspet}: FP16 accuracy not measured"

    with tempfile.TemporaryDirectory(prefix="stagepose-gpu-check-") as tmp:
        for preset in args.presets.split(","):
            if preset in checkpoints:
                weights, origin = Path(checkpoints[preset]), checkpoints[preset]
            else:
                torch.manual_seed(0)
                weights = save_weights(Path(tmp) / f"{preset}.safetensors", build_model(preset), preset)
                origin = "random-init"
            entry: dict[str, Any] = {"weights": origin, "latency_ms": {}}
            print(f"[gpu_check] {preset}", file=sys.stderr)
            if crops is not None:
                entry["fp16_vs_fp32"] = _fp16_parity(weights, size, args.device, crops, compare_heatmaps)
            for fp16 in (False, True):
                for graph in (False, True):
                    cfg = BackendConfig(weights, backend="torch", device=args.device, fp16=fp16, cuda_graph=graph,
                                        input_size=size)  # fmt: skip
                    with open_backend(cfg) as backend:
                        for n in batches:
                            batch = np.random.default_rng(n).standard_normal((n, 3, *size)).astype(np.float32)
                            call = functools.partial(backend.infer, batch)
                            samples = time_calls(call, backend.synchronize, args.runs, args.warmup)
                            stats = latency_stats(samples)
                            key = f"{'fp16' if fp16 else 'fp32'}/{'graph' if graph else 'eager'}/b{n}"
                            entry["latency_ms"][key] = {**stats, "images_per_s": round(n * 1e3 / stats["mean"], 1)}
            report["presets"][preset] = entry
    print(json.dumps(report, indent=2))
    return 0


def _fp16_parity(weights: Path, size: tuple[int, int], device: str, crops: np.ndarray, compare: Any) -> dict[str, Any]:
    import torch

    from stagepose.runtime import BackendConfig, open_backend

    outputs = []
    cudnn_tf32, matmul_tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    try:
        for fp16 in (False, True):
            torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
            cfg = BackendConfig(weights, backend="torch", device=device, fp16=fp16, input_size=size)
            with open_backend(cfg) as backend:
                outputs.append(np.concatenate([backend.infer(crops[i : i + 16]) for i in range(0, len(crops), 16)]))
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = cudnn_tf32, matmul_tf32
    parity = compare(outputs[0], outputs[1]).to_json()
    stride = size[0] / outputs[0].shape[-1]
    parity["joint_diff_input_px"] = {k: v * stride for k, v in parity["joint_diff_px"].items()}
    parity["clear_max_diff_input_px"] = parity["clear_max_diff_px"] * stride
    parity["clear_within_half_input_px"] = parity["clear_max_diff_input_px"] <= 0.5
    return parity


if __name__ == "__main__":
    sys.exit(main())
