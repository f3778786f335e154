"""GPU check with PyTorch CUDA only (no TensorRT needed): FP16 accuracy and latency of the presets.

For lshm-2, lshm-4 and teacher-hg8 (random weights unless --checkpoint PRESET=FILE is given) it measures

* FP16 vs FP32 heatmaps and decoded joints on real LSPET crops, through stagepose's torch backend
  (``.half()``), against a strict FP32 reference (TF32 off). Joint distances are in input pixels; the
  "clear" figures count only joints whose reference peak is unambiguous (see stagepose.runtime.parity),
  which is what matters for trained models (untrained heatmaps are flat and their arg-max is fragile);
* latency at batch 1 and 8, FP32 and FP16, with and without CUDA-graph replay (p50/p95/p99 over --runs
  calls after --warmup, CUDA synchronised before each clock read), and images/s.

The measurements live in ``stagepose.runtime.gpu_check`` (``stagepose recipe gpu`` reports the same ones
for the students it trains). It prints one JSON object. Run from the repository root on a machine with a
CUDA GPU and stagepose installed (``pip install -e .``):

    .venv/bin/python tools/gpu_check.py > gpu_check.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

DEFAULT_LSPET = Path(__file__).resolve().parents[2] / "shared" / "data" / "lspet"
PRESETS = ("lshm-2", "lshm-4", "teacher-hg8")


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
    from stagepose.runtime.gpu_check import (
        cuda_unavailable,
        dataset_crops,
        describe_gpu,
        fp16_parity,
        latency_cases,
        torch_latency,
    )
    from stagepose.sizes import ImageSize

    dry_run = args.device == "cpu"  # exercises the script without a GPU; fp16 and graphs do not apply
    reason = None if dry_run else cuda_unavailable(args.device)
    if reason is not None:
        print(json.dumps({"error": reason, "torch": torch.__version__}))
        return 2
    checkpoints = dict(item.split("=", 1) for item in args.checkpoint)
    size = ImageSize.square(args.input_size)
    gpu = {"gpu": "none (dry run on the CPU)", "compute_capability": None, "torch": torch.__version__,
           "cuda": torch.version.cuda} if dry_run else describe_gpu(args.device)  # fmt: skip
    report: dict[str, Any] = {
        **gpu,
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
        crops = dataset_crops(f"lspet:{args.lspet}@0:{args.crops}", args.crops, size)
        report["accuracy_data"] = f"{len(crops)} LSPET crops from {args.lspet}"
    else:
        report["accuracy_data"] = f"LSPET not found at {args.lspet}: FP16 accuracy not measured"
    cases = latency_cases([int(b) for b in args.batches.split(",")])

    with tempfile.TemporaryDirectory(prefix="stagepose-gpu-check-") as tmp:
        for preset in args.presets.split(","):
            if preset in checkpoints:
                weights, origin = Path(checkpoints[preset]), checkpoints[preset]
            else:
                torch.manual_seed(0)
                weights = save_weights(Path(tmp) / f"{preset}.safetensors", build_model(preset), preset)
                origin = "random-init"
            entry: dict[str, Any] = {"weights": origin}
            print(f"[gpu_check] {preset}", file=sys.stderr)
            if crops is not None:
                entry["fp16_vs_fp32"] = fp16_parity(weights, input_size=size, device=args.device, crops=crops)
            entry["latency_ms"] = torch_latency(weights, input_size=size, device=args.device, cases=cases,
                                                runs=args.runs, warmup=args.warmup)  # fmt: skip
            report["presets"][preset] = entry
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
