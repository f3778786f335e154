"""The ``stagepose`` command: thin argument parsing that calls one library function per subcommand.

Each area of the package registers its own subcommands (``register(subparsers)`` in its ``cli``
module) so that heavy imports (torch, PyAV, TensorRT) happen only when that subcommand runs.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from stagepose import __version__
from stagepose.errors import StageposeError

# Modules with a ``register(subparsers)`` function, in the order their commands appear in --help.
COMMAND_MODULES: tuple[str, ...] = (
    "stagepose.models.cli",
    "stagepose.data.cli",
    "stagepose.train.cli",
    "stagepose.train.campaign_cli",
    "stagepose.runtime.cli",
    "stagepose.bench_cli",
    "stagepose.show.cli",
    "stagepose.show.probe_cli",
    "stagepose.show.convert_cli",
    "stagepose.show.osc.cli",
    "stagepose.calibration.cli",
)

# Modules a valid install may lack, and how to get them (for the one-line error of a command that needs one).
_FULL_INSTALL = "install stagepose with `make install` (or `make install TORCH=cpu` on a machine without a GPU)"
OPTIONAL_MODULES: dict[str, str] = {
    "torch": _FULL_INSTALL,
    "onnx": _FULL_INSTALL,
    "onnxscript": _FULL_INSTALL,
    "onnxconverter_common": _FULL_INSTALL,
    "tensorrt": "TensorRT comes from NVIDIA's index: see README, \"GPU machines\"",
    "mediapipe": "the offline teacher is an extra: `make install-teacher`",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stagepose",
        description="Markerless motion capture for live shows: camera -> pose -> Kalman -> OSC.",
    )
    parser.add_argument("--version", action="version", version=f"stagepose {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: returns the process exit code (0 ok, 1 failed check, 2 usage or input error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except StageposeError as exc:
        print(f"stagepose {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"stagepose {args.command}: interrupted", file=sys.stderr)
        return 130
    except ModuleNotFoundError as exc:
        # An ONNX-only show machine (`make install-onnx-only`) has no torch or export tools: commands that
        # need them say so in one line instead of a traceback. Other missing modules are bugs: re-raise.
        missing = (exc.name or "").split(".")[0]
        if missing not in OPTIONAL_MODULES:
            raise
        print(f"stagepose {args.command}: error: this command needs {missing!r}, which is not installed here; "
              f"{OPTIONAL_MODULES[missing]}", file=sys.stderr)  # fmt: skip
        return 2
    except BrokenPipeError:
        # The reader went away (`stagepose check --print | head`): not an error of ours. Point stdout at
        # /dev/null so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
