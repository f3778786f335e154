"""Runtime use of a calibration: undistort keypoints and place performers on the stage floor.

The show's pose pipeline reads every camera's calibration when it is built, before the show starts
(`load_checked_calibration`): an unreadable or invalid file (non-finite or singular homography), or
one without the stage homography the show needs, stops the show with a message naming the camera and
the file. The file must also fit the camera's frame size: a file camera's clip is measured then too,
so a misfit stops the show as well; a live feed's size is only known at its first frame, so a misfit
there refuses that camera's frames (reported lost, with the reason) while the other cameras go on.
`stagepose check` runs the same checks against local clips. Per-frame calls do not raise for missing
or odd keypoints, they return NaN or None.

Floor position of a performer (`StageMapper.locate_floor`), in order of preference:

1. **ankles**: each confident ankle's ray is followed down to ``ANKLE_HEIGHT_M`` above the floor
   (`StageMapper.to_stage_at_height`). The ankle joint is not on the floor: stopping at height 0
   would put the performer ``ankle height x distance / camera height`` too far from the camera,
   ~10 cm for a camera 5 m up and 8 m away. The floor points of both ankles are averaged.
2. **pelvis_proportions** (feet not seen): the performer is taken to stand upright, with the pelvis
   at 0.53 and the head top / upper neck / thorax at 1.0 / 0.87 / 0.818 of their stature (Drillis &
   Contini 1966, as tabulated in Winter, *Biomechanics and Motor Control of Human Movement*). Both
   joints' rays then fix the point on the floor below the pelvis and the stature, without assuming
   anyone's height. Refused when the solution is implausible (stature outside 1.0-2.3 m, or the two
   joints not above each other within 0.25 m: bending, lying, jumping).
3. **pelvis_height**: the pelvis ray is intersected with the plane at ``DEFAULT_PELVIS_HEIGHT_M``
   (an adult of 1.70 m); the error grows with the difference from the real pelvis height times
   distance / camera height.

The pelvis is the pelvis joint, or the mid-point of the hips when only they are confident. A floor
position needs the camera pose, recovered from the stage homography and the camera matrix.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from stagepose.calibration.files import CameraCalibration, load_calibration
from stagepose.calibration.geometry import (
    CameraPose,
    apply_homography,
    as_points,
    pose_from_homography,
    undistort_px,
)
from stagepose.errors import ConfigError
from stagepose.skeleton import NUM_JOINTS, Joint

ANKLE_HEIGHT_M = 0.07  # ankle joint above the floor: 0.039 x stature (1.75 m)
PELVIS_FRACTION = 0.53
# Upper-body joints used with the pelvis, best first (longest baseline), with their fraction of stature.
UPPER_FRACTIONS: tuple[tuple[Joint, float], ...] = (
    (Joint.head_top, 1.0),
    (Joint.upper_neck, 0.87),
    (Joint.thorax, 0.818),
)
DEFAULT_PELVIS_HEIGHT_M = PELVIS_FRACTION * 1.70
STATURE_RANGE_M = (1.0, 2.3)
MAX_LEAN_M = 0.25  # largest horizontal offset between pelvis and upper joint accepted as "upright"
DEFAULT_MIN_CONF = 0.3

FloorMethod = Literal["ankles", "pelvis_proportions", "pelvis_height"]


@dataclass(frozen=True)
class FloorEstimate:
    """Where a performer stands.

    Attributes:
        x, y: stage floor position in metres.
        method: which rule gave it (see the module docstring).
        stature_m: the estimated stature (pelvis_proportions only), else None.
    """

    x: float
    y: float
    method: FloorMethod
    stature_m: float | None = None


class StageMapper:
    """Pixel keypoints of one camera -> undistorted pixels and stage floor metres.

    Args:
        calibration: the camera's calibration.
        image_size: (width, height) of the frames the runtime will pass pixels from.
        source: the file name, for error messages.
        require_stage: refuse a calibration without a stage homography (the default: the show
            needs stage positions; pass False to only undistort).

    Raises:
        ConfigError: the calibration's resolution differs from ``image_size``, or it has no stage
            homography while ``require_stage``.
    """

    def __init__(
        self,
        calibration: CameraCalibration,
        image_size: tuple[int, int],
        source: str = "<calibration>",
        require_stage: bool = True,
    ):
        have = (int(calibration.image_size[0]), int(calibration.image_size[1]))
        want = (int(image_size[0]), int(image_size[1]))
        if have != want:
            raise ConfigError(
                f"{source}: calibrated at {have[0]}x{have[1]} but camera '{calibration.camera or '?'}' delivers "
                f"{want[0]}x{want[1]}; set the camera to {have[0]}x{have[1]} or recalibrate at {want[0]}x{want[1]} "
                f"(`stagepose calibrate intrinsics`, then `stagepose calibrate stage`)"
            )
        _check_stage(calibration, source, require_stage)
        self.calibration = calibration
        self.source = source
        self.image_size = want
        self._K = calibration.intrinsics.K
        self._dist = calibration.intrinsics.dist
        self._H: np.ndarray | None = None
        self._pose: CameraPose | None = None
        if calibration.stage is not None:
            self._H = calibration.stage.H
            self._pose = pose_from_homography(self._H, self._K, self._seen_floor(calibration))

    @classmethod
    def from_file(cls, path: str | Path, image_size: tuple[int, int], *, require_stage: bool = True) -> StageMapper:
        """Load ``path`` and check it against the camera's ``image_size`` (width, height).

        Raises:
            ConfigError: unreadable or invalid file, resolution mismatch, no stage homography.
        """
        return cls(load_calibration(path), image_size, source=str(path), require_stage=require_stage)

    def _seen_floor(self, calibration: CameraCalibration) -> np.ndarray:
        """Stage points known to be in view (fix the sign of the pose decomposition)."""
        stage = calibration.stage
        if stage is not None and stage.points:
            return np.array([p.stage for p in stage.points])
        w, h = self.image_size
        bottom = undistort_px(np.array([[w / 2, 0.9 * h]]), self._K, self._dist)
        return apply_homography(stage.H, bottom)[0] if stage is not None else np.zeros((1, 2))

    @property
    def has_stage(self) -> bool:
        return self._H is not None

    @property
    def camera_position(self) -> np.ndarray | None:
        """(3,) camera (x, y, height) in stage metres, or None without a stage calibration."""
        return None if self._pose is None else self._pose.centre

    def undistort_points(self, points_px: np.ndarray) -> np.ndarray:
        """(N, 2) raw pixels -> (N, 2) undistorted pixels (same camera matrix); NaN rows stay NaN."""
        return undistort_px(points_px, self._K, self._dist)

    def _stage_parts(self) -> tuple[np.ndarray, CameraPose]:
        if self._H is None or self._pose is None:
            raise ConfigError(f"{self.source}: no stage calibration; run `stagepose calibrate stage` first")
        return self._H, self._pose

    def to_stage(self, points_px: np.ndarray) -> np.ndarray:
        """(N, 2) raw pixels of points ON the floor -> (N, 2) stage (x, y) metres.

        NaN for NaN input and for pixels at or above the horizon (they never meet the floor).
        """
        H, pose = self._stage_parts()  # noqa: N806
        und = self.undistort_points(points_px)
        out, _ = apply_homography(H, und)
        ok = np.isfinite(und).all(axis=1)
        below = np.zeros(len(und), dtype=bool)
        if ok.any():
            below[ok] = pose.rays(self._K, und[ok])[:, 2] < 0
        out[~below] = np.nan
        return out

    def to_stage_at_height(self, points_px: np.ndarray, height_m: float) -> np.ndarray:
        """(N, 2) raw pixels of points ``height_m`` above the floor -> (N, 2) the stage (x, y) below them.

        The ray through a pixel meets the floor at ``F`` (the homography) and passes through the camera
        ``C``; the point at height h on it is ``F + (C - F) h / C_z``. Using the homography for ``F``
        keeps this consistent with `to_stage` (the camera position comes from the pose recovered from
        the homography). NaN where the ray never reaches that height in front of the camera.
        """
        H, pose = self._stage_parts()  # noqa: N806
        und = self.undistort_points(points_px)
        floor, _ = apply_homography(H, und)
        centre = pose.centre
        out = floor + (centre[:2] - floor) * (height_m / centre[2])
        ok = np.isfinite(und).all(axis=1) & np.isfinite(floor).all(axis=1)
        valid = np.zeros(len(und), dtype=bool)
        if ok.any():
            down = pose.rays(self._K, und[ok])[:, 2] < 0
            # a ray going down reaches heights below the camera, a ray going up heights above it
            valid[ok] = np.where(down, height_m < centre[2], height_m > centre[2])
        out[~valid] = np.nan
        return out

    def head_pixels(self, feet_px: np.ndarray, height_m: float) -> np.ndarray:
        """(N, 2) raw pixels of feet on the floor -> (N, 2) raw pixels ``height_m`` straight above them
        (where the head of a person that tall standing there is); NaN where the floor is not seen.

        Search windows use it: the stage calibration says how tall a person is at each floor point.
        """
        _, pose = self._stage_parts()
        floor = self.to_stage(feet_px)
        points = np.column_stack([floor, np.full(len(floor), float(height_m))])
        out = np.full((len(floor), 2), np.nan)
        ok = np.isfinite(floor).all(axis=1)
        if ok.any():
            out[ok] = pose.project(self._K, self._dist, points[ok])
        return out

    def locate_floor(
        self, joints_px: np.ndarray, confidence: np.ndarray, min_conf: float = DEFAULT_MIN_CONF
    ) -> FloorEstimate | None:
        """Stage floor position of one performer from their 16 MPII joints (see the module docstring).

        Args:
            joints_px: (16, 2) raw pixel positions in the full camera frame, MPII order
                (`stagepose.skeleton.Joint`); NaN where unknown.
            confidence: (16,) joint confidences; joints below ``min_conf`` (or NaN) are ignored.
            min_conf: confidence threshold.

        Returns:
            The estimate, or None when neither ankles nor pelvis/hips are confident, or their rays
            do not meet the floor.
        """
        _, pose = self._stage_parts()
        joints = as_points(joints_px, "joints_px")
        conf = np.asarray(confidence, dtype=np.float64).reshape(-1)
        if len(joints) != NUM_JOINTS or len(conf) != NUM_JOINTS:
            raise ValueError(f"expected {NUM_JOINTS} joints and confidences, got {joints.shape} and {conf.shape}")
        ok = np.isfinite(joints).all(axis=1) & np.isfinite(conf) & (conf >= min_conf)
        centre = pose.centre

        ankles = [j for j in (Joint.r_ankle, Joint.l_ankle) if ok[j]]
        if ankles:
            feet = self.to_stage_at_height(joints[ankles], ANKLE_HEIGHT_M)
            feet = feet[np.isfinite(feet).all(axis=1)]
            if len(feet):
                x, y = feet.mean(axis=0)
                return FloorEstimate(float(x), float(y), "ankles")

        if ok[Joint.pelvis]:
            pelvis_px = joints[Joint.pelvis]
        elif ok[Joint.r_hip] and ok[Joint.l_hip]:
            pelvis_px = 0.5 * (joints[Joint.r_hip] + joints[Joint.l_hip])
        else:
            return None
        und = self.undistort_points(pelvis_px[None])
        ray_p = pose.rays(self._K, und)[0]
        ray_p /= np.linalg.norm(ray_p)
        for joint, fraction in UPPER_FRACTIONS:
            if not ok[joint]:
                continue
            ray_u = pose.rays(self._K, self.undistort_points(joints[joint][None]))[0]
            ray_u /= np.linalg.norm(ray_u)
            found = _upright_solution(centre, ray_p, ray_u, fraction / PELVIS_FRACTION)
            if found is not None:
                x, y, stature = found
                return FloorEstimate(x, y, "pelvis_proportions", stature)
            break  # the best upper joint says "not upright": do not trust a worse one
        xy = self.to_stage_at_height(pelvis_px[None], DEFAULT_PELVIS_HEIGHT_M)[0]
        if not np.isfinite(xy).all():
            return None
        return FloorEstimate(float(xy[0]), float(xy[1]), "pelvis_height")

    def floor_position(
        self, joints_px: np.ndarray, confidence: np.ndarray, min_conf: float = DEFAULT_MIN_CONF
    ) -> tuple[float, float] | None:
        """Stage floor (x, y) in metres of one performer, or None; see `locate_floor`."""
        found = self.locate_floor(joints_px, confidence, min_conf)
        return None if found is None else (found.x, found.y)


def _check_stage(calibration: CameraCalibration, source: str, require_stage: bool) -> None:
    if require_stage and calibration.stage is None:
        raise ConfigError(
            f"{source}: has lens intrinsics but no stage calibration; run `stagepose calibrate stage "
            f"--image FRAME --points POINTS.yaml --out {source}`"
        )


def load_checked_calibration(path: str | Path, *, require_stage: bool = True) -> CameraCalibration:
    """Read a calibration file and check what can be checked before the frame size is known.

    The loader refuses wrong fields and a non-finite or singular homography or camera matrix; this adds
    the stage homography when ``require_stage``. The size check is `StageMapper`'s.

    Raises:
        ConfigError: unreadable or invalid file, no stage homography while ``require_stage``.
    """
    calibration = load_calibration(path)
    _check_stage(calibration, str(path), require_stage)
    return calibration


def _upright_solution(
    centre: np.ndarray, ray_p: np.ndarray, ray_u: np.ndarray, ratio: float
) -> tuple[float, float, float] | None:
    """Floor point under an upright body from its pelvis ray and an upper joint's ray.

    Solves ``centre + u ray_u = (P_x, P_y, ratio P_z)`` with ``P = centre + s ray_p`` (the upper joint
    straight above the pelvis, at ``ratio`` times its height) for s, u in least squares.

    Returns:
        (x, y, stature) or None when the geometry is ill-conditioned or the answer implausible.
    """
    a = np.array([[ray_u[0], -ray_p[0]], [ray_u[1], -ray_p[1]], [ray_u[2], -ratio * ray_p[2]]])
    b = np.array([0.0, 0.0, (ratio - 1.0) * centre[2]])
    if np.linalg.cond(a) > 1e4:
        return None
    (u, s), *_ = np.linalg.lstsq(a, b, rcond=None)
    if s <= 0 or u <= 0:
        return None
    pelvis = centre + s * ray_p
    upper = centre + u * ray_u
    lean = float(np.linalg.norm(upper[:2] - pelvis[:2]))
    stature = float(pelvis[2] / PELVIS_FRACTION)
    if lean > MAX_LEAN_M or not STATURE_RANGE_M[0] <= stature <= STATURE_RANGE_M[1]:
        return None
    return float(pelvis[0]), float(pelvis[1]), stature
