"""`stagepose replay` of a multiview show: several synchronised recordings -> one 3D pose per performer.

The input files are read in lockstep (recorded files: the i-th frame of every clip is one time step;
the skew of their times relative to each clip's first frame is reported). Each time step's frames go
through the show's `PosePipeline` as one batch (all crops of all cameras in one inference), which gives
each camera's 2D result per performer, written to the record as in a one-camera replay. The performer's
poses of the different cameras are associated, triangulated and smoothed in metres by
`stagepose.show.fuse3d.Fuser3D` (the same fusion `stagepose live` runs); with ``--osc`` each step's
performers go to the show's OSC destinations as in the show. Outputs in the replay folder:

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stagepose.errors import ConfigError
from stagepose.multiview.cameras import Rig
from stagepose.multiview.measure import ClipPoses, triangulation_report
from stagepose.multiview.triangulate import Triangulation, TriangulationSettings
from stagepose.runtime.backends.base import Backend
from stagepose.show.config import CameraConfig, ShowConfig
from stagepose.show.fuse3d import MIN_JOINTS_3D, Fuser3D, Pose3D, record_pose3d
from stagepose.show.osc import OscSink
from stagepose.show.overlay import OverlayWriter, draw_pose, performer_colour
from stagepose.show.record import KeypointRecorder
from stagepose.skeleton import NUM_JOINTS, Joint


@dataclass
class _Track3D:
    """One performer's 3D results over the replay (private)."""

    raw: list[np.ndarray] = field(default_factory=list)  # (K, 3) triangulated, NaN where not
    smoothed: list[np.ndarray] = field(default_factory=list)  # (K, 3) Kalman, NaN where lost
    parts: list[Triangulation] = field(default_factory=list)
    joints2d: list[np.ndarray] = field(default_factory=list)  # (C, K, 2)
    conf2d: list[np.ndarray] = field(default_factory=list)  # (C, K)

    def add(self, pose: Pose3D) -> None:
        self.raw.append(pose.triangulation.points)
        self.smoothed.append(pose.smoothed)
        self.parts.append(pose.triangulation)
        self.joints2d.append(pose.joints2d)
        self.conf2d.append(pose.conf2d)


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
    send_osc: bool = False,
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
        send_osc: send each step's fused performers to the show's OSC destinations (one bundle per
            performer per step, as `stagepose live` does; `Fuser3D.osc_frame`).

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
    fuser = Fuser3D(show, cameras)
    rig = fuser.rig
    pipeline = PosePipeline(show, backend, cameras, timing_window=None)
    names = fuser.names
    tracks = {name: _Track3D() for name in names}
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
        sink = stack.enter_context(OscSink(show.outputs.osc)) if send_osc else None
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
            fused = fuser.fuse(done, t)
            solve_ms.append((time.perf_counter() - t0) * 1e3)
            if fused is None:  # a clip whose capture times do not move forward
                raise ConfigError(f"--input {inputs[0]}: frame {step} is not later than the one before it")
            reprojected: dict[str, tuple[np.ndarray, np.ndarray]] = {}
            for pose in fused:
                tracks[pose.performer].add(pose)
                record_pose3d(recorder, rig, pose)
                if sink is not None:
                    sink.send_performer(fuser.osc_frame(pose, show.tracking.min_confidence))
                reprojected[pose.performer] = (pose.smoothed, pose.quality)
            if sink is not None:
                sink.heartbeat(performers_tracked=sum(pose.tracked for pose in fused))
            for v, (camera, frame) in enumerate(zip(cameras, frames)):
                writers[camera.id].write(_draw3d(frame.image, rig, v, reprojected, step, show))
            bar.update(1)
    if not times:
        raise ConfigError(f"--input {inputs[0]}: no frame could be decoded")
    summary = _summary(rig, tracks, times, skews, solve_ms, fuser.settings)
    summary.update(
        wall_s=round(time.perf_counter() - started, 2), record=str(record_path),
        overlays={k: str(v) for k, v in overlays.items()},
    )  # fmt: skip
    (out_dir / "summary3d.json").write_text(json.dumps(summary, indent=2))
    return summary


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
