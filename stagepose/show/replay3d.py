"""`stagepose replay` of a multiview show: several synchronised recordings -> one 3D pose per performer.

The input files are read in lockstep (recorded files: the i-th frame of every clip is one time step;
the skew of their times relative to each clip's first frame is reported). Each time step's frames go
through the show's `PosePipeline` as one batch (all crops of all cameras in one inference), which gives
each camera's 2D result per performer, written to the record as in a one-camera replay. The performer's
poses of the different cameras are associated by name (`stagepose.multiview.associate.by_name`),
triangulated (`stagepose.multiview.triangulate`, all performers in one solve) and smoothed in metres
(`stagepose.multiview.smoothing`, dt from the capture times). Outputs in the replay folder:

* ``keypoints.jsonl``: the per-camera 2D ``frame`` lines, and per performer per time step a ``pose3d``
  line (`KeypointRecorder.write_pose3d`);
* ``overlay_<camera>.mp4``: the smoothed 3D skeleton reprojected into each view;
* ``summary3d.json``: per performer the share of time steps with a 3D pose, reprojection error, bone
  length stability and foot height (`stagepose.multiview.measure.triangulation_report`).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from stagepose.calibration.files import load_calibration
from stagepose.errors import ConfigError
from stagepose.multiview.associate import by_name
from stagepose.multiview.cameras import Rig, RigCamera
from stagepose.multiview.measure import ClipPoses, triangulation_report
from stagepose.multiview.smoothing import make_smoother_3d
from stagepose.multiview.triangulate import Triangulation, TriangulationSettings, triangulate_performers
from stagepose.runtime.backends.base import Backend
from stagepose.show.config import CameraConfig, ShowConfig
from stagepose.show.filters.kalman import KalmanSmoother
from stagepose.show.overlay import OverlayWriter, draw_pose, performer_colour
from stagepose.show.record import KeypointRecorder
from stagepose.show.result import PerformerResult
from stagepose.skeleton import NUM_JOINTS, Joint

MIN_JOINTS_3D = NUM_JOINTS // 2  # a time step "has a 3D pose" of a performer when this many joints triangulate


@dataclass
class _Track3D:
    """One performer's 3D results over the replay (private)."""

    smoother: KalmanSmoother
    raw: list[np.ndarray] = field(default_factory=list)  # (K, 3) triangulated, NaN where not
    smoothed: list[np.ndarray] = field(default_factory=list)  # (K, 3) Kalman, NaN where lost
    parts: list[Triangulation] = field(default_factory=list)
    joints2d: list[np.ndarray] = field(default_factory=list)  # (C, K, 2)
    conf2d: list[np.ndarray] = field(default_factory=list)  # (C, K)


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
                                 min_views=mv.min_views, fix_left_right=mv.fix_left_right)  # fmt: skip


def _lockstep(sources: Sequence[Iterator[Any]]) -> Iterator[list[Any]]:
    """The i-th frame of every source together, until the shortest ends."""
    iterators = [iter(s) for s in sources]
    while True:
        step = []
        for it in iterators:
            frame = next(it, None)
            if frame is None:
                return
            step.append(frame)
        yield step


