"""``stagepose convert-show``: rewrite an old one-performer-per-camera show file with a ``performers`` section."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    convert = subparsers.add_parser(
        "convert-show",
        help="rewrite an old show file (performer/zone on each camera) with a 'performers' section",
        description="Moves each camera's performer and zone into a 'performers' section (the form that lets one "
        "camera follow several performers), checks that the new file loads with the same performers, and "
        "leaves the old file alone. YAML comments are not carried over.",
        epilog="example:  stagepose convert-show --show show_configs/old.yaml --out show_configs/new.yaml",
    )
    convert.add_argument("--show", required=True, type=Path, help="the old show file")
    convert.add_argument("--out", required=True, type=Path, help="the new show file (same folder: paths are relative)")
    convert.set_defaults(func=_convert)


def _convert(args: argparse.Namespace) -> int:
    from stagepose.show.convert import convert_show_file

    count = convert_show_file(args.show, args.out)
    print(f"{args.out}: {count} performer(s) under 'performers'; comments of {args.show} were not carried over")
    return 0
