"""One time step of several cameras' 2D results -> one smoothed 3D pose per performer.

Replay and live share it, so a rehearsal replay and the show fuse the same way: the step's 2D results
(one `PerformerResult` per camera and performer) are associated across cameras (by the names the zones
give, or by epipolar consistency named by the cameras' vote: the show's ``multiview.association``),
every performer is triangulated in one solve (`stagepose.multiview.triangulate.triangulate_performers`)
and smoothed in metres with real dt (`stagepose.multiview.smoothing`).

`osc_frame` turns a fused pose into what OSC sends for the performer, one bundle per step:
``/pose3d`` in metres; ``/pose`` the 3D skeleton reprojected into the performer's *primary* camera
(the first active camera the show file names for it), so the 2D stream stays in one camera's pixels
even while that camera does not see the performer; ``/stage`` the floor point under the ankles (the
pelvis when no ankle is triangulated), the world frame's x and y (z is up, the floor at z = 0, as
`stagepose calibrate extrinsics` and the Qualisys import set it up).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from stagepose.calibration.files import load_calibration
from stagepose.errors import ConfigError
from stagepose.multiview.associate import PoseView, by_epipolar_named, by_name
from stagepose.multiview.cameras import Rig, RigCamera
from stagepose.multiview.smoothing import make_smoother_3d
from stagepose.multiview.triangulate import Triangulation, TriangulationSettings, triangulate_performers
from stagepose.show.config import CameraConfig, ShowConfig
from stagepose.show.osc import PerformerFrame
from stagepose.show.record import KeypointRecorder
from stagepose.show.result import PerformerResult
from stagepose.skeleton import NUM_JOINTS, Joint

MIN_JOINTS_3D = NUM_JOINTS // 2  # replay summaries: a step "has a 3D pose" of a performer with this many joints
EPIPOLAR_MAX_PX = 40.0  # association: two poses further apart (median symmetric epipolar distance) are two people


def multiview_rig(show: ShowConfig, cameras: Sequence[CameraConfig]) -> Rig:
    """The calibrated cameras of a multiview show, named by camera id, in the order of ``cameras``.

    Raises:
        ConfigError: a camera without a calibration, or one whose calibration has no extrinsics.
    """
    rig_cameras = []
    for camera in cameras:
        if camera.calibration is None:
            raise ConfigError(f"camera {camera.id!r}: a multiview show needs a calibration with extrinsics")
        path = show.resolve(camera.calibration)
        calibration = replace(load_calibration(path), camera=camera.id)
        rig_cameras.append(RigCamera.from_calibration(calibration, f"camera {camera.id!r}: {path}"))
    try:
        return Rig(tuple(rig_cameras))
    except ValueError as exc:
        raise ConfigError(f"multiview: {exc}") from None


def triangulation_settings(show: ShowConfig) -> TriangulationSettings:
    """The show's ``multiview`` section as triangulation settings."""
    mv = show.multiview
    if mv is None:
        return TriangulationSettings()
    return TriangulationSettings(min_confidence=mv.min_confidence, max_reprojection_px=mv.max_reprojection_px,
                                 min_views=mv.min_views, fix_left_right=mv.fix_left_right,
                                 min_height_m=mv.min_height_m)  # fmt: skip


@dataclass(frozen=True)
class Pose3D:
    """One performer in one fused time step.

    Attributes:
        performer: the OSC name; seq: the fused step counter; t: the step's capture time (Unix s).
        tracked: at least the show's ``tracking.min_joints`` joints were triangulated in this step (the
            count a camera's tracker uses for "tracked"); OSC sends ``/status 1`` then.
        triangulation: this step's raw solve of the 16 joints (NaN where fewer than ``min_views`` agree).
        smoothed: (16, 3) Kalman positions in metres, NaN where lost; quality: (16,) 0..1 to send.
        joints2d: (C, 16, 2) the raw pixels each camera gave; conf2d: (C, 16) their confidence (0 where
            a camera had no pose of the performer, or a joint was occluded by someone in front).
    """

    performer: str
    seq: int
    t: float
    tracked: bool
    triangulation: Triangulation
    smoothed: np.ndarray
    quality: np.ndarray
    joints2d: np.ndarray
    conf2d: np.ndarray

    def floor_point(self) -> tuple[float, float] | None:
        """(x, y) world metres on the floor under the performer: the ankles' midpoint, else the pelvis."""
        for joints in ([Joint.r_ankle, Joint.l_ankle], [Joint.r_ankle], [Joint.l_ankle], [Joint.pelvis]):
            points = self.smoothed[joints]
            if np.isfinite(points).all() and (self.quality[joints] > 0).all():
                x, y = points[:, :2].mean(axis=0)
                return float(x), float(y)
        return None


