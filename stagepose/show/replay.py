"""`stagepose replay`: the live pipeline over recorded footage, for rehearsals.

Every frame of each input video goes through the same crop -> model -> decode -> smoothing path as
the live show (lossless, as fast as the machine goes, or paced with ``realtime``). It writes an
overlay video per camera, the keypoint record, a latency summary (JSON and a histogram PNG), and sends
OSC when asked, so a lighting designer can program against a rehearsal recording. With ``rts`` the
record also gets the Rauch-Tung-Striebel smoothed track (offline, non-causal) and the overlay shows it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from stagepose.errors import ConfigError
from stagepose.runtime.backends.base import Backend
from stagepose.show.config import CameraConfig, ShowConfig
from stagepose.show.filters import rts_smooth
from stagepose.show.live import open_show_backend
from stagepose.show.osc import OscSink, PerformerFrame
from stagepose.show.overlay import OverlayWriter, draw_pose, performer_colour
from stagepose.show.pipeline import PosePipeline
from stagepose.show.record import KeypointRecorder
from stagepose.show.result import PerformerResult
from stagepose.show.sources.health import SourceHealth
from stagepose.show.telemetry import latency_summary, save_latency_histogram

if TYPE_CHECKING:
    from stagepose.show.monitor.snapshot import MonitorFeed, ShowStatus

log = logging.getLogger(__name__)


@dataclass
class ReplaySummary:
    """What a replay produced."""

    out_dir: Path
    frames: dict[str, int] = field(default_factory=dict)
    tracked_fraction: dict[str, float] = field(default_factory=dict)  # per performer: share of frames tracked
    overlays: dict[str, str] = field(default_factory=dict)
    record: str = ""
    latency: dict[str, object] = field(default_factory=dict)
    wall_s: float = 0.0
    multiview: dict[str, object] = field(default_factory=dict)  # a multiview show: the 3D summary


def replay_cameras(show: ShowConfig, inputs: list[Path]) -> list[CameraConfig]:
    """Cameras for the inputs: input i replaces camera i's feed (performers, zones, calibration kept)."""
    cameras = show.active_cameras
    if len(inputs) > len(cameras):
        raise ConfigError(
            f"{len(inputs)} input videos but the show has {len(cameras)} active cameras; "
            "give at most one video per camera, in the order of 'cameras' in the show file"
        )
    out = []
    for camera, video in zip(cameras, inputs):
        if not video.is_file():
            raise ConfigError(f"--input {video}: video file not found")
        out.append(replace(camera, uri=f"file://{video.resolve()}"))
    return out


