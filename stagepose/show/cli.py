"""``stagepose live``, ``stagepose check`` and ``stagepose replay``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stagepose.show.config import ShowConfig

EXIT_SHOW_FAILED = 3  # `live`: the show ran but no camera delivered a usable frame (all failed or refused)


def register(subparsers: argparse._SubParsersAction) -> None:
    live = subparsers.add_parser(
        "live",
        help="run a show: cameras -> pose -> smoothing -> OSC, with a status line per camera",
        description="Run a show until its clips end, Ctrl-C or SIGTERM. Cameras that drop out are "
        "reported lost and reconnect on their own. Exit code: 0 finished, 2 config or input error, "
        "3 show failed (no camera delivered a usable frame).",
    )
    live.add_argument("--show", required=True, type=Path, help="show config YAML (see show_configs/)")
    live.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds")
    live.add_argument("--json", action="store_true", help="print a JSON summary at the end")
    add_monitor_argument(live, "serve the monitor page (docs/monitor.md) from this show")
    live.set_defaults(func=_live)

    check = subparsers.add_parser(
        "check",
        help="validate a show config without starting it: everything `live` would refuse",
        description="Load the show file and check every field's type and range, the URIs and paths it names; "
        "open local clips (size, fps, decodable) and compare calibrations and zones with them; check the NDI "
        "runtime for ndi:// cameras and that the keypoint record can be written. Exit 0 ok, 2 with one line "
        "naming file, line and field.",
    )
    check.add_argument("--show", required=True, type=Path, help="show config YAML")
    check.add_argument("--model", action="store_true", help="also load the model and sidecar, run one inference")
    check.add_argument("--print", action="store_true", help="print the resolved config (with every default) as YAML")
    check.add_argument("--input", nargs="+", type=Path, metavar="VIDEO", default=None,
                       help="check as `replay --input VIDEO...` runs it: input i replaces camera i's feed")  # fmt: skip
    check.set_defaults(func=_check)

    replay = subparsers.add_parser(
        "replay",
        help="run the show pipeline over recorded footage: overlay video, keypoint record, latency summary",
        description="Input i replaces camera i of the show (its performers, zones and calibration kept).",
    )
    replay.add_argument("--show", required=True, type=Path, help="show config YAML")
    replay.add_argument("--input", required=True, nargs="+", type=Path, metavar="VIDEO", help="recorded videos")
    replay.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    replay.add_argument("--realtime", action="store_true", help="pace frames at the video's rate (default: fast)")
    replay.add_argument("--osc", action="store_true", help="send OSC to the show's destinations while replaying")
    replay.add_argument("--rts", action="store_true", help="offline RTS smoothing for the overlay and a second record")
    replay.add_argument("--no-progress", action="store_true", help="no progress bar")
    replay.add_argument("--max-frames", type=_positive_int, default=None, metavar="N",
                        help="stop each input after N frames")  # fmt: skip
    add_monitor_argument(replay, "serve the monitor page (docs/monitor.md) while replaying (with --realtime to watch "
                          "at the video's pace)")  # fmt: skip
    replay.set_defaults(func=_replay)


def monitor_port(text: str) -> int:
    """argparse type of ``--monitor PORT``: a TCP port, 0..65535."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port (0..65535; 0: any free port)")
    return port


