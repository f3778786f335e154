"""Camera extrinsics from measured points: where a camera is in the show's world frame, without mocap.

The technician measures six or more points (floor marks, or points at a known height such as a riser
corner or a truss clamp) in the show's world frame, reads their pixel positions off a frame of the
camera, and `stagepose calibrate extrinsics` solves the camera's pose with OpenCV's solvePnP on the
camera's lens intrinsics. The points file is the one `calibrate stage` reads (same keys), where a
point's ``stage`` may also be ``[x, y, z]``::

    origin: "downstage centre; x to stage left, y upstage, z up"
    points:
      - {name: DSC, stage: [0.0, 0.0], pixel: [812.0, 1503.5]}        # on the floor: z = 0
      - {name: riser_NE, stage: [2.0, 3.0, 0.4], pixel: [1210.0, 980.0]}

The world frame is metres, **right-handed, z up**: seen from above, +y is 90 degrees counter-clockwise
from +x (x to stage left and y upstage is right-handed; x to stage right and y upstage is not).
Every camera of a show must use the same points' frame, so that their extrinsics agree.

It reports each point's reprojection error in pixels, the RMS, the camera's position, and writes a
check image (the frame with the world floor grid drawn through the solved pose, each marked pixel and
where the pose puts its point). With fewer than six pixel positions it writes the grid aid of
`calibrate stage` instead.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from stagepose.calibration.files import (
    CameraCalibration,
    ExtrinsicPointRecord,
    Extrinsics,
    Intrinsics,
    matrix3,
    round_sig,
    save_calibration,
)
from stagepose.calibration.stage import StagePoints
from stagepose.errors import ConfigError

MIN_POINTS = 6
WARN_RMS_PX = 3.0  # above this, a point or the lens is probably wrong


@dataclass
class PoseFit:
    """A solved camera pose and how well it explains the points.

    Attributes:
        names: point names; world: (N, 3) metres; pixels: (N, 2) raw pixels.
        R: (3, 3) world-to-camera rotation; t: (3,) metres.
        errors_px: (N,) distance between each marked pixel and the projection of its world point.
    """

    names: list[str]
    world: np.ndarray
    pixels: np.ndarray
    R: np.ndarray
    t: np.ndarray
    errors_px: np.ndarray

    @property
    def rms_px(self) -> float:
        return float(np.sqrt(np.mean(self.errors_px**2)))

    @property
    def max_px(self) -> float:
        return float(self.errors_px.max())

    @property
    def centre(self) -> np.ndarray:
        """(3,) camera position in the world, metres."""
        return -self.R.T @ self.t

    def extrinsics(self, source: str, world: str = "") -> Extrinsics:
        records = tuple(
            ExtrinsicPointRecord(
                name=n,
                world=tuple(round_sig(v, 8) for v in w),  # type: ignore[arg-type]
                pixel=(round_sig(p[0], 8), round_sig(p[1], 8)),
                error_px=round_sig(e, 3),
            )
            for n, w, p, e in zip(self.names, self.world, self.pixels, self.errors_px)
        )
        return Extrinsics(
            rotation=matrix3(self.R, 15),
            translation_m=tuple(round_sig(v, 12) for v in self.t),  # type: ignore[arg-type]
            rms_px=round_sig(self.rms_px, 3),
            points=records,
            source=source,
            world=world,
        )


def _check_spread(world: np.ndarray, names: list[str]) -> None:
    centred = world - world.mean(axis=0)
    sv = np.linalg.svd(centred, compute_uv=False)
    if sv[0] < 1e-6 or sv[1] / sv[0] < 0.05:
        raise ConfigError(
            f"the points {', '.join(names)} lie (almost) on one line; spread them over the area the camera sees"
        )


def fit_pose(
    names: list[str],
    world: np.ndarray,
    pixels: np.ndarray,
    K: np.ndarray,  # noqa: N803
    dist: np.ndarray,
) -> PoseFit:
    """Solve the camera pose from points with known world positions (solvePnP, then Levenberg-Marquardt).

    Args:
        names: point names (N,).
        world: (N, 3) world positions, metres (z up).
        pixels: (N, 2) raw pixel positions in the frame.
        K, dist: the camera's intrinsics.

    Raises:
        ConfigError: fewer than 6 points, points on a line, no solution, points behind the camera, or a
            pose that puts the camera below the floor (a left-handed set of points).
    """
    world = np.asarray(world, dtype=np.float64).reshape(-1, 3)
    pixels = np.asarray(pixels, dtype=np.float64).reshape(-1, 2)
    if len(world) < MIN_POINTS:
        raise ConfigError(f"{len(world)} points with pixel positions; at least {MIN_POINTS} are needed")
    _check_spread(world, names)
    flag = getattr(cv2, "SOLVEPNP_SQPNP", cv2.SOLVEPNP_ITERATIVE)
    ok, rvec, tvec = cv2.solvePnP(world, pixels, K, dist, flags=flag)
    if not ok:
        raise ConfigError("no camera pose fits these points; check that pixel and stage entries belong together")
    rvec, tvec = cv2.solvePnPRefineLM(world, pixels, K, dist, rvec, tvec)
    R = cv2.Rodrigues(rvec)[0]  # noqa: N806
    t = tvec.reshape(3)
    projected, _ = cv2.projectPoints(world, rvec, tvec, K, dist)
    errors = np.linalg.norm(projected.reshape(-1, 2) - pixels, axis=1)
    depth = world @ R.T + t
    behind = [n for n, z in zip(names, depth[:, 2]) if z <= 0]
    if behind:
        raise ConfigError(f"the fitted pose puts points {behind} behind the camera; check their pixel positions")
    fit = PoseFit(names=list(names), world=world, pixels=pixels, R=R, t=t, errors_px=errors)
    height = float(fit.centre[2])
    if height <= 0:
        raise ConfigError(
            f"the fit puts the camera {-height:.2f} m BELOW the floor: the world axes must be right-handed with z "
            f"up (x to stage left and y upstage, or x to stage right and y downstage); flip one floor axis"
        )
    return fit


@dataclass
class ExtrinsicsRun:
    """What `run_extrinsics` did."""

    calibrated: bool
    lines: list[str]
    warnings: list[str]
    out: Path | None = None
    image: Path | None = None
    fit: PoseFit | None = None


def run_extrinsics(
    image: str | Path,
    points: str | Path,
    out: str | Path,
    *,
    intrinsics: str | Path | None = None,
    check_image: str | Path | None = None,
    aid_image: str | Path | None = None,
) -> ExtrinsicsRun:
    """`stagepose calibrate extrinsics`: solve the camera pose, or draw the grid aid if too few points are marked.

    Args:
        image: a frame from the camera at the calibrated resolution.
        points: the points file.
        out: the calibration file to write (its intrinsics are used unless ``intrinsics`` is given; an
            existing ``stage`` section is kept).
        intrinsics: another calibration file to take the intrinsics from.
        check_image: default ``<out>_extrinsics_check.png``; aid_image: default ``<out>_extrinsics_aid.png``.

    Raises:
        ConfigError: bad points file, missing or mismatched intrinsics, too few or degenerate points.
        DataError: the frame cannot be read.
    """
    from stagepose import __version__
    from stagepose.calibration import aid
    from stagepose.calibration.stage import load_marked_points

    out = Path(out)
    frame, spec, lens, existing, lens_from = load_marked_points(image, points, out, intrinsics)
    size = (int(frame.shape[1]), int(frame.shape[0]))
    marked = [p for p in spec.points if p.pixel is not None]
    if len(marked) < MIN_POINTS:
        target = Path(aid_image) if aid_image is not None else out.with_name(out.stem + "_extrinsics_aid.png")
        aid.write_image(target, aid.draw_aid(frame, spec, lens, camera=out.stem))
        lines = [
            f"not calibrated yet: {len(marked)} of {len(spec.points)} points have pixel positions (at least "
            f"{MIN_POINTS} needed)",
            f"wrote the grid aid {target}: read each point's pixel position off it and add 'pixel: [x, y]' to "
            f"that point in {points}, then run this command again",
        ]
        return ExtrinsicsRun(calibrated=False, lines=lines, warnings=[], image=target)
    if lens is None:
        raise ConfigError(
            f"{out}: no lens calibration to solve the pose with; run `stagepose calibrate intrinsics --out {out}` "
            f"first, or pass --intrinsics FILE"
        )
    fit = fit_pose([p.name for p in marked], np.array([p.world for p in marked]),
                   np.array([p.pixel for p in marked]), lens.K, lens.dist)  # fmt: skip
    source_text = f"solvePnP from {len(marked)} points of {Path(points).name} on {Path(image).name}"
    extrinsics = fit.extrinsics(source_text, spec.origin)
    created = f"stagepose {__version__} calibrate extrinsics from {Path(image).name} and {Path(points).name}"
    if existing is not None and intrinsics is None:
        # the lens of OUT itself: keep the file, its stage section included, and add the pose
        calibration = replace(existing, extrinsics=extrinsics, created_by=created)
    else:
        # a lens from --intrinsics: a fresh file (a stage section of OUT was made with another lens)
        calibration = CameraCalibration(
            version=1, image_size=size, intrinsics=lens, camera=out.stem, extrinsics=extrinsics, created_by=created
        )
    save_calibration(out, calibration)
    target = Path(check_image) if check_image is not None else out.with_name(out.stem + "_extrinsics_check.png")
    aid.write_image(target, draw_check(frame, spec, lens, fit, camera=calibration.camera))
    warnings = []
    if fit.rms_px > WARN_RMS_PX:
        worst = fit.names[int(np.argmax(fit.errors_px))]
        warnings.append(
            f"RMS {fit.rms_px:.1f} px is high: check point {worst!r} ({fit.max_px:.1f} px), its world coordinates and "
            f"pixel, and that the lens calibration is for this camera mode"
        )
    unmarked = [p.name for p in spec.points if p.pixel is None]
    if unmarked:
        warnings.append(f"{len(unmarked)} point(s) without a pixel position were not used: {', '.join(unmarked)}")
    lines = report_lines(fit, calibration, lens_from)
    lines.append(f"wrote {out}; check image {target} (the world floor grid drawn through the solved pose)")
    return ExtrinsicsRun(calibrated=True, lines=lines, warnings=warnings, out=out, image=target, fit=fit)


def report_lines(fit: PoseFit, calibration: CameraCalibration, lens_from: str) -> list[str]:
    w, h = calibration.image_size
    lines = [
        f"extrinsics of {calibration.camera} ({w}x{h}) from {len(fit.names)} points, lens from {lens_from}",
        f"  reprojection error RMS {fit.rms_px:.2f} px, max {fit.max_px:.2f} px",
        f"  {'point':<12}{'x':>8}{'y':>8}{'z (m)':>8}{'pixel x':>10}{'y':>9}{'error px':>10}",
    ]
    for name, wpt, px, err in zip(fit.names, fit.world, fit.pixels, fit.errors_px):
        lines.append(f"  {name:<12}{wpt[0]:>8.3f}{wpt[1]:>8.3f}{wpt[2]:>8.3f}{px[0]:>10.1f}{px[1]:>9.1f}{err:>10.2f}")
    c = fit.centre
    lines.append(
        f"  camera at x {c[0]:.2f} m, y {c[1]:.2f} m, {c[2]:.2f} m above the floor: check this against the venue"
    )
    return lines


def draw_check(frame: np.ndarray, spec: StagePoints, lens: Intrinsics, fit: PoseFit, camera: str = "") -> np.ndarray:
    """The check image: the world floor grid through the pose, marked pixels and reprojections, a side panel."""
    from stagepose.calibration import aid
    from stagepose.calibration.geometry import CameraPose

    h, w = frame.shape[:2]
    image = aid._dimmed(frame)
    aid.draw_pixel_grid(image)
    pose = CameraPose(R=fit.R, t=fit.t)
    project = aid.FloorProjector.from_pose(pose, lens.K, lens.dist, (w, h))
    xy = np.array([p.floor for p in spec.points])
    aid.draw_stage_grid(image, project, aid._grid_extent(xy, spec.grid_step_m, spec.grid_step_m), spec.grid_step_m)
    reprojected = pose.project(lens.K, lens.dist, fit.world)
    for name, px, rp, err in zip(fit.names, fit.pixels, reprojected, fit.errors_px):
        if np.isfinite(rp).all():
            cv2.line(
                image, tuple(np.round(px).astype(int)), tuple(np.round(rp).astype(int)), aid.FITTED, 1, cv2.LINE_AA
            )
            aid._marker(image, rp, aid.FITTED, "", "cross")
        aid._marker(image, px, aid.MEASURED, f"{name} {err:.1f} px", "dot")
    c = fit.centre
    lines: list[tuple[str, tuple[int, int, int]]] = [
        (f"{len(fit.names)} points; reprojection RMS {fit.rms_px:.2f} px, max {fit.max_px:.2f} px", aid.TEXT),
        (f"camera at ({c[0]:.2f}, {c[1]:.2f}) m, {c[2]:.2f} m above the floor", aid.TEXT),
        ("", aid.TEXT),
        ("cyan: the world floor grid (z = 0) through the solved", aid.STAGE_GRID),
        ("pose; it must follow the floor's real lines.", aid.STAGE_GRID),
        ("green dot: marked pixel; red cross: where the pose", aid.MEASURED),
        ("puts that point (error in pixels).", aid.FITTED),
        ("", aid.TEXT),
        ("point\tx, y, z (m)\terror px", aid.TEXT),
    ]
    for name, wpt, err in zip(fit.names, fit.world, fit.errors_px):
        lines.append((f"{name[:12]}\t{wpt[0]:.2f}, {wpt[1]:.2f}, {wpt[2]:.2f}\t{err:.2f}", aid.MEASURED))
    title = f"stagepose extrinsics check{' - ' + camera if camera else ''}"
    return aid._side_panel(image, title, lines)