def run_replay(
    show: ShowConfig,
    inputs: list[Path],
    out_dir: Path,
    *,
    realtime: bool = False,
    send_osc: bool = False,
    rts: bool = False,
    progress: bool = True,
    backend: Backend | None = None,
    monitor: bool = False,
    max_frames: int | None = None,
) -> ReplaySummary:
    """Replay ``inputs`` through the show's pipeline into ``out_dir`` (with ``monitor``, serving the monitor
    page at ``show.monitor``'s address while it runs). A show with a ``multiview`` section replays its
    synchronised inputs together into 3D (`stagepose.show.replay3d`).

    Args:
        max_frames: stop each input after this many frames (None: all).

    Raises:
        ConfigError: more inputs than cameras, a missing video, an unwritable output folder; for a multiview
            show, not one input per camera, a calibration without extrinsics or an option it lacks.
    """
    if show.fused:
        return _run_multiview(show, inputs, out_dir, realtime=realtime, send_osc=send_osc, rts=rts,
                              progress=progress, backend=backend, monitor=monitor, max_frames=max_frames)  # fmt: skip
    from tqdm import tqdm

    from stagepose.show.sources import open_source
    from stagepose.show.sources.uri import FileSpec

    cameras = replay_cameras(show, inputs)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = ReplaySummary(out_dir=out_dir)
    own_backend = backend is None
    backend = backend or open_show_backend(show)
    started = time.perf_counter()
    latencies: list[float] = []
    # Only a paced replay that sends OSC has a send time on the capture clock to forecast to; the record
    # and overlay of a fast replay are for the capture times of the video.
    t_send = time.time if realtime and send_osc else None
    try:
        pipeline = PosePipeline(show, backend, cameras, timing_window=None)  # a finite replay: every frame
        record_path = out_dir / "keypoints.jsonl"
        if record_path.exists():
            record_path.unlink()  # a replay writes a fresh record
        osc = show.outputs.osc if send_osc else []
        watch = _open_monitor(show, cameras) if monitor else contextlib.nullcontext()
        with KeypointRecorder(record_path, metadata={"show": show.show, "mode": "replay"}) as recorder, OscSink(
            osc
        ) as sink, watch as feed:
            for camera, video in zip(cameras, inputs):
                spec = FileSpec(path=video.resolve(), loop=False, pacing="realtime" if realtime else "fast")
                with contextlib.ExitStack() as stack:
                    source = stack.enter_context(open_source(spec, camera.id, lossless=not realtime))
                    total = _frame_count(video)
                    results: dict[str, list[PerformerResult]] = {}  # per performer, frame by frame
                    overlay_path = out_dir / f"overlay_{camera.id}.mp4"
                    writer = None
                    bar = tqdm(total=total, desc=f"replay {camera.id}", unit="frame", disable=not progress)
                    frames = 0
                    for frame in source:
                        if writer is None:  # the overlay has the frames' size, known at the first frame
                            size = (frame.width, frame.height)
                            writer = stack.enter_context(OverlayWriter(overlay_path, _fps(video), size))
                        done = pipeline.process([frame], t_send=t_send)
                        for result in done:
                            if result.refused:  # the clip changed resolution mid-way and no longer fits
                                raise ConfigError(f"--input {video}: frame {frame.seq}: {result.reason}")
                        # In replay the capture time is the video's, so "latency" is the processing time.
                        latency_ms = sum(values[-1] for values in pipeline.times.ms.values())
                        latencies.append(latency_ms)
                        for result in done:
                            if send_osc:
                                sink.send_performer(PerformerFrame.from_result(result, show.tracking.min_confidence))
                            recorder.write_result(result, latency_ms)
                            results.setdefault(result.performer, []).append(result)
                        if send_osc:
                            sink.heartbeat(performers_tracked=sum(r.tracked for r in done))
                        if not rts:
                            writer.write(_draw(frame.image, done, show, [r.joints for r in done], "kalman"))
                        frames += 1
                        if feed is not None:  # a reference for the page; drawn on the monitor's own thread
                            feed.publish(frame, done, latency_ms)
                            if feed.status_due(time.monotonic()):
                                feed.publish_status(_monitor_status(show, camera, source.health(), done, latencies,
                                                                    f"{video.name} frame {frames}/{total or '?'}",
                                                                    time.perf_counter() - started, sink))  # fmt: skip
                        bar.update(1)
                        if max_frames is not None and frames >= max_frames:
                            break
                    bar.close()
                    if writer is None:
                        raise ConfigError(f"--input {video}: no frame could be decoded")
                    if rts:
                        smoothed = {name: _rts(rs, show) for name, rs in results.items()}
                        for name, rs in results.items():
                            suffix = camera.id if len(results) == 1 else f"{camera.id}_{name}"
                            _write_rts_record(out_dir / f"keypoints_rts_{suffix}.jsonl", rs, smoothed[name])
                        with open_source(spec, camera.id, lossless=True) as again:
                            for n, frame in enumerate(again):
                                if n >= frames:
                                    break
                                done = [rs[n] for rs in results.values()]
                                joints = [smoothed[name][n] for name in results]
                                writer.write(_draw(frame.image, done, show, joints, "rts"))
                    summary.frames[camera.id] = frames
                    for name, rs in results.items():
                        summary.tracked_fraction[name] = round(float(np.mean([r.tracked for r in rs])), 3)
                    summary.overlays[camera.id] = str(overlay_path)
            if feed is not None:
                feed.farewell = f"the replay finished ({sum(summary.frames.values())} frames)"
        summary.record = str(record_path)
    finally:
        if own_backend:
            backend.close()
    summary.wall_s = round(time.perf_counter() - started, 2)
    stages = {**pipeline.times.ms, "total": latencies}
    summary.latency = {name: latency_summary(values) for name, values in stages.items()}
    (out_dir / "latency.json").write_text(json.dumps({"backend": backend.describe(), **summary.latency}, indent=2))
    save_latency_histogram(stages, str(out_dir / "latency.png"), f"{show.show}: per-frame processing time")
    return summary


def _run_multiview(
    show: ShowConfig,
    inputs: list[Path],
    out_dir: Path,
    *,
    realtime: bool,
    send_osc: bool,
    rts: bool,
    progress: bool,
    backend: Backend | None,
    monitor: bool,
    max_frames: int | None,
) -> ReplaySummary:
    """A multiview show's replay: every input together, 3D record, reprojected overlays, 3D summary."""
    from stagepose.show.replay3d import print_summary, run_multiview_replay

    unsupported = [o for o, on in (("--realtime", realtime), ("--rts", rts), ("--monitor", monitor)) if on]
    if unsupported:
        raise ConfigError(f"{' '.join(unsupported)}: not available yet for a show with a 'multiview:' section "
                          "(its replay writes the 3D record, overlays and summary, and sends OSC with --osc; "
                          "`stagepose live` runs it at the cameras' pace with the monitor page)")  # fmt: skip
    cameras = replay_cameras(show, inputs)
    out_dir.mkdir(parents=True, exist_ok=True)
    own_backend = backend is None
    backend = backend or open_show_backend(show)
    try:
        result = run_multiview_replay(show, cameras, inputs, out_dir, backend, progress=progress,
                                      max_frames=max_frames, send_osc=send_osc)  # fmt: skip
    finally:
        if own_backend:
            backend.close()
    print_summary(result)
    frames = int(result["frames"])
    summary = ReplaySummary(out_dir=out_dir, frames={c.id: frames for c in cameras},
                            overlays=dict(result["overlays"]), record=str(result["record"]),
                            wall_s=float(result["wall_s"]))  # fmt: skip
    summary.tracked_fraction = {name: p["share_with_3d_pose"] for name, p in result["performers"].items()}
    summary.multiview = {"summary": str(out_dir / "summary3d.json")}
    return summary