def _positive_int(text: str) -> int:
    """argparse type of a count: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 1")
    return value


def add_monitor_argument(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--monitor", nargs="?", const=-1, default=None, type=monitor_port, metavar="PORT",
                        help=f"{what}: at the show file's monitor.host (127.0.0.1 unless it says otherwise) and "
                        "PORT (default monitor.port, 8090)")  # fmt: skip


def with_monitor(show: ShowConfig, port: int | None) -> ShowConfig:
    """``show`` with its monitor turned on by ``--monitor [PORT]`` (None: as the file says)."""
    from dataclasses import replace

    if port is None:
        return show
    monitor = replace(show.monitor, enabled=True, port=show.monitor.port if port < 0 else port)
    return replace(show, monitor=monitor)


def _live(args: argparse.Namespace) -> int:
    """Run the show. Exit code 0: it ran and finished (or was stopped); 2: config or input error
    (before the show); 3 (``EXIT_SHOW_FAILED``): no camera ever delivered a usable frame."""
    from dataclasses import replace

    from stagepose.show.config import load_show
    from stagepose.show.live import run_live

    show = load_show(args.show)
    if args.duration is not None:
        show = replace(show, run=replace(show.run, max_duration_s=args.duration))
    show = with_monitor(show, args.monitor)
    summary = run_live(show)
    print(f"stopped: {summary.stopped_by}; frames {summary.frames}; {summary.osc}")
    if args.json:
        print(json.dumps(summary.__dict__, indent=2, default=str))
    if summary.record_error:
        print(f"stagepose live: warning: the keypoint record was not writing at the end "
              f"({summary.record_lines_lost} lines lost): {summary.record_error}", file=sys.stderr)  # fmt: skip
    if summary.show_failed:  # a supervisor must tell this from a show that ran and finished
        why = "; ".join(f"{cid}: {reason}" for cid, reason in summary.cameras_without_frames.items())
        print(f"stagepose live: show failed: no camera delivered a usable frame ({why})", file=sys.stderr)
        return EXIT_SHOW_FAILED
    return 0


def _check(args: argparse.Namespace) -> int:
    from stagepose.show.check import check_show
    from stagepose.show.config import load_show

    show = load_show(args.show, replay_inputs=len(args.input or []))
    if args.input:
        from dataclasses import replace

        from stagepose.show.replay import replay_cameras

        videos = {c.id: c for c in replay_cameras(show, args.input)}
        show = replace(show, cameras=[videos.get(c.id, c) if c.enabled else c for c in show.cameras])

    def report(line: str) -> None:
        # With --print the whole output stays one valid YAML document: the report lines are comments.
        print(f"# {line.strip()}" if args.print else line)

    if args.print:
        import yaml

        from stagepose.config import to_dict

        resolved = to_dict(show)
        if resolved["monitor"]["token"] is not None:
            resolved["monitor"]["token"] = "***"  # a secret: not into terminals and CI logs
        print(yaml.safe_dump(resolved, sort_keys=False, allow_unicode=True, default_flow_style=None), end="")
    for camera in show.cameras:
        state = "" if camera.enabled else " (disabled)"
        names = ", ".join(p.name for p in show.performers_of(camera.id)) or "none"
        report(f"  camera {camera.id}: {camera.uri} -> performers {names}{state}")
    for dest in show.outputs.osc:
        report(f"  osc {dest.name}: {dest.host}:{dest.port} coords={dest.coords}")
    monitor = show.monitor
    report(f"  monitor: {monitor.url} {'on' if monitor.enabled else 'off (`live --monitor` turns it on)'}"
           f"{', token required' if monitor.token else ', this machine only'}")  # fmt: skip
    check_show(show, args.show, model=args.model, report=report)
    report(f"{args.show}: ok: show {show.show!r}, {len(show.active_cameras)} active camera(s)")
    return 0


def _replay(args: argparse.Namespace) -> int:
    from stagepose.show.config import load_show
    from stagepose.show.replay import run_replay

    show = load_show(args.show, replay_inputs=len(args.input))  # the inputs replace the cameras' feeds
    summary = run_replay(
        with_monitor(show, args.monitor), args.input, args.out, realtime=args.realtime, send_osc=args.osc,
        rts=args.rts, progress=not args.no_progress, monitor=args.monitor is not None, max_frames=args.max_frames,
    )  # fmt: skip
    print(json.dumps({k: (str(v) if isinstance(v, Path) else v) for k, v in summary.__dict__.items()}, indent=2))
    return 0
