"""``stagepose bench model | pipeline | sources | train | gpu | triangulate | multiview``: every benchmark, each
printing JSON on stdout.

Each subcommand parses its arguments and calls one library function: `stagepose.runtime.bench.run_bench`,
`stagepose.show.bench.bench_pipeline`, `stagepose.show.sources.bench.bench_sources`,
`stagepose.train.bench.benchmark_training`, `stagepose.runtime.gpu_check.gpu_check_report`,
`stagepose.multiview.bench.bench_triangulation` and `stagepose.multiview.measure.measure_footage`.
Progress goes to stderr, so stdout stays one JSON document.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _str_list(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def _preset_file(text: str) -> tuple[str, Path]:
    preset, sep, path = text.partition("=")
    if not sep or not preset or not path:
        raise argparse.ArgumentTypeError(f"expected PRESET=FILE, got {text!r}")
    return preset, Path(path)


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="benchmarks, JSON on stdout: model latency, pipeline stages, source decode, training, GPU",
        description="Every benchmark prints one JSON document on stdout (progress on stderr). "
        "`stagepose bench model --help` (and so on) for each one's options.",
    )
    sub = parser.add_subparsers(dest="bench_command")
    _register_model(sub)
    _register_pipeline(sub)
    _register_live(sub)
    _register_sources(sub)
    _register_train(sub)
    _register_gpu(sub)
    _register_triangulate(sub)
    _register_multiview(sub)
    parser.set_defaults(func=lambda args: _print_help(parser))


def _print_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


# ------------------------------------------------------------------------------------------- model


def _register_model(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "model",
        help="latency of the backends per model and batch (p50/p95/p99, images/s)",
        description="Time backend.infer after warm-up (CUDA synchronised before each clock read). Presets "
        "are benchmarked with random weights exported on the fly; on the CPU the per-frame path "
        "(1080p crop + normalise, infer, decode) is timed too. Exit 1 if nothing could be timed.",
    )
    parser.add_argument("--backend", type=_str_list, default=("onnxruntime", "torch"),
                        help="comma-separated: tensorrt,onnxruntime,torch (default onnxruntime,torch)")  # fmt: skip
    parser.add_argument("--preset", type=_str_list, default=(),
                        help="comma-separated presets, e.g. lshm-2,lshm-4 (default lshm-2 without --onnx)")  # fmt: skip
    parser.add_argument("--onnx", type=Path, action="append", default=[], help="exported model (repeatable)")
    parser.add_argument("--input-size", type=_int_list, default=(256,), help="square sides for presets (256)")
    parser.add_argument("--batch", type=_int_list, default=(1, 3), help="batch sizes (1,3)")
    parser.add_argument("--runs", type=int, default=200, help="timed calls per case (200)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed calls first (20)")
    parser.add_argument("--pipeline-runs", type=int, default=50, help="timed frames of the CPU per-frame path (50)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--fp16", action="store_true", help="half precision on CUDA")
    parser.add_argument("--cuda-graph", action="store_true", help="CUDA-graph replay (tensorrt, torch)")
    parser.add_argument("--threads", type=int, help="CPU threads (default: usable cores, at most 8)")
    parser.add_argument("--spin-wait", action="store_true",
                        help="ONNX Runtime workers busy-wait between operators (faster alone, slower beside decoding)")
    parser.add_argument("--table", action="store_true", help="print a table instead of JSON")
    parser.add_argument("--plot", type=Path, metavar="FILE", help="save a latency histogram PNG")
    parser.set_defaults(func=_model)


def _model(args: argparse.Namespace) -> int:
    from stagepose.errors import ConfigError
    from stagepose.runtime.bench import BenchSpec, format_report, plot_histograms, run_bench

    presets = args.preset or (() if args.onnx else ("lshm-2",))
    try:
        spec = BenchSpec(
            backends=args.backend, presets=presets, onnx=tuple(args.onnx), input_sizes=args.input_size,
            batches=args.batch, runs=args.runs, warmup=args.warmup, device=args.device, fp16=args.fp16,
            cuda_graph=args.cuda_graph, threads=args.threads, spin_wait=args.spin_wait,
            pipeline_runs=args.pipeline_runs,
        )  # fmt: skip
    except ValueError as exc:
        raise ConfigError(f"model: {exc}") from None
    report = run_bench(spec)
    if args.plot:
        plot_histograms(report, args.plot)
    if args.table:
        print(format_report(report))
    else:
        _print_json(report.to_json())
    return 0 if report.results else 1


# ---------------------------------------------------------------------------------------- pipeline


def _register_pipeline(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "pipeline",
        help="per-frame cost of every pipeline stage over a video (decode, crop, model, filter, OSC)",
        description="Run the show's pipeline over a video as fast as possible and print milliseconds per "
        "stage, separating the model from the pipeline's own overhead.",
    )
    parser.add_argument("--show", required=True, type=Path, help="show config YAML (its model and settings)")
    parser.add_argument("--video", type=Path, help="video to run (default: the first camera's file)")
    parser.add_argument("--frames", type=int, default=300, help="at most this many frames (300)")
    parser.add_argument("--loop", action="store_true", help="play the video again from its start until --frames")
    from stagepose.show.cli import add_monitor_argument

    add_monitor_argument(parser, "also serve the monitor page and start timing once a browser has it open (what a "
                         "watched show costs)")  # fmt: skip
    parser.add_argument("--monitor-wait", type=float, default=120.0, metavar="S",
                        help="with --monitor: wait up to S seconds for the browser (120)")  # fmt: skip
    parser.add_argument("--monitor-client", action="store_true",
                        help="with --monitor: open the page with a minimal client in its own process (a browser on "
                        "another machine, as the show process sees it) instead of waiting for a browser")  # fmt: skip
    parser.set_defaults(func=_pipeline)


def _pipeline(args: argparse.Namespace) -> int:
    from stagepose.errors import ConfigError
    from stagepose.show.bench import bench_pipeline
    from stagepose.show.cli import with_monitor
    from stagepose.show.config import load_show
    from stagepose.show.sources.uri import FileSpec, parse_source_uri

    if args.frames < 1:
        raise ConfigError(f"--frames {args.frames}: must be >= 1")
    # with --video the clip replaces the first camera's feed, so a replay-only show (cameras without uri) runs too
    show = load_show(args.show) if args.video is None else load_show(args.show, replay_inputs=1)
    video = args.video
    if video is None:
        spec = parse_source_uri(show.active_cameras[0].uri, base_dir=show.base_dir)
        if not isinstance(spec, FileSpec):
            raise ConfigError("the first camera is not a video file: pass --video FILE")
        video = Path(spec.path)
    if not video.is_file():
        raise ConfigError(f"--video {video}: file not found")
    show = with_monitor(show, args.monitor)
    wait = None if args.monitor is None else args.monitor_wait
    if args.monitor_client and args.monitor is None:
        raise ConfigError("--monitor-client goes with --monitor")
    _print_json(bench_pipeline(show, video, args.frames, monitor_wait_s=wait, loop=args.loop,
                               monitor_client=args.monitor_client))  # fmt: skip
    return 0


# -------------------------------------------------------------------------------------------- live


def _register_live(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "live",
        help="capture-to-send latency of a show run live for a while (the status line's numbers, as JSON)",
        description="Run the show as `stagepose live` does (cameras in real time, OSC sent, record written) for "
        "--duration seconds, without the status board, and print the capture-to-send latency per camera, the "
        "frames processed per second and the pipeline stage times (a multiview show adds its 3D steps: skew, "
        "waits, triangulation, capture-to-send). Run it on a quiet machine: what else runs shares the cores.",
    )
    parser.add_argument("--show", required=True, type=Path, help="show config YAML")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds to run (15)")
    parser.add_argument("--spin-wait", action="store_true",
                        help="ONNX Runtime workers busy-wait between operators (model.spin_wait: true)")  # fmt: skip
    parser.set_defaults(func=_live)


def _live(args: argparse.Namespace) -> int:
    import dataclasses
    import io

    from stagepose.errors import ConfigError
    from stagepose.show.config import load_show
    from stagepose.show.live import run_live

    if not 0 < args.duration <= 3600:
        raise ConfigError(f"--duration {args.duration}: must be in (0, 3600] seconds")
    show = load_show(args.show)
    model = dataclasses.replace(show.model, spin_wait=True) if args.spin_wait else show.model
    show = dataclasses.replace(show, model=model, run=dataclasses.replace(show.run, max_duration_s=args.duration))
    summary = run_live(show, status_stream=io.StringIO())
    _print_json({
        "show": str(args.show), "duration_s": args.duration, "backend": summary.backend,
        "spin_wait": show.model.spin_wait, "stopped_by": summary.stopped_by,
        "fps": {cid: round(n / args.duration, 1) for cid, n in summary.frames.items()},
        "capture_to_send_ms": summary.latency_ms, "stages_ms": summary.stage_ms,
        **({"multiview": summary.multiview} if summary.multiview else {}),
    })  # fmt: skip
    return 0 if not summary.show_failed else 3


# ----------------------------------------------------------------------------------------- sources


def _register_sources(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "sources",
        help="decode cost of a video per frame: PyAV on one thread, + BGR, and through the file source",
        description="Milliseconds per frame for PyAV decode on one thread, decode + BGR conversion on one "
        "thread (the CPU cost of a frame) and the threaded FileSource in fast lossless mode (the wall time "
        "per frame, thread hand-off included), each the best of --repeat runs.",
    )
    parser.add_argument("video", type=Path, metavar="VIDEO", help="a local video file")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement, the best counts (3)")
    parser.add_argument("--frames", type=int, help="at most this many frames per run (default: the whole clip)")
    parser.set_defaults(func=_sources)


def _sources(args: argparse.Namespace) -> int:
    from stagepose.show.sources.bench import bench_sources

    _print_json(bench_sources(args.video, repeat=args.repeat, max_frames=args.frames))
    return 0


# ------------------------------------------------------------------------------------------- train


def _register_train(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "train",
        help="training throughput (images/s) of model presets, optionally with a teacher",
        description="Time forward + backward + RMSprop step on random batches of the training shape (data "
        "loading excluded; `stagepose data check SPEC --benchmark N` measures that).",
    )
    parser.add_argument("presets", nargs="+", metavar="PRESET", help="e.g. lshm-2 lshm-4 teacher-hg8")
    parser.add_argument("--teacher", help="add this teacher preset's forward pass (distillation)")
    parser.add_argument("--input-size", type=int, default=256, metavar="PX", help="square input side (256)")
    parser.add_argument("--batch-size", type=int, default=6, help="images per step (6, the paper's)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps (20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (3)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--no-amp", action="store_true", help="float32 on CUDA")
    parser.add_argument("--table", action="store_true", help="print one line per preset instead of JSON")
    parser.set_defaults(func=_train)


def _train(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from stagepose.train.bench import benchmark_training

    results = []
    for preset in args.presets:
        result = benchmark_training(
            preset, teacher=args.teacher, input_size=(args.input_size, args.input_size), batch_size=args.batch_size,
            steps=args.steps, warmup=args.warmup, device=args.device, amp=not args.no_amp,
        )  # fmt: skip
        print(result.line(), flush=True, file=sys.stdout if args.table else sys.stderr)
        results.append(asdict(result))
    if not args.table:
        _print_json({"results": results})
    return 0


# --------------------------------------------------------------------------------------------- gpu


def _register_gpu(sub: argparse._SubParsersAction) -> None:
    from stagepose.runtime.gpu_check import DEFAULT_LSPET, GPU_CHECK_PRESETS

    parser = sub.add_parser(
        "gpu",
        help="PyTorch CUDA (no TensorRT needed): FP16 vs FP32 joints on LSPET crops, latency with/without graphs",
        description="For each preset (random weights unless --checkpoint PRESET=FILE): FP16 vs strict FP32 "
        "(TF32 off) heatmaps and decoded joints on real LSPET crops through the torch backend, and latency "
        "(p50/p95/p99, images/s) at each batch, FP32 and FP16, eager and CUDA-graph replay. Needs a CUDA GPU; "
        "`--device cpu` dry-runs it.",
    )
    parser.add_argument("--preset", type=_str_list, default=GPU_CHECK_PRESETS,
                        help=f"comma-separated presets ({','.join(GPU_CHECK_PRESETS)})")  # fmt: skip
    parser.add_argument("--checkpoint", type=_preset_file, action="append", default=[], metavar="PRESET=FILE",
                        help="trained weights for a preset (repeatable; default: random init)")  # fmt: skip
    parser.add_argument("--input-size", type=int, default=256, metavar="PX", help="square input side (256)")
    parser.add_argument("--lspet", type=Path, default=DEFAULT_LSPET,
                        help=f"LSPET folder, joints.mat and images/ ({DEFAULT_LSPET})")  # fmt: skip
    parser.add_argument("--crops", type=int, default=64, help="LSPET crops for the FP16 comparison (64)")
    parser.add_argument("--batch", type=_int_list, default=(1, 8), help="batch sizes to time (1,8)")
    parser.add_argument("--runs", type=int, default=200, help="timed calls per case (200)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed calls first (20)")
    parser.add_argument("--device", default="cuda:0", help="CUDA device (cuda:0); cpu: dry run")
    parser.set_defaults(func=_gpu)


def _gpu(args: argparse.Namespace) -> int:
    from stagepose.runtime.gpu_check import gpu_check_report
    from stagepose.sizes import ImageSize

    report = gpu_check_report(
        args.preset, checkpoints=dict(args.checkpoint), input_size=ImageSize.square(args.input_size),
        lspet=args.lspet, crops=args.crops, batches=args.batch, runs=args.runs, warmup=args.warmup,
        device=args.device, say=lambda line: print(line, file=sys.stderr, flush=True),
    )  # fmt: skip
    _print_json(report)
    return 0


# ------------------------------------------------------------------------------------- triangulate


def _register_triangulate(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "triangulate",
        help="what several cameras add per frame: undistort + triangulate + 3D Kalman (synthetic scene)",
        description="Time the multi-camera path per frame on a synthetic moving scene with pixel noise and one "
        "wrong view: undistortion, consensus + weighted DLT + rejection for all performers in one batch, the 3D "
        "Kalman update and forecast; epipolar association (only needed without zones) is timed apart.",
    )
    parser.add_argument("--cameras", type=int, default=4, help="cameras (4)")
    parser.add_argument("--performers", type=int, default=2, help="performers, each seen by every camera (2)")
    parser.add_argument("--frames", type=int, default=2000, help="timed frames (2000)")
    parser.add_argument("--warmup", type=int, default=50, help="untimed frames first (50)")
    parser.add_argument("--noise", type=float, default=2.0, metavar="PX", help="2D joint noise in pixels (2)")
    parser.add_argument("--clean", action="store_true",
                        help="no wrong view (default: one camera sees a performer mirrored, every frame)")  # fmt: skip
    parser.set_defaults(func=_triangulate)


def _triangulate(args: argparse.Namespace) -> int:
    from stagepose.errors import ConfigError
    from stagepose.multiview.bench import bench_triangulation

    try:
        report = bench_triangulation(
            args.cameras, args.performers, args.frames, args.warmup, args.noise, wrong_view=not args.clean
        )
    except ValueError as exc:
        raise ConfigError(f"triangulate: {exc}") from None
    _print_json(report)
    return 0


# --------------------------------------------------------------------------------------- multiview


def _register_multiview(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "multiview",
        help="3D from synchronised clips of calibrated cameras: reprojection error, bone-length stability, feet",
        description="Run the show's 2D pipeline over one clip per camera (in the order of --calibration), match "
        "the frames by capture time, triangulate and smooth in 3D, and report the median reprojection error, "
        "per bone the coefficient of variation of its 3D length, and the ankles' height above the floor.",
    )
    parser.add_argument("--calibration", type=Path, nargs="+", required=True, metavar="YAML",
                        help="one calibration file with extrinsics per camera")  # fmt: skip
    parser.add_argument("--input", type=Path, nargs="+", required=True, metavar="VIDEO",
                        help="one synchronised clip per calibration file, same order")  # fmt: skip
    parser.add_argument("--model", type=Path, default=Path("engines/lshm2_campaign_lspet_128.onnx"),
                        help="exported 2D model (engines/lshm2_campaign_lspet_128.onnx)")  # fmt: skip
    parser.add_argument("--reference-2d", choices=("model", "mediapipe"), default="model",
                        help="2D joints from the model (default) or from MediaPipe Pose (offline reference; "
                        "`make install-teacher`)")  # fmt: skip
    parser.add_argument("--frames", type=int, help="at most this many frames per clip")
    parser.add_argument("--min-confidence", type=float, default=0.2, help="2D joints below this are not used (0.2)")
    parser.add_argument("--max-reprojection", type=float, default=25.0, metavar="PX",
                        help="views further than this are dropped (25)")  # fmt: skip
    parser.set_defaults(func=_multiview)


def _multiview(args: argparse.Namespace) -> int:
    from stagepose.errors import ConfigError
    from stagepose.multiview.measure import measure_footage
    from stagepose.multiview.triangulate import TriangulationSettings

    if len(args.calibration) != len(args.input):
        raise ConfigError(f"{len(args.calibration)} calibration files but {len(args.input)} clips: give one clip per "
                          "camera, in the same order")  # fmt: skip
    for video in args.input:
        if not video.is_file():
            raise ConfigError(f"--input {video}: file not found")
    if args.reference_2d == "model" and not args.model.is_file():
        raise ConfigError(f"--model {args.model}: file not found (an exported .onnx with its sidecar)")
    try:
        settings = TriangulationSettings(min_confidence=args.min_confidence, max_reprojection_px=args.max_reprojection)
    except ValueError as exc:
        raise ConfigError(f"multiview: {exc}") from None
    report = measure_footage(args.calibration, args.input, model=args.model, reference=args.reference_2d,
                             max_frames=args.frames, settings=settings,
                             say=lambda line: print(line, file=sys.stderr, flush=True))  # fmt: skip
    _print_json(report)
    return 0
