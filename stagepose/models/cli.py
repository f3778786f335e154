"""``stagepose model-info``: measured parameters and compute of the presets beside the paper's."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "model-info",
        help="parameters and FLOPs of the model presets, next to the paper's Table 2",
        description="Measure parameters (M) and forward compute (GFLOPs = 2 x GMACs, counted by "
        "torch's FlopCounterMode on convolutions and matrix products) at batch 1.",
    )
    parser.add_argument("presets", nargs="*", metavar="PRESET", help="preset names (default: all)")
    parser.add_argument("--input-size", type=int, default=256, metavar="PX", help="square input side")
    parser.add_argument("--json", action="store_true", help="print a JSON object keyed by preset")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from stagepose.models.info import measure
    from stagepose.models.registry import MODELS, get_preset

    names = args.presets or list(MODELS)
    presets = [get_preset(n) for n in names]
    size = (args.input_size, args.input_size)
    stats = [measure(p, size) for p in presets]
    if args.json:
        print(json.dumps({s.preset: s.to_json(p) for s, p in zip(stats, presets)}, indent=2))
        return 0
    print(f"input 1x3x{size[1]}x{size[0]}; compute = FLOPs (2 x MACs) of convolutions and matmuls")
    print(f"{'preset':<14}{'params/M':>10}{'GFLOPs':>9}{'GMACs':>8}   {'paper (Table 2)':<30}")
    for s, p in zip(stats, presets):
        paper = f"{p.paper.label}: {p.paper.params_m:g} M / {p.paper.compute_g:g} G" if p.paper else "-"
        print(f"{s.preset:<14}{s.params_m:>10.2f}{s.gflops:>9.2f}{s.gmacs:>8.2f}   {paper:<30}")
    return 0
