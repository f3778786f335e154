"""``stagepose data ...``: prepare and inspect training data.

- ``data extract-frames``: sample frames from rehearsal videos for labelling;
- ``data convert-mpii``: official MPII .mat -> train.json / valid.json;
- ``data check SPEC``: load a data set spec, print what was used and skipped, optionally write previews
  and measure loading throughput;
- ``data label``: run a strong pose model (MediaPipe) once over data sets and write a teacher label file;
- ``data label-score FILE``: score a label file against a data set's ground truth (how good the teacher is).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from stagepose.data.label_options import MODES, TEACHERS
from stagepose.data.spec import SPEC_HELP, Split


def register(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser("data", help="prepare and check training data (frames, MPII, specs)",
                                 description="Prepare and check training data.")  # fmt: skip
    commands = data.add_subparsers(dest="data_command", metavar="DATA_COMMAND")
    data.set_defaults(func=lambda args: (data.print_help(), 2)[1])

    extract = commands.add_parser(
        "extract-frames", help="sample frames from rehearsal videos for labelling",
        description="Write JPEGs named <video>_t<seconds>.jpg and a manifest.json. --every takes one frame "
        "per N seconds; --motion takes a frame when it differs from the last saved one by THRESHOLD grey "
        "levels (mean absolute difference of 96-px-wide grey frames, 0..255; about 2 for a performer in a "
        "wide static shot, more for close shots).",
    )  # fmt: skip
    extract.add_argument("--video", nargs="+", required=True, type=Path, metavar="FILE", help="video files")
    extract.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    how = extract.add_mutually_exclusive_group(required=True)
    how.add_argument("--every", type=float, metavar="SECONDS", help="one frame every SECONDS of video")
    how.add_argument("--motion", type=float, metavar="THRESHOLD", help="grey-level change that saves a frame")
    extract.add_argument("--max", type=int, metavar="N", help="at most N frames per video")
    extract.add_argument("--min-gap", type=float, default=0.5, metavar="SECONDS",
                         help="with --motion, least time between saved frames (default 0.5)")  # fmt: skip
    extract.add_argument("--quiet", action="store_true", help="no progress bar")
    extract.set_defaults(func=_extract)

    convert = commands.add_parser(
        "convert-mpii", help="official MPII .mat -> train.json and valid.json",
        description="Read mpii_human_pose_v1_u12_1.mat (scipy) and write OUT/train.json and OUT/valid.json in "
        "the HRNet/mmpose form, with head boxes for PCKh. Use the result as mpii:OUT/train.json:IMAGES.",
    )  # fmt: skip
    convert.add_argument("--mat", required=True, type=Path, metavar="FILE", help="mpii_human_pose_v1_u12_1.mat")
    convert.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    split = convert.add_mutually_exclusive_group()
    split.add_argument("--valid-fraction", type=float, default=0.1, metavar="F",
                       help="share of training images held out for validation (default 0.1, fixed by name hash)")
    split.add_argument("--valid-images", type=Path, metavar="FILE",
                       help="validation images: a .txt of names, or a JSON list with 'image' (e.g. HRNet's valid.json)")
    convert.add_argument("--single-person", action="store_true", help="keep only persons MPII marks as separated")
    convert.set_defaults(func=_convert)

    check = commands.add_parser(
        "check", help="load a data set spec and report what is used and skipped",
        description="Build the data set as training would and print its summary. " + SPEC_HELP,
    )  # fmt: skip
    check.add_argument("spec", metavar="SPEC", help="data set spec, e.g. lspet:data/lspet@8500:9000")
    check.add_argument("--split", choices=("train", "val"), help="default: val, or train with --augment")
    check.add_argument("--input-size", type=int, default=256, metavar="PX", help="square crop side (default 256)")
    check.add_argument("--augment", action="store_true", help="apply the default training augmentation")
    check.add_argument("--preview", type=Path, metavar="DIR", help="write preview PNGs of samples here")
    check.add_argument("--count", type=int, default=16, metavar="N", help="previews to write (default 16)")
    check.add_argument("--benchmark", type=int, metavar="N", help="measure loading throughput over N samples")
    check.add_argument("--workers", type=int, default=1, metavar="W", help="DataLoader workers for --benchmark")
    check.add_argument("--json", action="store_true", help="print the summary as JSON")
    check.set_defaults(func=_check)

    label = commands.add_parser(
        "label", help="label data once with a strong pose model, for teacher.labels",
        description="Run a pose model over the training split of each data spec (validation images are never "
        "labelled) and write a teacher label file (JSON, one entry per line; .json.gz compresses it) for "
        "`teacher.labels` in an experiment config. The file is saved every minute and on Ctrl-C; the same "
        "command continues an interrupted run. The mediapipe teacher needs `make install-teacher`. " + SPEC_HELP,
    )  # fmt: skip
    label.add_argument("--data", nargs="+", required=True, metavar="SPEC",
                       help="data set specs, e.g. lspet:data/lspet or frames:venue/frames")  # fmt: skip
    label.add_argument("--out", required=True, type=Path, metavar="FILE", help="label file (.json or .json.gz)")
    label.add_argument("--teacher", default="mediapipe", choices=TEACHERS, help="the model (default mediapipe)")
    label.add_argument("--mode", default="both", choices=MODES,
                       help="what the model sees: the person crop, the whole image, or both keeping the more "
                       "confident (default both; twice the time, the most accurate on LSPET)")  # fmt: skip
    label.add_argument("--boxes-out", type=Path, metavar="FILE",
                       help="also write a person boxes file for the frames: specs, from the labels (one box per "
                       "frame); train on them as frames:DIR?boxes=FILE instead of centre crops")  # fmt: skip
    label.add_argument("--overwrite", action="store_true", help="start FILE afresh instead of continuing it")
    label.add_argument("--quiet", action="store_true", help="no progress bar")
    label.set_defaults(func=_label)

    score = commands.add_parser(
        "label-score", help="score a label file against ground truth (how good is the teacher?)",
        description="PCK of the teacher's labels against the ground truth of a labelled data spec (the split "
        "given by --split), as `stagepose eval` scores a model. Unlabelled entries count as misses.",
    )  # fmt: skip
    score.add_argument("labels", type=Path, metavar="FILE", help="label file from stagepose data label")
    score.add_argument("--data", required=True, metavar="SPEC", help="labelled data spec, e.g. lspet:data/lspet@0:200")
    score.add_argument("--split", choices=("train", "val"), default="train", help="default: train")
    score.add_argument("--json", action="store_true", help="print the result as JSON")
    score.set_defaults(func=_label_score)


def _extract(args: argparse.Namespace) -> int:
    from stagepose.data.extract import extract_frames

    frames = extract_frames(args.video, args.out, every_s=args.every, motion=args.motion, max_frames=args.max,
                            min_gap_s=args.min_gap, progress=not args.quiet)  # fmt: skip
    print(f"wrote {len(frames)} frames and manifest.json to {args.out}")
    return 0


def _convert(args: argparse.Namespace) -> int:
    from stagepose.data.convert_mpii import convert_mpii

    report = convert_mpii(args.mat, args.out, valid_fraction=args.valid_fraction, valid_images=args.valid_images,
                          single_person_only=args.single_person)  # fmt: skip
    print(report)
    return 0


def _check(args: argparse.Namespace) -> int:
    from stagepose.data.augment import AugmentConfig
    from stagepose.data.check import measure_throughput, write_previews
    from stagepose.data.registry import build_dataset

    split: Split = args.split or ("train" if args.augment else "val")
    dataset = build_dataset(args.spec, split=split, input_size=(args.input_size, args.input_size),
                            augment=AugmentConfig() if args.augment else None)  # fmt: skip
    result: dict[str, object] = {"summary": dataset.summary().to_json(), "metric": dataset.metric}
    if args.preview:
        result["previews"] = [str(p) for p in write_previews(dataset, args.preview, args.count)]
    if args.benchmark:
        result["samples_per_s"] = round(measure_throughput(dataset, args.benchmark, args.workers), 1)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(dataset.summary())
    print(f"  metric: {'PCKh@0.5' if dataset.metric == 'pckh' else 'PCK@0.2 (torso)'}")
    if args.preview:
        print(f"  previews: {len(result['previews'])} in {args.preview}")  # type: ignore[arg-type]
    if args.benchmark:
        print(f"  loading: {result['samples_per_s']} samples/s with {args.workers} worker(s) at {args.input_size} px")
    return 0


def _label(args: argparse.Namespace) -> int:
    from stagepose.data.label import label_data

    report = label_data(args.data, args.out, teacher=args.teacher, mode=args.mode, overwrite=args.overwrite,
                        progress=not args.quiet, boxes_out=args.boxes_out)  # fmt: skip
    print(report)
    return 0


def _label_score(args: argparse.Namespace) -> int:
    from stagepose.data.label_score import score_labels
    from stagepose.data.registry import build_dataset
    from stagepose.data.teacher_labels import read_labels
    from stagepose.metrics import table2_header, table2_row

    labels = read_labels(args.labels)
    score = score_labels(labels, build_dataset(args.data, split=args.split))
    if args.json:
        print(json.dumps({"labels": str(args.labels), "data": args.data, **score.to_json()}, indent=2))
        return 0
    print(f"{args.labels} ({labels.teacher.name}, {labels.teacher.software}, mode {labels.teacher.mode}) "
          f"against {args.data}: {score.result.name}")  # fmt: skip
    print(table2_header())
    print(table2_row("teacher labels", score.result))
    print(f"limb joints: {score.result.limb_mean:.1f} %; a person for {score.with_labels} of {score.entries} "
          f"entries, {score.missing} never labelled")  # fmt: skip
    return 0