def _open_monitor(show: ShowConfig, cameras: list[CameraConfig]) -> contextlib.AbstractContextManager[MonitorFeed]:
    from stagepose.show.monitor.server import open_monitor

    return open_monitor(show, mode="replay", camera_ids=[c.id for c in cameras])


def _monitor_status(
    show: ShowConfig,
    camera: CameraConfig,
    health: SourceHealth,
    done: list[PerformerResult],
    latencies: list[float],
    note: str,
    elapsed_s: float,
    sink: OscSink,
) -> ShowStatus:
    """What the monitor page shows during a replay: the camera being replayed, its performers, OSC."""
    from stagepose.show.monitor.snapshot import ShowStatus
    from stagepose.show.status import CameraStatus

    recent = np.asarray(latencies[-show.telemetry.window_frames :])
    p50, p95 = np.percentile(recent, [50, 95]) if recent.size else (float("nan"), float("nan"))
    desc = f"processing time (replay) p50 {p50:.1f} ms; {note}"
    board = CameraStatus(
        camera_id=camera.id, performer=",".join(p.address for p in show.performers_of(camera.id)),
        source_state=health.state.value, fps=health.fps, latency_p50_ms=float(p50), latency_p95_ms=float(p95),
        dropped=health.frames_dropped, reconnects=health.reconnects, tracked=any(r.tracked for r in done),
    )  # fmt: skip
    return ShowStatus(
        show=show.show, mode="replay", elapsed_s=elapsed_s, backend="", cameras=[board],
        health={camera.id: health}, tracked={(r.camera_id, r.performer): r.tracked for r in done},
        osc=sink.stats(), note=desc,
    )  # fmt: skip


def _draw(
    image: np.ndarray, results: list[PerformerResult], show: ShowConfig, joints: list[np.ndarray], label: str
) -> np.ndarray:
    """Every performer of the frame: skeleton, crop box and name (colour per performer)."""
    if not results:
        return image
    first = results[0]
    states = "  ".join(f"{r.performer} {'tracked' if r.tracked else 'LOST'}" for r in results)
    out = image
    for k, (result, pose) in enumerate(zip(results, joints)):
        out = draw_pose(
            out,
            np.asarray(pose),
            result.confidence,
            min_confidence=show.tracking.min_confidence,
            box=None if result.crop is None else (result.crop.center, result.crop.size),
            label=f"{first.camera_id} #{first.frame_seq} {states} ({label})" if k == 0 else None,
            name=result.performer if result.tracked else None,
            name_colour=performer_colour(k),
        )
    return out


def _rts(results: list[PerformerResult], show: ShowConfig) -> np.ndarray:
    joints = np.stack([r.raw_joints for r in results])
    conf = np.stack([r.raw_confidence if r.tracked else np.zeros_like(r.raw_confidence) for r in results])
    times = np.maximum.accumulate(np.array([r.t_capture for r in results]))
    return rts_smooth(joints, conf, times, show.smoothing.kalman)


def _write_rts_record(path: Path, results: list[PerformerResult], smoothed: np.ndarray) -> None:
    with KeypointRecorder(path, metadata={"smoother": "rts"}) as recorder:
        for result, joints in zip(results, smoothed):
            recorder.write_frame(
                t_capture=result.t_capture,
                camera=result.camera_id,
                performer=result.performer,
                seq=result.frame_seq,
                status="tracked" if result.tracked else "lost",
                raw=result.raw_joints,
                raw_confidence=result.raw_confidence,
                smoothed=joints,
                occluded=result.occluded,
            )


def _frame_count(video: Path) -> int | None:
    import av

    try:
        with av.open(str(video)) as container:
            frames = container.streams.video[0].frames
            return int(frames) or None
    except (av.FFmpegError, IndexError, OSError):
        return None


def _fps(video: Path) -> float:
    import av

    try:
        with av.open(str(video)) as container:
            rate = container.streams.video[0].average_rate
            return float(rate) if rate else 30.0
    except (av.FFmpegError, IndexError, OSError):
        return 30.0
