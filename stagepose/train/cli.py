"""``stagepose train``, ``stagepose eval``, ``stagepose eval-compare`` and ``stagepose recipe gpu``."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    _register_train(subparsers)
    _register_eval(subparsers)
    _register_eval_compare(subparsers)
    _register_recipe(subparsers)


def _register_train(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train or fine-tune a model (optionally distilled from a teacher) from an experiment YAML",
        description="Train from training/NAME.yaml; KEY=VALUE arguments override config fields (e.g. "
        "train.epochs=2 data.batch_size=8 data.train=lspet:data/lspet). Writes config.yaml, last.pt, best.pt, "
        "best.safetensors, log.csv and curves.png to train.out_dir (default runs/NAME). The same command "
        "runs under `torchrun --nproc_per_node=N` on N GPUs.",
    )
    parser.add_argument("--config", type=Path, metavar="YAML", help="experiment config (training/*.yaml)")
    parser.add_argument("--resume", type=Path, metavar="CKPT",
                        help="continue from a last.pt (its stored config is used without --config)")  # fmt: skip
    parser.add_argument("--overwrite", action="store_true", help="start afresh in an output folder that holds a run")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. train.epochs=2")
    parser.set_defaults(func=_train)


def _train(args: argparse.Namespace) -> int:
    from stagepose.train.loop import run_training

    result = run_training(args.config, args.overrides, resume=args.resume, overwrite=args.overwrite,
                          progress=not args.no_progress)  # fmt: skip
    if result.rank != 0:
        return 0  # under torchrun, rank 0 reports
    best = (f"best {result.metric_name} {result.best_metric:.2f}%" if result.best_metric is not None
            else "no validation")  # fmt: skip
    print(f"trained {result.steps} steps ({result.epochs} epochs, {result.img_s:.1f} images/s); {best}; "
          f"weights: {result.best_weights or result.last_checkpoint}")  # fmt: skip
    return 0


def _register_eval(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="PCKh@0.5 (MPII) or PCK@0.2 (LSP) of trained weights on a data set, as a Table 2 row",
        description="Run the model over the val split of a data set spec, decode, map to image pixels and score: "
        "PCKh@0.5 where the data has head sizes (MPII), else PCK@0.2 of the torso (LSP/LSPET).",
    )
    parser.add_argument("--checkpoint", type=Path, required=True, help=".safetensors or a training .pt")
    parser.add_argument("--data", required=True, metavar="SPEC",
                        help="data set spec (its val split), e.g. lspet:data/lspet or "
                        "mpii:data/mpii/annot/valid.json:data/mpii/images")  # fmt: skip
    parser.add_argument("--preset", help="model preset (default: the one the checkpoint records)")
    parser.add_argument("--input-size", type=int, metavar="PX",
                        help="square input side (default: the size it was trained at, else 256)")  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=32, help="images per forward pass (32)")
    parser.add_argument("--workers", type=int, default=2, help="data loading processes (2)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--flip", action="store_true", help="flip test: average with the mirrored crop's heatmaps")
    parser.add_argument("--label", help="row label (default: the preset name)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the report as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=_eval)


def _eval(args: argparse.Namespace) -> int:
    from stagepose.sizes import ImageSize
    from stagepose.train.evaluate import evaluate_checkpoint

    size = ImageSize.square(args.input_size) if args.input_size else None
    report = evaluate_checkpoint(
        args.checkpoint, args.data, preset=args.preset, input_size=size, batch_size=args.batch_size,
        workers=args.workers, flip=args.flip, device=args.device, progress=not args.no_progress,
        json_path=args.json, label=args.label,
    )  # fmt: skip
    print(report.table())
    if args.json:
        print(f"wrote {args.json}")
    return 0


def _register_eval_compare(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval-compare",
        help="compare eval reports (stagepose eval --json) side by side, with differences and a bar chart",
        description="Print the Table 2 columns and the limb-joint mean of each report, each later report followed "
        "by its difference to the first (e.g. a student trained without, then with the teacher). All reports must "
        "score the same data with the same metric.",
    )
    parser.add_argument("reports", nargs="+", type=Path, metavar="REPORT.json", help="the baseline first")
    parser.add_argument("--plot", type=Path, metavar="PNG", help="also draw the groups as grouped bars")
    parser.set_defaults(func=_eval_compare)


def _eval_compare(args: argparse.Namespace) -> int:
    from stagepose.train.compare import comparison_table, plot_comparison, read_report

    reports = [read_report(path) for path in args.reports]
    print(comparison_table(reports))
    if args.plot:
        print(f"wrote {plot_comparison(reports, args.plot)}")
    return 0


def _register_recipe(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "recipe",
        help="whole training recipes in one command: `stagepose recipe gpu`",
        description="Multi-run recipes: `stagepose recipe gpu --help`.",
    )
    sub = parser.add_subparsers(dest="recipe_command", metavar="RECIPE")
    gpu = sub.add_parser(
        "gpu",
        help="teacher-hg8, then lshm-4 and lshm-2 with and without it, scored, lshm-4 exported, GPU latency, in "
        "one time budget",
        description="On one GPU, within --budget-s seconds in all: train teacher-hg8 at 256 on LSPET, then lshm-4 "
        "and lshm-2 taught by it and alone for the same steps (training/gpu/*.yaml), score all five on the held-out "
        "split, compare (KD gain per student), export the better lshm-4 to ONNX with its sidecar and time both "
        "students with PyTorch CUDA (FP16/FP32, eager/CUDA graphs, batch 1). Each run plans its steps from its "
        "measured speed within its share of the time. Writes <out>/summary.json and summary.md.",
    )
    gpu.add_argument("--data", metavar="SPEC", help="training data, its train split (default: the configs' "
                     "lspet:../shared/data/lspet)")  # fmt: skip
    gpu.add_argument("--eval-data", metavar="SPEC", help="data every run is scored on, its val split (default: "
                     "--data's; for LSPET the last 500 images, 8500-8999)")  # fmt: skip
    gpu.add_argument("--out", type=Path, metavar="DIR", help="output folder (default runs/gpu_recipe)")
    gpu.add_argument("--budget-s", type=float, default=600.0, help="wall-clock seconds for everything (600)")
    gpu.add_argument("--reserve-s", type=float, default=90.0,
                     help="of which kept for evaluation, export and latency (90)")  # fmt: skip
    gpu.add_argument("--workers", type=int, help="data loader workers per run (default: the configs' 12)")
    gpu.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    gpu.add_argument(
        "--tiny", action="store_true", help="CPU proof of the pipeline: 64x64, 4 training + 4 eval images, 2 steps each"
    )
    gpu.add_argument("--latency-runs", type=int, default=200, help="timed calls per latency case (200)")
    gpu.add_argument("--overwrite", action="store_true", help="replace a previous recipe run in the output folder")
    gpu.add_argument("--no-progress", action="store_true", help="no progress bars")
    gpu.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="config overrides for all five runs, e.g. data.batch_size=32"
    )
    gpu.set_defaults(func=_recipe_gpu)
    parser.set_defaults(func=lambda args: _print_help(parser))


def _print_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _recipe_gpu(args: argparse.Namespace) -> int:
    from stagepose.train.recipe import RecipeSettings, run_gpu_recipe

    given = {"data": args.data, "eval_data": args.eval_data, "out_dir": args.out, "workers": args.workers}
    settings = RecipeSettings(
        budget_s=args.budget_s, reserve_s=args.reserve_s, device=args.device, tiny=args.tiny,
        overrides=tuple(args.overrides), overwrite=args.overwrite, latency_runs=args.latency_runs,
        progress=not args.no_progress, **{k: v for k, v in given.items() if v is not None},
    )  # fmt: skip
    summary = run_gpu_recipe(settings, say=lambda line: print(line, flush=True))
    for preset, gain in summary.kd_gain.items():
        print(f"KD gain {preset}: mean {gain['mean']:+.1f}, limbs {gain['limbs']:+.1f} percentage points "
              f"({gain['steps']} steps each)")  # fmt: skip
    return 0