class Fuser3D:
    """Associates, triangulates and smooths the performers of one show, one time step after another.

    Args:
        show: a show with an enabled ``multiview`` section.
        cameras: its active cameras, in the view order of every array.
        rig: their calibration (default: read from the cameras' calibration files).

    Raises:
        ConfigError: a camera without extrinsics.
    """

    def __init__(self, show: ShowConfig, cameras: Sequence[CameraConfig], rig: Rig | None = None):
        self.rig = rig or multiview_rig(show, cameras)
        self.settings = triangulation_settings(show)
        self.association = show.multiview.association if show.multiview is not None else "by_name"
        self.names = [p.address for p in show.cast]
        self.min_joints = show.tracking.min_joints
        self._view_of = {c.id: v for v, c in enumerate(cameras)}
        self._smoothers = {name: make_smoother_3d() for name in self.names}
        # the performer's primary camera: the first of its cameras that is active (the view of /pose)
        self.primary = {
            p.address: next(self._view_of[cid] for cid in p.cameras if cid in self._view_of) for p in show.cast
        }
        self.last_t: float | None = None
        self.steps = 0
        self._continuity: dict[tuple[int, str], str] = {}  # epipolar: (view, tracker name) -> performer last step

    def fuse(self, results: Sequence[PerformerResult], t: float, t_send: float | None = None) -> list[Pose3D] | None:
        """Fuse one time step: ``results`` are the 2D results of the cameras taken at (about) ``t``.

        With ``t_send`` (live, when the show's ``smoothing.forecast_to_send`` is on) the smoothed joints are
        forecast from ``t`` to that time (at most the filter's ``max_forecast_s``), as the 2D poses are.

        Returns:
            One `Pose3D` per performer (show order), or None when ``t`` is not after the last step's
            time (a step out of order is dropped: the smoother needs time to move forward).
        """
        if self.last_t is not None and t <= self.last_t:
            return None
        c = len(self.rig)
        per_view: list[list[PerformerResult]] = [[] for _ in range(c)]
        for result in results:
            view = self._view_of.get(result.camera_id)
            if view is not None and result.tracked:
                per_view[view].append(result)
        people = self._associate(per_view)
        poses = {}
        for name in self.names:
            joints = np.full((c, NUM_JOINTS, 2), np.nan)
            conf = np.zeros((c, NUM_JOINTS))
            for view, i in people.get(name, {}).items():
                joints[view] = per_view[view][i].raw_joints
                conf[view] = per_view[view][i].raw_confidence  # 0 for joints occluded by someone in front
            poses[name] = (joints, conf)
        solved = triangulate_performers(self.rig, poses, self.settings)
        out = []
        for name in self.names:
            tri = solved[name]
            pose = self._smoothers[name].update(t, tri.points, tri.confidence)
            if t_send is not None:
                pose = self._smoothers[name].forecast(t_send)
            smoothed = np.where(pose.quality[:, None] > 0, pose.position, np.nan)
            tracked = int(tri.ok.sum()) >= self.min_joints
            out.append(Pose3D(name, self.steps, t, tracked, tri, smoothed, pose.quality, *poses[name]))
        self.last_t = t
        self.steps += 1
        return out

    def _associate(self, per_view: list[list[PerformerResult]]) -> dict[str, dict[int, int]]:
        names = [[r.performer for r in results] for results in per_view]
        if self.association == "epipolar":
            candidates = [[PoseView(r.raw_joints, r.raw_confidence) for r in results] for results in per_view]
            people = by_epipolar_named(self.rig, candidates, names, max_distance_px=EPIPOLAR_MAX_PX,
                                       min_confidence=self.settings.min_confidence,
                                       previous=self._continuity)  # fmt: skip
            # whom each camera's tracker name meant (kept while that camera sits out, until it is back)
            self._continuity.update(
                {(v, names[v][i]): name for name, person in people.items() for v, i in person.items()}
            )
            return people
        return by_name(names)

    def osc_frame(self, pose: Pose3D, min_confidence: float) -> PerformerFrame:
        """What OSC sends for ``pose`` (see the module docstring): 3D, primary-camera pixels, floor point."""
        camera = self.rig.cameras[self.primary[pose.performer]]
        known = np.isfinite(pose.smoothed).all(axis=1)
        pixels = np.full((NUM_JOINTS, 2), np.nan)
        if known.any():
            pixels[known] = camera.project(pose.smoothed[known])
        return PerformerFrame(
            performer=pose.performer,
            seq=pose.seq,
            t_capture=pose.t,
            joints=pixels,
            confidence=np.where(np.isfinite(pixels).all(axis=1), pose.quality, 0.0),
            image_size=camera.image_size,
            tracked=pose.tracked,
            joints_stage=pose.smoothed[:, :2],
            floor_position=pose.floor_point(),
            min_confidence=min_confidence,
            joints3d=pose.smoothed,
            confidence3d=pose.quality,
        )

    def lost_frame(self, performer: str, t: float, min_confidence: float) -> PerformerFrame:
        """A lost performer's OSC frame (no camera delivers): every joint confidence 0."""
        camera = self.rig.cameras[self.primary[performer]]
        nan2, nan3, zeros = np.full((NUM_JOINTS, 2), np.nan), np.full((NUM_JOINTS, 3), np.nan), np.zeros(NUM_JOINTS)
        return PerformerFrame(performer=performer, seq=self.steps, t_capture=t, joints=nan2, confidence=zeros,
                              image_size=camera.image_size, tracked=False, min_confidence=min_confidence,
                              joints3d=nan3, confidence3d=zeros)  # fmt: skip


def record_pose3d(
    recorder: KeypointRecorder, rig: Rig, pose: Pose3D, *, latency_ms: float | None = None,
    step_cameras: Sequence[str] | None = None,
) -> None:  # fmt: skip
    """Append ``pose`` to the keypoint record as a ``pose3d`` line (smoothed, raw, views per joint)."""
    tri = pose.triangulation
    recorder.write_pose3d(
        t_capture=pose.t, performer=pose.performer, seq=pose.seq, joints3d=pose.smoothed, confidence=pose.quality,
        raw3d=tri.points, raw_confidence=tri.confidence,
        views=[[rig.names[v] for v in np.flatnonzero(tri.views[:, j])] for j in range(NUM_JOINTS)],
        reprojection_px=tri.reprojection_px,
        swapped=[rig.names[v] for v in np.flatnonzero(tri.swapped)] if tri.swapped is not None else [],
        latency_ms=latency_ms, step_cameras=None if step_cameras is None else list(step_cameras),
    )  # fmt: skip