def run_multiview_replay(
    show: ShowConfig,
    cameras: list[CameraConfig],
    inputs: list[Path],
    out_dir: Path,
    backend: Backend,
    *,
    progress: bool = True,
    max_frames: int | None = None,
) -> dict[str, Any]:
    """Replay synchronised ``inputs`` (one per camera of ``cameras``) of a multiview show into ``out_dir``.

    Args:
        show: a show with an enabled ``multiview`` section.
        cameras: the show's active cameras with the inputs' addresses (`replay_cameras`).
        inputs: one recording per camera, same order.
        out_dir: the replay folder (created by the caller).
        backend: the opened model.
        progress: show a progress bar.
        max_frames: stop after this many time steps.

    Returns:
        The summary (also written to ``summary3d.json``): frames, skew, per performer report, overlays.

    Raises:
        ConfigError: not one input per active camera, a camera without extrinsics, a frame refused.
    """
    from tqdm import tqdm

    from stagepose.show.pipeline import PosePipeline
    from stagepose.show.replay import _fps, _frame_count
    from stagepose.show.sources import open_source
    from stagepose.show.sources.uri import FileSpec

    if len(inputs) != len(show.active_cameras):
        raise ConfigError(
            f"{len(inputs)} input videos but the multiview show has {len(show.active_cameras)} active cameras: "
            "give one synchronised video per camera, in the order of 'cameras' in the show file"
        )
    rig = multiview_rig(show, cameras)
    settings = triangulation_settings(show)
    pipeline = PosePipeline(show, backend, cameras, timing_window=None)
    names = [p.address for p in show.cast]
    tracks = {name: _Track3D(make_smoother_3d()) for name in names}
    record_path = out_dir / "keypoints.jsonl"
    if record_path.exists():
        record_path.unlink()  # a replay writes a fresh record
    overlays = {c.id: out_dir / f"overlay_{c.id}.mp4" for c in cameras}
    times: list[float] = []
    skews: list[float] = []
    solve_ms: list[float] = []
    first: list[float] | None = None
    started = time.perf_counter()
    meta = {"show": show.show, "mode": "replay", "multiview": {"cameras": rig.names, "world": "calibration"}}
    with contextlib.ExitStack() as stack:
        recorder = stack.enter_context(KeypointRecorder(record_path, metadata=meta))
        sources = [
            stack.enter_context(open_source(FileSpec(path=v.resolve(), loop=False, pacing="fast"), c.id, lossless=True))
            for c, v in zip(cameras, inputs)
        ]  # fmt: skip
        known = [n for n in (_frame_count(v) for v in inputs) if n] + ([max_frames] if max_frames else [])
        total = min(known) if known else None  # the shortest input ends the replay
        bar = stack.enter_context(tqdm(total=total, desc=f"replay 3D ({len(cameras)} cameras)", unit="frame",
                                       disable=not progress))  # fmt: skip
        writers: dict[str, OverlayWriter] = {}
        for step, frames in enumerate(_lockstep(sources)):
            if max_frames is not None and step >= max_frames:
                break
            if not writers:
                for camera, video, frame in zip(cameras, inputs, frames):
                    size = (frame.width, frame.height)
                    writers[camera.id] = stack.enter_context(OverlayWriter(overlays[camera.id], _fps(video), size))
            # lockstep: each clip's capture times relative to its own first frame should agree
            if first is None:
                first = [f.t_capture for f in frames]
            rel = [f.t_capture - t0 for f, t0 in zip(frames, first)]
            skews.append(max(rel) - min(rel))
            t = first[0] + rel[0]  # the time step on the first camera's capture clock (Unix s)
            times.append(t)
            done = pipeline.process(frames)
            for result in done:
                if result.refused:
                    raise ConfigError(f"camera {result.camera_id!r}: frame {result.frame_seq}: {result.reason}")
                recorder.write_result(result)
            t0 = time.perf_counter()
            fused = _fuse(rig, cameras, done, names, settings)
            solve_ms.append((time.perf_counter() - t0) * 1e3)
            reprojected: dict[str, tuple[np.ndarray, np.ndarray]] = {}
            for name in names:
                tri, joints2d, conf2d = fused[name]
                track = tracks[name]
                points = tri.points
                pose = track.smoother.update(t, points, tri.confidence)
                smoothed = np.where(pose.quality[:, None] > 0, pose.position, np.nan)
                track.raw.append(points)
                track.smoothed.append(smoothed)
                track.parts.append(tri)
                track.joints2d.append(joints2d)
                track.conf2d.append(conf2d)
                recorder.write_pose3d(
                    t_capture=t, performer=name, seq=step, joints3d=smoothed, confidence=pose.quality,
                    raw3d=points, raw_confidence=tri.confidence,
                    views=[[rig.names[v] for v in np.flatnonzero(tri.views[:, j])] for j in range(NUM_JOINTS)],
                    reprojection_px=tri.reprojection_px,
                    swapped=[rig.names[v] for v in np.flatnonzero(tri.swapped)] if tri.swapped is not None else [],
                )  # fmt: skip
                reprojected[name] = (smoothed, pose.quality)
            for v, (camera, frame) in enumerate(zip(cameras, frames)):
                writers[camera.id].write(_draw3d(frame.image, rig, v, reprojected, step, show))
            bar.update(1)
    if not times:
        raise ConfigError(f"--input {inputs[0]}: no frame could be decoded")
    summary = _summary(rig, tracks, times, skews, solve_ms, settings)
    summary.update(
        wall_s=round(time.perf_counter() - started, 2), record=str(record_path),
        overlays={k: str(v) for k, v in overlays.items()},
    )  # fmt: skip
    (out_dir / "summary3d.json").write_text(json.dumps(summary, indent=2))
    return summary


def _fuse(
    rig: Rig, cameras: Sequence[CameraConfig], done: list[PerformerResult], names: list[str],
    settings: TriangulationSettings,
) -> dict[str, tuple[Triangulation, np.ndarray, np.ndarray]]:  # fmt: skip
    """Associate one time step's 2D results by performer name and triangulate every performer at once.

    Returns:
        performer -> (triangulation of its K joints, (C, K, 2) raw pixels, (C, K) confidence).
    """
    view_of = {c.id: v for v, c in enumerate(cameras)}
    per_view: list[list[PerformerResult]] = [[] for _ in cameras]
    for result in done:
        if result.tracked:
            per_view[view_of[result.camera_id]].append(result)
    people = by_name([[r.performer for r in results] for results in per_view])
    poses = {}
    for name in names:
        joints = np.full((len(cameras), NUM_JOINTS, 2), np.nan)
        conf = np.zeros((len(cameras), NUM_JOINTS))
        for view, i in people.get(name, {}).items():
            joints[view] = per_view[view][i].raw_joints
            conf[view] = per_view[view][i].raw_confidence  # 0 for joints occluded by someone in front
        poses[name] = (joints, conf)
    solved = triangulate_performers(rig, poses, settings)
    return {name: (solved[name], *poses[name]) for name in names}


