"""``stagepose calibrate intrinsics|stage|extrinsics|import-qualisys``: venue camera calibration (see
calibration/README.md and docs/multicamera.md)."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "calibrate",
        help="calibrate a camera: lens intrinsics from a chessboard, then the stage floor mapping",
        description="Venue calibration, once per camera and camera mode: first `intrinsics` (lens, from "
        "chessboard photos or a video), then `stage` (image to stage-floor metres, from marked floor points) "
        "and, for several cameras in 3D, `extrinsics` (the camera's pose from measured points). All write the "
        "same calibration/CAMERA.yaml; `import-qualisys` writes all of it from a mocap system's calibration.",
    )
    commands = parser.add_subparsers(dest="calibrate_command", metavar="STEP")
    commands.required = True

    lens = commands.add_parser(
        "intrinsics",
        help="lens calibration from chessboard photos or a video",
        description="Find the chessboard in each image (sub-pixel corners), fit the camera matrix and lens "
        "distortion, and report the RMS and per-image reprojection errors. Rejected images (board not found) "
        "and outlier images are named in a warning.",
    )
    source = lens.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", metavar="DIR", help="folder of chessboard photos (jpg, png, ...)")
    source.add_argument("--video", metavar="FILE", help="video of the chessboard moving in front of the camera")
    lens.add_argument("--board", required=True, metavar="COLSxROWS", help="INNER corners, e.g. 4x7 for 5x8 squares")
    lens.add_argument("--square", required=True, type=float, metavar="METRES", help="square side in metres, e.g. 0.06")
    lens.add_argument(
        "--out", required=True, metavar="FILE", help="calibration file to write, e.g. calibration/cam01.yaml"
    )
    lens.add_argument("--camera", metavar="NAME", help="camera name stored in the file (default: the file name)")
    lens.add_argument(
        "--distortion",
        type=int,
        choices=(4, 5, 8),
        default=4,
        help="distortion terms: 4 = k1 k2 p1 p2 (default; robust), 5 = + k3 (wide lenses), 8 = rational (fisheye-like)",
    )
    lens.add_argument("--every", type=int, metavar="N", help="video: try every N-th frame (default: ~3 per second)")
    lens.add_argument("--max-views", type=int, default=40, metavar="N", help="video: use at most N views (default 40)")
    lens.add_argument("--drop-outliers", action="store_true", help="calibrate again without the outlier images")
    lens.add_argument("--no-progress", action="store_true", help="no progress bar")
    lens.set_defaults(func=_intrinsics)

    stage = commands.add_parser(
        "stage",
        help="image-to-stage-floor mapping from marked floor points",
        description="Fit the homography from undistorted pixels to stage floor metres using 4 or more floor "
        "points with known stage coordinates and their pixel positions in --image; report the error in cm "
        "per point and a check image. If fewer than 4 points have pixel positions, draw a grid aid image to "
        "help find and read them instead.",
    )
    stage.add_argument("--image", required=True, metavar="FRAME", help="a frame from the camera (PNG/JPEG)")
    stage.add_argument("--points", required=True, metavar="YAML", help="floor points file (see calibration/README.md)")
    stage.add_argument(
        "--out", required=True, metavar="FILE", help="calibration file; its intrinsics are used and it is rewritten"
    )
    stage.add_argument("--intrinsics", metavar="FILE", help="take the intrinsics from this calibration file instead")
    stage.add_argument("--check-image", metavar="PNG", help="check image path (default: OUT_stage_check.png)")
    stage.add_argument("--aid-image", metavar="PNG", help="grid aid path (default: OUT_stage_aid.png)")
    stage.set_defaults(func=_stage)

    pose = commands.add_parser(
        "extrinsics",
        help="the camera's place in the show's 3D world frame from 6+ measured points (several cameras, 3D)",
        description="Solve the camera's pose (solvePnP on its lens intrinsics) from 6 or more points with measured "
        "world coordinates in metres (x, y on the floor, optional z up; right-handed) and their pixel positions "
        "in --image; report the reprojection error per point and write a check image. With fewer than 6 pixel "
        "positions, draw the grid aid instead. The points file is the one `calibrate stage` reads.",
    )
    pose.add_argument("--image", required=True, metavar="FRAME", help="a frame from the camera (PNG/JPEG)")
    pose.add_argument("--points", required=True, metavar="YAML", help="points file (see docs/multicamera.md)")
    pose.add_argument(
        "--out", required=True, metavar="FILE", help="calibration file; its intrinsics are used and it is rewritten"
    )
    pose.add_argument("--intrinsics", metavar="FILE", help="take the intrinsics from this calibration file instead")
    pose.add_argument("--check-image", metavar="PNG", help="check image path (default: OUT_extrinsics_check.png)")
    pose.add_argument("--aid-image", metavar="PNG", help="grid aid path (default: OUT_extrinsics_aid.png)")
    pose.set_defaults(func=_extrinsics)

    qualisys = commands.add_parser(
        "import-qualisys",
        help="one calibration file per camera (intrinsics + extrinsics) from a Qualisys .qca.txt",
        description="Read a Qualisys (QTM) calibration and write OUT/<camera>.yaml for each active camera: the "
        "lens, the pose in QTM's world frame (metres, z up) and the floor mapping derived from it.",
    )
    qualisys.add_argument("qca", metavar="QCA", help="the Qualisys calibration, e.g. Calib.qca.txt")
    qualisys.add_argument("--out", required=True, metavar="DIR", help="folder for the files, e.g. calibration/venue/")
    qualisys.add_argument(
        "--size", action="append", default=[], metavar="CAMERA=WxH",
        help="a camera whose video is the calibrated window cropped at the right/bottom (e.g. cam01=1080x1920)",
    )  # fmt: skip
    qualisys.set_defaults(func=_import_qualisys)


def _warn(lines: list[str]) -> None:
    for line in lines:
        print(f"warning: {line}", file=sys.stderr)


def _intrinsics(args: argparse.Namespace) -> int:
    from stagepose.calibration.intrinsics import Board, run_intrinsics

    run = run_intrinsics(
        args.out,
        Board.parse(args.board, args.square),
        images=args.images,
        video=args.video,
        camera=args.camera,
        distortion_terms=args.distortion,
        every=args.every,
        max_views=args.max_views,
        drop_outliers=args.drop_outliers,
        progress=not args.no_progress,
    )
    print("\n".join(run.lines))
    _warn(run.warnings)
    return 0


def _stage(args: argparse.Namespace) -> int:
    from stagepose.calibration.stage import run_stage

    run = run_stage(
        args.image,
        args.points,
        args.out,
        intrinsics=args.intrinsics,
        check_image=args.check_image,
        aid_image=args.aid_image,
    )
    print("\n".join(run.lines))
    _warn(run.warnings)
    return 0 if run.calibrated else 1


def _extrinsics(args: argparse.Namespace) -> int:
    from stagepose.calibration.extrinsics import run_extrinsics

    run = run_extrinsics(
        args.image,
        args.points,
        args.out,
        intrinsics=args.intrinsics,
        check_image=args.check_image,
        aid_image=args.aid_image,
    )
    print("\n".join(run.lines))
    _warn(run.warnings)
    return 0 if run.calibrated else 1


def _import_qualisys(args: argparse.Namespace) -> int:
    from stagepose.calibration.qualisys import import_qualisys, parse_sizes

    run = import_qualisys(args.qca, args.out, parse_sizes(args.size))
    print("\n".join(run.lines))
    _warn(run.warnings)
    return 0
