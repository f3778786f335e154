"""Measuring the multi-camera path on recorded, synchronised footage (``stagepose bench multiview``).

Each clip goes through the show's own 2D pipeline (`PosePipeline`: crop, model, decode, tracking), one
camera and one performer at a time; the raw 2D joints of every frame are kept. The clips are matched
in time (recorded files in lockstep: each clip's capture times relative to its first frame), every
matched frame is triangulated, and the 3D track is smoothed by the 3D Kalman filter. The report says
how consistent the result is with itself and with a real body, since the footage has no 3D ground truth:

* reprojection error (pixels) of the triangulated joints in the views used, and in every view that saw them;
* per bone (thigh, shank, upper arm, forearm; left and right), the coefficient of variation of its 3D
  length over the clip (a real bone does not change length), raw and after the 3D Kalman filter;
* the height of the ankles above the floor (z), whose low percentile is where the feet stand;
* how many joints were triangulated, from how many views, and the time skew of the matched frames.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stagepose.multiview.cameras import Rig
from stagepose.multiview.smoothing import make_smoother_3d
from stagepose.multiview.timesync import match_streams
from stagepose.multiview.triangulate import Triangulation, TriangulationSettings, triangulate_performers
from stagepose.skeleton import JOINT_NAMES, NUM_JOINTS, Joint

# The bones whose length stability is reported, (name, joint, joint).
BONES: tuple[tuple[str, Joint, Joint], ...] = (
    ("r_thigh", Joint.r_hip, Joint.r_knee),
    ("l_thigh", Joint.l_hip, Joint.l_knee),
    ("r_shank", Joint.r_knee, Joint.r_ankle),
    ("l_shank", Joint.l_knee, Joint.l_ankle),
    ("r_upper_arm", Joint.r_shoulder, Joint.r_elbow),
    ("l_upper_arm", Joint.l_shoulder, Joint.l_elbow),
    ("r_forearm", Joint.r_elbow, Joint.r_wrist),
    ("l_forearm", Joint.l_elbow, Joint.l_wrist),
)


@dataclass(frozen=True)
class ClipPoses:
    """The 2D poses of one camera's clip, frame by frame.

    Attributes:
        camera: the camera's name (as in its calibration).
        times: (N,) capture times relative to the clip's first frame, seconds.
        joints: (N, K, 2) raw pixels (NaN where the performer was not tracked).
        confidence: (N, K) heatmap confidence (0 where not tracked).
        image_size: (width, height).
    """

    camera: str
    times: np.ndarray
    joints: np.ndarray
    confidence: np.ndarray
    image_size: tuple[int, int]


def clip_poses(
    video: Path,
    model: Path,
    camera: str,
    *,
    zone: list[tuple[float, float]] | None = None,
    max_frames: int | None = None,
    backend: Any = None,
) -> ClipPoses:
    """Run the show's 2D pipeline over one clip (one camera, one performer) and keep the raw joints.

    Args:
        video: the clip.
        model: the exported model (``.onnx`` with its sidecar).
        camera: the camera's name (for the result).
        zone: image polygon where the performer is looked for (None: anywhere).
        max_frames: stop after this many frames.
        backend: an opened backend to reuse (else one is opened on the CPU with ONNX Runtime).
    """
    from stagepose.config import from_dict
    from stagepose.show.config import ShowConfig
    from stagepose.show.live import open_show_backend
    from stagepose.show.pipeline import PosePipeline
    from stagepose.show.sources import open_source
    from stagepose.show.sources.uri import FileSpec

    show = from_dict(
        ShowConfig,
        {
            "show": f"measure-{camera}",
            "cameras": [{"id": camera, "uri": str(video.resolve())}],
            "performers": [{"name": "performer", "cameras": {camera: "anywhere" if zone is None else zone}}],
            "model": {"path": str(model.resolve()), "backend": "onnxruntime", "device": "cpu"},
            "tracking": {"min_box_fraction": 0.5},
            "smoothing": {"method": "none"},
        },
    )
    own = backend is None
    backend = backend or open_show_backend(show)
    try:
        pipeline = PosePipeline(show, backend, show.active_cameras, timing_window=None)
        spec = FileSpec(path=video.resolve(), loop=False, pacing="fast")
        times, joints, conf = [], [], []
        size = (0, 0)
        with open_source(spec, camera, lossless=True) as source:
            for frame in source:
                size = (frame.width, frame.height)
                result = pipeline.process([frame])[0]
                times.append(frame.t_capture)
                joints.append(result.raw_joints if result.tracked else np.full((NUM_JOINTS, 2), np.nan))
                conf.append(result.raw_confidence if result.tracked else np.zeros(NUM_JOINTS))
                if max_frames is not None and len(times) >= max_frames:
                    break
    finally:
        if own:
            backend.close()
    t = np.array(times, dtype=np.float64)
    return ClipPoses(camera, t - t[0] if len(t) else t, np.array(joints), np.array(conf), size)


def reference_clip_poses(video: Path, camera: str, *, max_frames: int | None = None) -> ClipPoses:
    """The 2D joints of one clip from MediaPipe Pose (the offline teacher, ``make install-teacher``).

    Not a show path (MediaPipe is never needed at show time): a stronger 2D model than the shipped one,
    to tell what the multi-camera geometry gives from what the 2D model gives. Frames are decoded with
    PyAV; times are the stream's (relative to the first frame).

    Raises:
        EngineError: MediaPipe is not installed (the message says how to install it).
    """
    import av

    from stagepose.data.mediapipe_pose import MediaPipePose, landmarks_to_mpii

    times: list[float] = []
    joints: list[np.ndarray] = []
    conf: list[np.ndarray] = []
    size = (0, 0)
    with MediaPipePose() as pose, av.open(str(video)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            rgb = frame.to_ndarray(format="rgb24")
            size = (rgb.shape[1], rgb.shape[0])
            landmarks = pose(rgb)
            found = None if landmarks is None else landmarks_to_mpii(landmarks)
            base = stream.time_base
            times.append(float(frame.pts * base) if frame.pts is not None and base is not None else len(times) / 60.0)
            joints.append(np.full((NUM_JOINTS, 2), np.nan) if found is None else found[:, :2])
            conf.append(np.zeros(NUM_JOINTS) if found is None else np.nan_to_num(found[:, 2]))
            if max_frames is not None and len(times) >= max_frames:
                break
    t = np.array(times, dtype=np.float64)
    return ClipPoses(camera, t - t[0] if len(t) else t, np.array(joints), np.array(conf), size)


def bone_lengths(points: np.ndarray) -> dict[str, np.ndarray]:
    """(F, K, 3) joints over F frames -> bone name -> (F,) lengths in metres (NaN where a joint is missing)."""
    return {name: np.linalg.norm(points[:, a] - points[:, b], axis=-1) for name, a, b in BONES}


def coefficient_of_variation(values: np.ndarray) -> float | None:
    """Standard deviation / mean of the finite values (None with fewer than 3)."""
    v = values[np.isfinite(values)]
    if len(v) < 3 or np.mean(v) <= 0:
        return None
    return float(np.std(v) / np.mean(v))


def robust_cv(values: np.ndarray) -> float | None:
    """The interquartile range / 1.349 / median of the finite values: the CV a few gross outliers cannot
    dominate (equal to the CV for normally distributed lengths). None with fewer than 3 values."""
    v = values[np.isfinite(values)]
    if len(v) < 3 or np.median(v) <= 0:
        return None
    q1, q3 = np.percentile(v, [25, 75])
    return float((q3 - q1) / 1.349 / np.median(v))


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), digits)


def _nanmedian(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return float(np.median(finite)) if len(finite) else None


def _mean(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return _round(float(np.mean(known))) if known else None


def _percentiles(values: np.ndarray, qs: Sequence[float]) -> dict[str, float | None]:
    v = values[np.isfinite(values)]
    return {f"p{q:g}": (_round(float(np.percentile(v, q))) if len(v) else None) for q in qs}


def measure(rig: Rig, clips: Sequence[ClipPoses], settings: TriangulationSettings | None = None) -> dict[str, Any]:
    """Triangulate and smooth matched frames of ``clips`` and report the numbers of the module docstring.

    Args:
        rig: the cameras, in the order of ``clips`` (matched by name).
        clips: one per camera.
        settings: triangulation settings.

    Raises:
        ValueError: the clips do not name the rig's cameras.
    """
    settings = settings or TriangulationSettings()
    if [c.camera for c in clips] != rig.names:
        raise ValueError(f"clips {[c.camera for c in clips]} do not match the rig's cameras {rig.names}")
    report = match_streams({c.camera: [(float(t), i) for i, t in enumerate(c.times)] for c in clips})
    groups = [g for g in report.groups if not g.missing]
    frames = len(groups)
    pixels = np.full((len(rig), frames, NUM_JOINTS, 2), np.nan)
    conf = np.zeros((len(rig), frames, NUM_JOINTS))
    for f, group in enumerate(groups):
        for v, clip in enumerate(clips):
            i = group.items[clip.camera]
            pixels[v, f], conf[v, f] = clip.joints[i], clip.confidence[i]
    t0 = time.perf_counter()
    # every frame is a "performer" of one batched solve (left/right swaps are judged per frame and view)
    per_frame = triangulate_performers(rig, {str(f): (pixels[:, f], conf[:, f]) for f in range(frames)}, settings)
    solve_ms = (time.perf_counter() - t0) * 1e3
    parts = [per_frame[str(f)] for f in range(frames)]
    result = Triangulation.over_frames(parts, len(rig))
    points = result.points.reshape(frames, NUM_JOINTS, 3)
    smoother = make_smoother_3d()
    smoothed = np.full_like(points, np.nan)
    for f, group in enumerate(groups):
        pose = smoother.update(group.t, points[f], result.confidence.reshape(frames, NUM_JOINTS)[f])
        smoothed[f] = np.where(pose.quality[:, None] > 0, pose.position, np.nan)
    return triangulation_report(rig, clips, result, points, smoothed, frames, report.skew_summary(), solve_ms, settings)


def triangulation_report(
    rig: Rig,
    clips: Sequence[ClipPoses],
    result: Triangulation,
    points: np.ndarray,
    smoothed: np.ndarray,
    frames: int,
    skew: dict[str, float],
    solve_ms: float,
    settings: TriangulationSettings,
) -> dict[str, Any]:
    """The numbers of the module docstring for one performer's F frames of C views.

    Args:
        rig: the cameras (C).
        clips: the 2D poses per camera (for the 2D joint counts).
        result: the triangulation of the F x K joints, frame after frame.
        points: (F, K, 3) triangulated joints; smoothed: (F, K, 3) after the 3D Kalman filter (NaN where lost).
        frames: F.
        skew: the time skew summary of the matched frames (`MatchReport.skew_summary`).
        solve_ms: time the triangulation took, all frames.
        settings: the triangulation settings used.
    """
    ok = result.ok
    used_err = np.where(result.views, result.view_error_px, np.nan)
    seen_err = result.view_error_px
    views = result.num_views[ok]
    per_camera = {
        name: {
            "median_reprojection_px": _round(_nanmedian(used_err[v]), 2),
            "joints_used": int(result.views[v].sum()),
            "joints_tracked_2d": int((clips[v].confidence >= settings.min_confidence).sum()),
            "frames_left_right_swapped": int(result.swapped[v].sum()) if result.swapped is not None else 0,
        }
        for v, name in enumerate(rig.names)
    }  # fmt: skip
    bones: dict[str, dict[str, Any]] = {}
    for label, lengths in (("raw", bone_lengths(points)), ("kalman", bone_lengths(smoothed))):
        for name, values in lengths.items():
            entry = bones.setdefault(name, {})
            entry[f"cv_{label}"] = _round(coefficient_of_variation(values))
            entry[f"robust_cv_{label}"] = _round(robust_cv(values))
            if label == "raw":
                finite = values[np.isfinite(values)]
                median = float(np.median(finite)) if len(finite) else None
                entry["median_m"] = _round(median, 3)
                entry["frames"] = int(len(finite))
                entry["within_10pct"] = _round(
                    float(np.mean(np.abs(finite / median - 1) <= 0.1)) if median else None, 3
                )
    ankles = points[:, [Joint.r_ankle, Joint.l_ankle], 2]
    both = np.isfinite(ankles).any(axis=1)
    lower = np.nanmin(np.where(np.isfinite(ankles[both]), ankles[both], np.inf), axis=1)  # the standing foot
    if not len(lower):
        lower = np.full(0, np.nan)
    return {
        "cameras": rig.names,
        "frames_matched": frames,
        "skew_ms": {k: round(v, 3) for k, v in skew.items()},
        "joints_triangulated": int(ok.sum()),
        "joints_total": int(ok.size),
        "views_per_joint": {str(n): int((views == n).sum()) for n in range(2, len(rig) + 1)},
        "per_joint_triangulated": {
            name: round(float(ok.reshape(frames, NUM_JOINTS)[:, j].mean()), 3) for j, name in enumerate(JOINT_NAMES)
        },  # fmt: skip
        "reprojection_px": {
            "median_used": _round(_nanmedian(used_err), 2),
            "p90_used": _percentiles(used_err.ravel(), (90,))["p90"],
            "median_rms_per_joint": _round(_nanmedian(result.reprojection_px), 2),
            "median_all_views_that_saw_it": _round(_nanmedian(seen_err), 2),
        },
        "per_camera": per_camera,
        "bones": bones,
        "bone_cv_mean": {
            key: _mean([b[key] for b in bones.values()])
            for key in ("cv_raw", "cv_kalman", "robust_cv_raw", "robust_cv_kalman", "within_10pct")
        },  # fmt: skip
        "ankle_height_m": _percentiles(ankles.ravel(), (5, 50, 95)),
        "lower_ankle_height_m": _percentiles(lower, (10, 50, 90)),
        "triangulation_ms_all_frames": round(solve_ms, 2),
        "settings": {
            "min_confidence": settings.min_confidence,
            "max_reprojection_px": settings.max_reprojection_px,
            "fix_left_right": settings.fix_left_right,
        },  # fmt: skip
    }


def measure_footage(
    calibrations: Sequence[Path],
    videos: Sequence[Path],
    *,
    model: Path,
    reference: str = "model",
    max_frames: int | None = None,
    settings: TriangulationSettings | None = None,
    say: Any = None,
) -> dict[str, Any]:
    """`stagepose bench multiview`: 2D poses of every clip, then `measure`.

    Args:
        calibrations: one calibration file with extrinsics per camera.
        videos: one synchronised clip per camera, same order.
        model: the exported 2D model (``reference="model"``).
        reference: ``model`` (the show's 2D pipeline) or ``mediapipe`` (offline MediaPipe Pose).
        max_frames: at most this many frames per clip.
        settings: triangulation settings.
        say: progress callback (a line per clip).

    Raises:
        ConfigError: a calibration without extrinsics, or one that does not fit its clip's size.
    """
    from stagepose.errors import ConfigError

    rig = Rig.load(calibrations)
    clips = []
    started = time.perf_counter()
    backend = None
    try:
        for camera, video in zip(rig.cameras, videos):
            if reference == "mediapipe":
                clip = reference_clip_poses(Path(video), camera.name, max_frames=max_frames)
            else:
                if backend is None:
                    backend = _open_backend(model)
                clip = clip_poses(Path(video), model, camera.name, max_frames=max_frames, backend=backend)
            if clip.image_size != camera.image_size:
                raise ConfigError(
                    f"{video}: frames are {clip.image_size[0]}x{clip.image_size[1]} but the calibration of "
                    f"{camera.name} is for {camera.image_size[0]}x{camera.image_size[1]}"
                )
            clips.append(clip)
            if say is not None:
                say(f"{camera.name}: {len(clip.times)} frames of {video} ({time.perf_counter() - started:.0f} s)")
    finally:
        if backend is not None:
            backend.close()
    report = measure(rig, clips, settings)
    report["inputs"] = {
        "calibration": [str(p) for p in calibrations],
        "video": [str(v) for v in videos],
        "model": str(model) if reference == "model" else "mediapipe-pose-full (offline reference)",
    }
    return report


def _open_backend(model: Path) -> Any:
    from stagepose.config import from_dict
    from stagepose.show.config import ShowConfig
    from stagepose.show.live import open_show_backend

    show = from_dict(
        ShowConfig,
        {"show": "measure", "cameras": [{"id": "cam", "uri": "unused"}],
         "performers": [{"name": "performer", "cameras": {"cam": "anywhere"}}],
         "model": {"path": str(model.resolve()), "backend": "onnxruntime", "device": "cpu"}},
    )  # fmt: skip
    return open_show_backend(show)