def _draw3d(
    image: np.ndarray, rig: Rig, view: int, poses: dict[str, tuple[np.ndarray, np.ndarray]], step: int,
    show: ShowConfig,
) -> np.ndarray:  # fmt: skip
    """The smoothed 3D skeleton of every performer reprojected into view ``view``."""
    out = image
    camera = rig.cameras[view]
    for k, (name, (points, quality)) in enumerate(poses.items()):
        ok = np.isfinite(points).all(axis=1)
        pixels = np.full((NUM_JOINTS, 2), np.nan)
        if ok.any():
            pixels[ok] = camera.project(points[ok])
        out = draw_pose(
            out, pixels, np.where(ok, quality, 0.0), min_confidence=show.tracking.min_confidence,
            label=f"{camera.name} #{step} 3D reprojected" if k == 0 else None,
            name=name if ok.any() else None, name_colour=performer_colour(k),
        )  # fmt: skip
    return out


def _summary(
    rig: Rig, tracks: dict[str, _Track3D], times: list[float], skews: list[float], solve_ms: list[float],
    settings: TriangulationSettings,
) -> dict[str, Any]:  # fmt: skip
    """Per performer `triangulation_report` plus the share of time steps with a 3D pose and body height."""
    frames = len(times)
    t = np.array(times) - times[0]
    skew = {"median_ms": float(np.median(skews) * 1e3), "max_ms": float(np.max(skews) * 1e3)}
    performers = {}
    for name, track in tracks.items():
        raw = np.stack(track.raw)
        smoothed = np.stack(track.smoothed)
        parts = track.parts
        result = Triangulation.over_frames(parts, len(rig))
        joints2d, conf2d = np.stack(track.joints2d, axis=1), np.stack(track.conf2d, axis=1)  # (C, F, K, ...)
        clips = [ClipPoses(cam.name, t, joints2d[v], conf2d[v], cam.image_size) for v, cam in enumerate(rig.cameras)]
        report = triangulation_report(rig, clips, result, raw, smoothed, frames, skew, float(np.sum(solve_ms)),
                                      settings)  # fmt: skip
        with_pose = np.isfinite(raw).all(axis=2).sum(axis=1) >= MIN_JOINTS_3D
        performers[name] = {
            "frames_with_3d_pose": int(with_pose.sum()),
            "share_with_3d_pose": round(float(with_pose.mean()), 3),
            "body_height_m": _body_height(raw),
            **report,
        }
    return {
        "frames": frames,
        "cameras": rig.names,
        "skew_ms": {k: round(v, 3) for k, v in skew.items()},
        "triangulation_ms_per_frame": {
            "p50": round(float(np.percentile(solve_ms, 50)), 3),
            "p95": round(float(np.percentile(solve_ms, 95)), 3),
        },  # fmt: skip
        "performers": performers,
    }


def _body_height(points: np.ndarray) -> dict[str, float | None]:
    """Head top above the lower ankle (metres) over the frames where both are triangulated: p10/p50/p90."""
    head = points[:, Joint.head_top, 2]
    ankles = points[:, [Joint.r_ankle, Joint.l_ankle], 2]
    lower = np.where(np.isfinite(ankles), ankles, np.inf).min(axis=1)
    height = head - lower
    height = height[np.isfinite(height)]
    if not len(height):
        return {"p10": None, "p50": None, "p90": None, "frames": 0}  # type: ignore[dict-item]
    p10, p50, p90 = np.percentile(height, [10, 50, 90])
    return {"p10": round(float(p10), 3), "p50": round(float(p50), 3), "p90": round(float(p90), 3),
            "frames": int(len(height))}  # fmt: skip


def print_summary(summary: dict[str, Any]) -> None:
    """The replay's 3D summary, a few lines per performer."""
    print(f"3D: {summary['frames']} frames of {len(summary['cameras'])} cameras "
          f"(skew median {summary['skew_ms']['median_ms']:.1f} ms, max {summary['skew_ms']['max_ms']:.1f} ms), "
          f"triangulation + association p50 {summary['triangulation_ms_per_frame']['p50']:.2f} ms/frame")  # fmt: skip
    for name, p in summary["performers"].items():
        cv, reprojection = p["bone_cv_mean"], p["reprojection_px"]["median_used"]
        ankle, height = p["lower_ankle_height_m"]["p50"], p["body_height_m"]["p50"]
        print(f"  {name}: 3D pose in {p['share_with_3d_pose']:.0%} of frames; joints triangulated "
              f"{p['joints_triangulated']}/{p['joints_total']}; median reprojection {reprojection} px; "
              f"bone length CV raw {cv['cv_raw']} / Kalman {cv['cv_kalman']} (robust {cv['robust_cv_raw']}); "
              f"lower ankle z p50 {ankle} m; body height p50 {height} m")  # fmt: skip
