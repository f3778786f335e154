"""``stagepose osc-monitor``: print the OSC messages arriving on a UDP port (check the pose feed)."""

from __future__ import annotations

import argparse


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be in 0..65535, got {value}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "osc-monitor",
        help="print OSC messages received on a UDP port (check the feed to TouchDesigner/Unreal)",
        description="Listen on HOST:PORT and print each OSC bundle (size, sender, timetag age) and message "
        "(address, type tags, first values). Stops on Ctrl-C, after --count messages or after --seconds. "
        "Run it on the receiving machine in place of TouchDesigner/Unreal, or on a spare port.",
    )
    parser.add_argument("--port", type=_port, required=True, help="UDP port to listen on (0: any free port)")
    parser.add_argument(
        "--host", default="127.0.0.1", help="local address to listen on (default 127.0.0.1; 0.0.0.0 = all interfaces)"
    )
    parser.add_argument("--count", type=_positive_int, metavar="N", help="stop after N messages")
    parser.add_argument("--seconds", type=_positive_float, metavar="S", help="stop after S seconds")
    parser.add_argument("--max-args", type=_positive_int, default=9, metavar="N", help="values shown per message")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from stagepose.show.osc.monitor import run_monitor

    run_monitor(host=args.host, port=args.port, count=args.count, seconds=args.seconds, max_args=args.max_args)
    return 0
