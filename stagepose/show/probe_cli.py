"""``stagepose probe``: a source's size, frame rate and codec, and a still to write zones with."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    probe = subparsers.add_parser(
        "probe",
        help="what a camera delivers (size, fps, codec) and a still with a pixel grid, zone and stage grid",
        description="Open a source as a show would, wait for its first frame, print its size, frame rate and "
        "codec, and save a still with a labelled pixel grid to write the camera's zone from. With --show "
        "(and --camera when the show has several), the camera's zone and calibration are drawn and checked "
        "against the frame; URI may then be left out.",
        epilog="examples:  stagepose probe rtsp://10.0.0.5/stream1 --out cam1.jpg;  "
        "stagepose probe --show show_configs/demo.yaml;  stagepose probe webcam:0 --zone 0,250 1080,250 1080,1500",
    )
    probe.add_argument("uri", nargs="?", metavar="URI", help="source address (default: the show camera's)")
    probe.add_argument("--show", type=Path, help="show config YAML: draw the camera's zone and calibration")
    probe.add_argument("--camera", metavar="ID", help="camera of --show (needed when it has several)")
    probe.add_argument("--zone", nargs="+", metavar="X,Y", help="draw this zone (3+ image points in pixels)")
    probe.add_argument("--calibration", type=Path, metavar="FILE", help="draw this calibration's stage grid")
    probe.add_argument("--out", type=Path, metavar="IMAGE", help="still (.jpg/.png; default probe_<camera>.jpg)")
    probe.add_argument("--timeout", type=float, default=10.0, metavar="S", help="wait this long for a frame (10)")
    probe.set_defaults(func=_probe)


def _zone(points: list[str]) -> list[tuple[float, float]]:
    from stagepose.errors import ConfigError

    zone = []
    for text in points:
        try:
            x, y = (float(v) for v in text.split(","))
        except ValueError:
            raise ConfigError(
                f"--zone: {text!r} is not a point X,Y in pixels (e.g. --zone 0,0 640,0 640,480)"
            ) from None
        zone.append((x, y))
    if len(zone) < 3:
        raise ConfigError(f"--zone needs at least 3 points X,Y, got {len(zone)}")
    return zone


def _probe(args: argparse.Namespace) -> int:
    from stagepose.calibration.files import load_calibration
    from stagepose.errors import ConfigError
    from stagepose.show import probe

    if args.timeout <= 0:
        raise ConfigError(f"--timeout must be > 0, got {args.timeout}")
    base_dir: Path | None = None
    uri: str | None = args.uri
    zone = _zone(args.zone) if args.zone else None
    calibration_path: Path | None = args.calibration
    name = "probe"
    if args.show is not None:
        from stagepose.show.config import load_show

        show = load_show(args.show)
        cameras = {c.id: c for c in show.cameras}
        if args.camera is None and len(show.active_cameras) != 1:
            raise ConfigError(f"{args.show} has {len(show.active_cameras)} cameras: pick one with --camera "
                              f"({', '.join(cameras)})")  # fmt: skip
        camera = cameras.get(args.camera) if args.camera else show.active_cameras[0]
        if camera is None:
            raise ConfigError(f"{args.show} has no camera {args.camera!r}; cameras: {', '.join(cameras)}")
        name = camera.id
        if uri is None:
            if not camera.uri:
                raise ConfigError(f"{args.show}: camera {camera.id!r} has no uri: give URI")
            uri, base_dir = camera.uri, Path(show.base_dir)
        if zone is None:  # the zone of the camera's first performer
            zone = next((p.zone(camera.id) for p in show.performers_of(camera.id)), None)
        if calibration_path is None and camera.calibration:
            calibration_path = show.resolve(camera.calibration)
    elif args.camera is not None:
        raise ConfigError("--camera needs --show")
    if uri is None:
        raise ConfigError("give a source URI (e.g. rtsp://10.0.0.5/stream1, webcam:0, clip.mp4) or --show")

    spec = probe.parse_uri(uri, base_dir)
    calibration = load_calibration(calibration_path) if calibration_path is not None else None
    result = probe.probe_source(spec, timeout_s=args.timeout)
    report = result.lines()
    if zone is not None:
        report += probe.zone_notes(zone, result.size)
    status = 0
    if calibration is not None:
        misfit = probe.calibration_fits(calibration, result.size, str(calibration_path))
        if misfit:
            report.append(f"calibration  ! {misfit}")
            status = 1  # the show would refuse this calibration
        elif calibration.stage is None:
            report.append(f"calibration  {calibration_path}: lens only, no stage floor yet (stagepose calibrate stage)")
        else:
            report.append(f"calibration  {calibration_path}: fits; stage floor grid drawn")
    out = args.out or Path(f"probe_{name}.jpg")
    still = probe.draw_still(result.image, report, zone=zone, calibration=calibration, title=f"stagepose probe {name}")
    report.append(f"still        {probe.write_still(out, still)}")
    print("\n".join(report))
    return status
