"""``stagepose export`` and ``stagepose engine build|list``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    _register_export(subparsers)
    _register_engine(subparsers)


# ------------------------------------------------------------------------------------------ export


def _register_export(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a checkpoint to ONNX with its JSON sidecar (checked against PyTorch)",
        description="Export the last stack of a trained model to ONNX (input 'input' N x 3 x H x W float32, "
        "output 'heatmaps' N x 16 x H/4 x W/4, dynamic batch) and write NAME.json beside it. The export is "
        "rejected, and nothing written, if ONNX Runtime and PyTorch differ by more than the tolerance.",
    )
    parser.add_argument("--checkpoint", type=Path, help="trained weights (.safetensors, or a training .pt)")
    parser.add_argument("--preset", help="model preset (default: the one the checkpoint records)")
    parser.add_argument("--out", type=Path, required=True, help="destination, e.g. engines/lshm2-256.onnx")
    parser.add_argument("--input-size", type=int, default=None, metavar="PX",
                        help="square input side (default: the size the checkpoint was trained at, else 256)")
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (default 20)")
    parser.add_argument("--tolerance", type=float, default=None, help="max |ORT - torch| heatmap difference (1e-4)")
    parser.set_defaults(func=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    from stagepose.errors import ModelError

    if args.checkpoint is None:
        raise ModelError(
            "nothing to export: pass --checkpoint with trained weights (.safetensors or a training .pt); "
            "to time an untrained preset use `stagepose bench model --preset NAME`"
        )
    from stagepose.models.checkpoint import load_state, recorded_input_size
    from stagepose.runtime.export import DEFAULT_OPSET, PARITY_TOLERANCE, export_onnx
    from stagepose.sizes import ImageSize

    if args.input_size:
        input_size = ImageSize.square(args.input_size)
    else:  # the size it was trained at, else 256x256
        input_size = recorded_input_size(load_state(args.checkpoint)[1]) or ImageSize(256, 256)
    result = export_onnx(
        args.checkpoint, args.out, preset=args.preset, input_size=input_size,
        opset=args.opset or DEFAULT_OPSET, tolerance=args.tolerance or PARITY_TOLERANCE,
    )  # fmt: skip
    print(f"wrote {result.onnx_path} and {result.sidecar_path} "
          f"(preset {result.sidecar.preset}, {input_size.text()}, heatmap sigma "
          f"{result.sidecar.heatmap_sigma:g}, opset {result.sidecar.opset}, "
          f"max |onnxruntime - torch| = {result.max_abs_diff:.2g})")  # fmt: skip
    return 0


# ------------------------------------------------------------------------------------------ engine


def _register_engine(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("engine", help="TensorRT engines per GPU: build and list")
    sub = parser.add_subparsers(dest="engine_command", metavar="ACTION")
    build = sub.add_parser(
        "build",
        help="build a TensorRT engine for this GPU from an exported ONNX",
        description="Build on the GPU this runs on. The engine file name records the ONNX hash, TensorRT "
        "version, compute capability, GPU, precision and input size; engines/manifest.json lists it.",
    )
    build.add_argument("--onnx", type=Path, required=True, help="exported model (sidecar beside it)")
    build.add_argument("--engines-dir", type=Path, help="where engines go (default: the ONNX's folder)")
    build.add_argument("--fp16", action="store_true", help="FP16 engine (recommended on GPUs with tensor cores)")
    build.add_argument("--workspace-mb", type=int, default=1024, help="builder workspace limit in MiB (1024)")
    build.add_argument("--max-batch", type=int, default=8, help="largest batch the engine accepts (8)")
    build.add_argument("--opt-batch", type=int, help="batch to tune for: the show's camera count (default 4)")
    build.add_argument("--force", action="store_true", help="rebuild even if this engine exists")
    build.set_defaults(func=_run_engine_build)
    lst = sub.add_parser("list", help="engines built, for which GPU, and which fit this machine")
    lst.add_argument("--engines-dir", type=Path, default=Path("engines"), help="engines folder (engines)")
    lst.add_argument("--json", action="store_true", help="print JSON")
    lst.set_defaults(func=_run_engine_list)
    parser.set_defaults(func=lambda args: _print_help(parser))


def _print_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _run_engine_build(args: argparse.Namespace) -> int:
    from stagepose.runtime.trt_build import build_engine

    record = build_engine(
        args.onnx, args.engines_dir, fp16=args.fp16, workspace_mb=args.workspace_mb,
        max_batch=args.max_batch, opt_batch=args.opt_batch, force=args.force,
    )  # fmt: skip
    engines_dir = args.engines_dir or args.onnx.parent
    print(f"engine {engines_dir / record.file}: {record.gpu_name} sm{record.compute_capability}, TensorRT "
          f"{record.trt_version}, {record.precision}, batch 1..{record.max_batch} (opt {record.opt_batch}), "
          f"built in {record.build_seconds:.0f} s")  # fmt: skip
    return 0


def _run_engine_list(args: argparse.Namespace) -> int:
    from stagepose.runtime.engines import detect_gpu, list_engines, tensorrt_version

    gpu, trt = detect_gpu(), tensorrt_version()
    listings = list_engines(args.engines_dir, gpu, trt)
    here = f"{gpu.describe() if gpu else 'no CUDA GPU'}, TensorRT {trt or 'not installed'}"
    if args.json:
        print(json.dumps({
            "this_machine": {"gpu": gpu.name if gpu else None, "compute_capability": gpu.compute_capability if gpu
                             else None, "tensorrt": trt},
            "engines": [{"file": e.file, "exists": e.exists, "fits_this_machine": e.fits_this_machine,
                         "record": _record_json(e.record)} for e in listings],
        }, indent=2))  # fmt: skip
        return 0
    print(f"this machine: {here}")
    if not listings:
        print(f"no engines in {args.engines_dir}; build one with `stagepose engine build --onnx ONNX --fp16`")
        return 0
    print(f"  {'gpu':<28}{'sm':>5}{'tensorrt':>12}{'prec':>6}{'input':>9}{'batch':>7}  {'built':<20} file")
    for e in listings:
        mark = "*" if e.fits_this_machine else " "
        state = "" if e.exists else "  (missing file)"
        r = e.record
        if r is not None:
            h, w = r.input_size
            print(f"{mark} {r.gpu_name[:27]:<28}{r.compute_capability:>5}{r.trt_version:>12}{r.precision:>6}"
                  f"{f'{h}x{w}':>9}{f'1..{r.max_batch}':>7}  {r.built_at[:19]:<20} {e.file}{state}")  # fmt: skip
        elif e.key is not None:
            k = e.key
            h, w = k.input_size
            print(f"{mark} {k.gpu_slug[:27]:<28}{k.sm:>5}{k.trt_version:>12}{k.precision:>6}{f'{h}x{w}':>9}"
                  f"{'?':>7}  {'(not in manifest)':<20} {e.file}{state}")  # fmt: skip
        else:
            print(f"  {'(not a stagepose engine name)':<87} {e.file}")
    print("* = fits this machine")
    return 0


def _record_json(record: object) -> object:
    from stagepose.config import to_dict

    return to_dict(record) if record is not None else None
