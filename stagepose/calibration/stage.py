"""Stage calibration: the homography from (undistorted) image pixels to stage floor metres.

The technician marks four or more points on the floor whose stage coordinates are known (spike marks,
tape crosses, the corners of a dance floor), writes them into a points file and reads their pixel
positions off a frame of the camera. Points file (YAML, read through `stagepose.config`)::

    origin: "downstage centre; x to stage left, y upstage"   # free text, copied into the calibration
    grid_step_m: 1.0                                          # spacing of the drawn stage grid
    camera_guess:                                             # optional: where the camera roughly is
      position: [0.0, -9.0, 5.5]                              # x, y, height above the floor (m)
      look_at: [0.0, 3.0]                                     # floor point at the image centre
    points:
      - {name: DSC, stage: [0.0, 0.0], pixel: [812.0, 1503.5]}
      - {name: DSL, stage: [4.0, 0.0]}                        # pixel not read yet

With fewer than four pixel positions the command draws a grid aid instead of calibrating
(see `stagepose.calibration.aid`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from stagepose.calibration.files import (
    CameraCalibration,
    Intrinsics,
    StageCalibration,
    StagePointRecord,
    load_calibration,
    matrix3,
    round_sig,
    save_calibration,
)
from stagepose.calibration.geometry import CameraPose, apply_homography, pose_from_homography, undistort_px
from stagepose.config import Source, from_dict, load_yaml
from stagepose.errors import ConfigError, DataError

MIN_POINTS = 4
LOO_MIN_POINTS = 5  # leave-one-out needs 4 points left to fit
SUSPECT_MIN_POINTS = 6  # to judge one point, the others must over-determine the fit
# A point is suspect when the others agree among themselves (RMS of their residuals without it) and
# it misses their fit by more than SUSPECT_FACTOR x that RMS and SUSPECT_MIN_CM.
SUSPECT_FACTOR = 3.0
SUSPECT_MIN_CM = 5.0


def _finite(values: tuple[float, ...], what: str) -> None:
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"{what} must be finite numbers, got {list(values)}")


@dataclass(frozen=True)
class StagePoint:
    """A measured point: its stage position in metres ([x, y] on the floor, or [x, y, height] above it)
    and, once read off the frame, its raw pixel position. `calibrate stage` fits the floor points;
    `calibrate extrinsics` uses all of them."""

    name: str
    stage: tuple[float, ...]
    pixel: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ValueError("point name must not be empty")
        if len(self.stage) not in (2, 3):
            raise ValueError(f"stage must be [x, y] (on the floor) or [x, y, height] in metres, got {list(self.stage)}")
        _finite(self.stage, "stage")
        if self.pixel is not None:
            _finite(self.pixel, "pixel")

    @property
    def floor(self) -> tuple[float, float]:
        """(x, y) metres: the point, or the floor point below it."""
        return (self.stage[0], self.stage[1])

    @property
    def world(self) -> tuple[float, float, float]:
        """(x, y, height) metres; height 0 for a floor point."""
        return (self.stage[0], self.stage[1], self.stage[2] if len(self.stage) == 3 else 0.0)

    @property
    def on_floor(self) -> bool:
        return self.world[2] == 0.0


@dataclass(frozen=True)
class CameraGuess:
    """Roughly where the camera is, to draw the points' expected places before any are marked.

    Attributes:
        position: camera (x, y, height above the floor) in stage metres; a tape measure is enough.
        look_at: the stage floor point at the centre of the image.
        roll_deg: camera roll about its view direction (0: horizon level).
        hfov_deg: horizontal field of view, used only when there are no intrinsics yet.
        left_handed: the venue's axes are left-handed: seen from above, +y is clockwise from +x
            (e.g. x to stage right with y upstage).
    """

    position: tuple[float, float, float]
    look_at: tuple[float, float]
    roll_deg: float = 0.0
    hfov_deg: float = 60.0
    left_handed: bool = False

    def __post_init__(self) -> None:
        _finite(self.position + self.look_at + (self.roll_deg, self.hfov_deg), "camera_guess")
        if self.position[2] <= 0:
            raise ValueError(f"position height must be above the floor (> 0 m), got {self.position[2]}")
        if not 5.0 <= self.hfov_deg <= 170.0:
            raise ValueError(f"hfov_deg must be between 5 and 170 degrees, got {self.hfov_deg}")


@dataclass(frozen=True)
class StagePoints:
    """The points file."""

    points: tuple[StagePoint, ...]
    origin: str = ""
    grid_step_m: float = 1.0
    camera_guess: CameraGuess | None = None

    def __post_init__(self) -> None:
        if not self.points:
            raise ValueError("'points' is empty: list the floor points with their stage coordinates")
        seen: set[str] = set()
        for p in self.points:
            if p.name in seen:
                raise ValueError(f"point name {p.name!r} is used twice; names must be unique")
            seen.add(p.name)
        if not 0.05 <= self.grid_step_m <= 20:
            raise ValueError(f"grid_step_m must be between 0.05 and 20 m, got {self.grid_step_m}")


def load_marked_points(
    image: str | Path, points: str | Path, out: Path, intrinsics: str | Path | None
) -> tuple[np.ndarray, StagePoints, Intrinsics | None, CameraCalibration | None, str]:
    """The frame, the points file, and the lens (`_load_intrinsics`), checked against each other.

    Returns:
        (frame, points, intrinsics or None, the calibration they came from, where from).

    Raises:
        ConfigError: unreadable frame or files, a lens measured at another resolution, or a point's pixel
            outside the frame (file, line, field).
    """
    frame = _read_frame(image)
    size = (int(frame.shape[1]), int(frame.shape[0]))
    spec, source = load_points(points)
    lens, existing, lens_from = _load_intrinsics(size, out, intrinsics)
    for i, p in enumerate(spec.points):
        if p.pixel is not None and not (0 <= p.pixel[0] < size[0] and 0 <= p.pixel[1] < size[1]):
            raise ConfigError(
                f"{source.where(('points', i, 'pixel'))}: point {p.name!r} pixel {list(p.pixel)} is outside "
                f"the {size[0]}x{size[1]} frame {Path(image).name}"
            )
    return frame, spec, lens, existing, lens_from


def load_points(path: str | Path) -> tuple[StagePoints, Source]:
    """Read a points file; errors name the file, line and field.

    Returns:
        The points and the line index (to name the line of a point in later messages).
    """
    data, source = load_yaml(path)
    return from_dict(StagePoints, data, source), source


@dataclass
class StageFit:
    """A fitted floor homography and how well it explains the points.

    Attributes:
        H: (3, 3) undistorted pixels -> stage metres.
        names: point names, in order.
        stage_xy: (N, 2) known stage positions (m).
        pixels: (N, 2) raw pixel positions.
        errors_cm: (N,) distance from each known position to where its pixel maps, in cm.
        loo_errors_cm: (N,) the same with the point left out of the fit; None with < 5 points.
        pose: the camera pose recovered from H and K.
        others_rms_cm: (N,) RMS residual of the other points in the fit without point i (how well
            the rest agree among themselves); None with < 5 points.
    """

    H: np.ndarray
    names: list[str]
    stage_xy: np.ndarray
    pixels: np.ndarray
    errors_cm: np.ndarray
    loo_errors_cm: np.ndarray | None
    pose: CameraPose
    others_rms_cm: np.ndarray | None = None

    @property
    def rms_cm(self) -> float:
        return float(np.sqrt(np.mean(self.errors_cm**2)))

    @property
    def max_cm(self) -> float:
        return float(self.errors_cm.max())

    @property
    def loo_rms_cm(self) -> float | None:
        if self.loo_errors_cm is None:
            return None
        return float(np.sqrt(np.mean(self.loo_errors_cm**2)))

    def suspects(self) -> list[tuple[str, float]]:
        """Points the others disagree with (a typo in the stage coordinates, or the wrong mark clicked).

        Returns:
            (name, leave-one-out error in cm) for each point that misses the fit of the others by
            more than SUSPECT_FACTOR x their own RMS and SUSPECT_MIN_CM; needs 6 or more points.
        """
        if self.loo_errors_cm is None or self.others_rms_cm is None or len(self.names) < SUSPECT_MIN_POINTS:
            return []
        out = []
        for name, loo, others in zip(self.names, self.loo_errors_cm, self.others_rms_cm):
            if loo > max(SUSPECT_FACTOR * others, SUSPECT_MIN_CM):
                out.append((name, float(loo)))
        return out

    def calibration(self, origin: str = "") -> StageCalibration:
        loo = self.loo_errors_cm
        records = tuple(
            StagePointRecord(
                name=n,
                stage=(round_sig(s[0], 8), round_sig(s[1], 8)),
                pixel=(round_sig(p[0], 8), round_sig(p[1], 8)),
                error_cm=round_sig(e, 3),
                loo_error_cm=None if loo is None else round_sig(loo[i], 3),
            )
            for i, (n, s, p, e) in enumerate(zip(self.names, self.stage_xy, self.pixels, self.errors_cm))
        )
        loo_rms = self.loo_rms_cm
        return StageCalibration(
            homography=matrix3(self.H / self.H[2, 2] if abs(self.H[2, 2]) > 1e-12 else self.H, 14),
            rms_cm=round_sig(self.rms_cm, 3),
            max_cm=round_sig(self.max_cm, 3),
            loo_rms_cm=None if loo_rms is None else round_sig(loo_rms, 3),
            points=records,
            origin=origin,
        )


def _check_spread(stage_xy: np.ndarray, names: list[str]) -> None:
    """Refuse point sets that do not pin down a plane mapping (all on a line, or 3 of 4 in a line)."""
    centred = stage_xy - stage_xy.mean(axis=0)
    sv = np.linalg.svd(centred, compute_uv=False)
    if sv[0] < 1e-6 or sv[1] / sv[0] < 0.05:
        raise ConfigError(
            f"the points {', '.join(names)} lie (almost) on one line on the stage; spread them over the "
            f"floor area the camera sees (the four corners of the acting area are a good start)"
        )
    if len(stage_xy) == MIN_POINTS:
        for skip in range(4):
            a, b, c = (stage_xy[i] for i in range(4) if i != skip)
            area = abs(float(np.cross(b - a, c - a))) / 2
            longest = max(np.linalg.norm(b - a), np.linalg.norm(c - a), np.linalg.norm(c - b))
            if area < 0.02 * longest**2:
                trio = [names[i] for i in range(4) if i != skip]
                raise ConfigError(
                    f"points {', '.join(trio)} lie on one line; with only four points no three may be in line"
                )


def _fit(undistorted: np.ndarray, stage_xy: np.ndarray) -> np.ndarray | None:
    H, _ = cv2.findHomography(undistorted, stage_xy, 0)  # noqa: N806 - all points, least squares + LM
    return H


def fit_stage(
    names: list[str],
    stage_xy: np.ndarray,
    pixels: np.ndarray,
    K: np.ndarray,  # noqa: N803
    dist: np.ndarray,
) -> StageFit:
    """Fit the floor homography to marked points.

    Args:
        names: point names (N,).
        stage_xy: (N, 2) stage positions in metres.
        pixels: (N, 2) raw pixel positions in the frame.
        K, dist: the camera's intrinsics; pixels are undistorted with them first.

    Raises:
        ConfigError: fewer than 4 points, or points that cannot define a plane mapping.
    """
    stage_xy = np.asarray(stage_xy, dtype=np.float64).reshape(-1, 2)
    pixels = np.asarray(pixels, dtype=np.float64).reshape(-1, 2)
    if len(stage_xy) < MIN_POINTS:
        raise ConfigError(f"{len(stage_xy)} points with pixel positions; at least {MIN_POINTS} are needed")
    _check_spread(stage_xy, names)
    und = undistort_px(pixels, K, dist)
    H = _fit(und, stage_xy)  # noqa: N806
    if H is None:
        raise ConfigError("no homography fits these points; check that pixel and stage entries belong together")
    mapped, _ = apply_homography(H, und)
    errors = np.linalg.norm(mapped - stage_xy, axis=1) * 100.0
    loo = others = None
    if len(stage_xy) >= LOO_MIN_POINTS:
        loo = np.full(len(stage_xy), np.inf)
        others = np.full(len(stage_xy), np.inf)
        for i in range(len(stage_xy)):
            keep = np.arange(len(stage_xy)) != i
            Hi = _fit(und[keep], stage_xy[keep])  # noqa: N806
            if Hi is None:
                continue
            predicted, _ = apply_homography(Hi, und)
            miss = np.linalg.norm(predicted - stage_xy, axis=1) * 100.0
            loo[i] = miss[i]
            others[i] = float(np.sqrt(np.mean(miss[keep] ** 2)))
    pose = pose_from_homography(H, K, stage_xy)
    return StageFit(
        H=H,
        names=list(names),
        stage_xy=stage_xy,
        pixels=pixels,
        errors_cm=errors,
        loo_errors_cm=loo,
        pose=pose,
        others_rms_cm=others,
    )


@dataclass
class StageRun:
    """What `run_stage` did."""

    calibrated: bool
    lines: list[str]
    warnings: list[str]
    out: Path | None = None
    image: Path | None = None  # the check image (calibrated) or the grid aid (not yet)
    fit: StageFit | None = None


def _read_frame(path: str | Path) -> np.ndarray:
    frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if frame is None:
        if not Path(path).exists():
            raise DataError(f"{path}: no such image (--image takes a frame grabbed from the camera)")
        raise DataError(f"{path}: cannot be read as an image (PNG or JPEG expected)")
    return frame


def _load_intrinsics(
    frame_size: tuple[int, int], out: Path, intrinsics_path: str | Path | None
) -> tuple[Intrinsics | None, CameraCalibration | None, str]:
    """Intrinsics from --intrinsics, else from the existing --out file; checks the resolution."""
    path = Path(intrinsics_path) if intrinsics_path is not None else out
    if intrinsics_path is None and not out.exists():
        return None, None, ""
    calibration = load_calibration(path)
    if tuple(calibration.image_size) != frame_size:
        have = f"{calibration.image_size[0]}x{calibration.image_size[1]}"
        raise ConfigError(
            f"{path}: the intrinsics were measured at {have} but the frame is {frame_size[0]}x{frame_size[1]}; "
            f"grab the frame in the same camera mode, or recalibrate the lens at this resolution"
        )
    return calibration.intrinsics, calibration, str(path)


def run_stage(
    image: str | Path,
    points: str | Path,
    out: str | Path,
    *,
    intrinsics: str | Path | None = None,
    check_image: str | Path | None = None,
    aid_image: str | Path | None = None,
) -> StageRun:
    """`stagepose calibrate stage`: fit the floor homography, or draw the grid aid if not enough is marked.

    Args:
        image: a frame from the camera (PNG/JPEG) at the calibrated resolution.
        points: the points file.
        out: the calibration file to write (its intrinsics are used unless ``intrinsics`` is given).
        intrinsics: another calibration file to take the intrinsics from.
        check_image: where to draw the fitted stage grid over the frame (default ``<out>_stage_check.png``).
        aid_image: where to draw the grid aid when fewer than 4 points have pixels
            (default ``<out>_stage_aid.png``).

    Raises:
        ConfigError: bad points file, missing or mismatched intrinsics, degenerate points.
        DataError: the frame cannot be read.
    """
    from stagepose import __version__
    from stagepose.calibration import aid

    out = Path(out)
    frame, spec, lens, existing, lens_from = load_marked_points(image, points, out, intrinsics)
    size = (int(frame.shape[1]), int(frame.shape[0]))
    warnings = [f"point {p.name!r} is {p.world[2]:.2f} m above the floor: left out of the floor fit (it serves "
                f"`stagepose calibrate extrinsics`)" for p in spec.points if not p.on_floor]  # fmt: skip
    floor_points = tuple(p for p in spec.points if p.on_floor)
    if not floor_points:
        raise ConfigError(f"{points}: no floor point (height 0): the stage calibration maps the floor")
    spec = dataclasses.replace(spec, points=floor_points)
    marked = [p for p in spec.points if p.pixel is not None]
    unmarked = [p for p in spec.points if p.pixel is None]

    if len(marked) < MIN_POINTS:
        target = Path(aid_image) if aid_image is not None else out.with_name(out.stem + "_stage_aid.png")
        drawing = aid.draw_aid(frame, spec, lens, camera=out.stem)
        aid.write_image(target, drawing)
        lines = [
            f"not calibrated yet: {len(marked)} of {len(spec.points)} points have pixel positions "
            f"(at least {MIN_POINTS} needed, 6 or more to measure the error)",
            f"wrote the grid aid {target}: read each point's pixel position off it and add "
            f"'pixel: [x, y]' to that point in {points}, then run this command again",
        ]
        if spec.camera_guess is None:
            lines.append(
                "tip: add 'camera_guess: {position: [x, y, height], look_at: [x, y]}' to the points file to "
                "see where each point should appear"
            )
        if lens is None:
            lines.append(
                f"note: {out} has no intrinsics yet; run `stagepose calibrate intrinsics --out {out}` "
                f"(or pass --intrinsics FILE) before calibrating the stage"
            )
        return StageRun(calibrated=False, lines=lines, warnings=warnings, image=target)

    if lens is None:
        raise ConfigError(
            f"{out}: no lens calibration to undistort with; run `stagepose calibrate intrinsics --out {out}` "
            f"first, or pass --intrinsics FILE"
        )
    fit = fit_stage(
        [p.name for p in marked],
        np.array([p.floor for p in marked]),
        np.array([p.pixel for p in marked]),
        lens.K,
        lens.dist,
    )
    warnings += _fit_warnings(fit, unmarked)
    calibration = CameraCalibration(
        version=1,
        image_size=size,
        intrinsics=lens,
        camera=existing.camera if existing is not None and existing.camera else out.stem,
        stage=fit.calibration(spec.origin),
        created_by=f"stagepose {__version__} calibrate stage from {Path(image).name} and {Path(points).name}",
        # the camera's pose in the show's world frame stays with the file it was measured for
        extrinsics=existing.extrinsics if existing is not None and intrinsics is None else None,
    )
    save_calibration(out, calibration)
    target = Path(check_image) if check_image is not None else out.with_name(out.stem + "_stage_check.png")
    aid.write_image(target, aid.draw_check(frame, spec, lens, fit, camera=calibration.camera))
    lines = _report(fit, calibration, lens_from)
    lines.append(f"wrote {out}; check image {target} (the stage grid drawn through the fit)")
    return StageRun(calibrated=True, lines=lines, warnings=warnings, out=out, image=target, fit=fit)


def _fit_warnings(fit: StageFit, unmarked: list[StagePoint]) -> list[str]:
    out = []
    n = len(fit.names)
    if n == MIN_POINTS:
        out.append(
            "4 points fit a homography exactly, so the error is 0 by construction and says nothing; mark 6 or "
            "more points spread over the floor to measure the accuracy"
        )
    for name, err in fit.suspects():
        out.append(
            f"point {name!r} disagrees with the others by {err:.1f} cm (leave-one-out): check its pixel "
            f"position and its stage coordinates"
        )
    height = float(fit.pose.centre[2])
    if not 0.3 <= height <= 60.0:
        out.append(
            f"the fit puts the camera {height:.2f} m above the floor: stage coordinates must be in metres, "
            f"and the points must lie on the floor"
        )
    if unmarked:
        out.append(
            f"{len(unmarked)} point(s) without a pixel position were not used: "
            f"{', '.join(p.name for p in unmarked)} (their predicted places are drawn in the check image)"
        )
    return out


def _report(fit: StageFit, calibration: CameraCalibration, lens_from: str) -> list[str]:
    loo = fit.loo_rms_cm
    w, h = calibration.image_size
    lines = [
        f"stage calibration of {calibration.camera} ({w}x{h}) from {len(fit.names)} points, lens from {lens_from}",
        f"  fit error RMS {fit.rms_cm:.2f} cm, max {fit.max_cm:.2f} cm"
        + (f"; leave-one-out RMS {loo:.2f} cm (each point predicted by the others)" if loo is not None else ""),
        f"  {'point':<12}{'stage x':>9}{'y (m)':>9}{'pixel x':>10}{'y':>10}{'error cm':>10}{'l-o-o cm':>10}",
    ]
    for i, name in enumerate(fit.names):
        s, p = fit.stage_xy[i], fit.pixels[i]
        loo_i = "-" if fit.loo_errors_cm is None else f"{fit.loo_errors_cm[i]:.2f}"
        lines.append(
            f"  {name:<12}{s[0]:>9.3f}{s[1]:>9.3f}{p[0]:>10.1f}{p[1]:>10.1f}{fit.errors_cm[i]:>10.2f}{loo_i:>10}"
        )
    c = fit.pose.centre
    hand = "left-handed" if fit.pose.left_handed else "right-handed"
    lines.append(
        f"  camera at x {c[0]:.2f} m, y {c[1]:.2f} m, {c[2]:.2f} m above the floor "
        f"(stage axes x, y, up are {hand}): check this against the venue"
    )
    return lines
