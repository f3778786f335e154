"""The 3D part of `stagepose live` for a show with a ``multiview`` section.

Per loop iteration the live loop takes frames through `stagepose.show.sync.FrameSync` (cameras captured
together, waiting a bounded time for a late one), runs them through the 2D pipeline as one batch, and
hands the results here. `LiveFusion.step` fuses the time step (`stagepose.show.fuse3d.Fuser3D`), sends
one OSC bundle per performer (``/pose3d`` plus the primary camera's reprojected ``/pose`` and the floor
point), appends ``pose3d`` lines to the record, and keeps the numbers the board, the final summary and
the operator need: steps, skew, cameras late for their step, triangulation time, performers tracked.

Degrading: a camera that drops out only leaves its views out (the others still triangulate; a joint
seen by fewer than ``min_views`` cameras is held by the smoother with falling confidence, then lost).
When no camera delivers at all, every performer is sent lost (``/status 0``) once a second.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Collection, Mapping
from typing import Any

import numpy as np

from stagepose.show.config import MAX_SYNC_WAIT_MS, CameraConfig, ShowConfig
from stagepose.show.fuse3d import Fuser3D, record_pose3d
from stagepose.show.osc import OscSink
from stagepose.show.record import KeypointRecorder
from stagepose.show.result import PerformerResult
from stagepose.show.sources.base import ThreadedSource
from stagepose.show.sync import FrameSync, SyncedFrames
from stagepose.show.telemetry import latency_summary

WINDOW = 600  # recent steps the board's percentiles are over
LOST_INTERVAL_S = 1.0  # how often performers are re-sent lost while no camera delivers


class LiveFusion:
    """Sync, fuse, send, record and count the 3D steps of a live multiview show.

    Args:
        show: a show with an enabled ``multiview`` section.
        cameras: its active cameras.
        sink: the open OSC sink; recorder: the open keypoint record, or None.

    Raises:
        ConfigError: a camera without extrinsics (before the show starts).
    """

    def __init__(
        self, show: ShowConfig, cameras: list[CameraConfig], sink: OscSink, recorder: KeypointRecorder | None
    ) -> None:
        mv = show.multiview
        assert mv is not None, "LiveFusion needs a show with a multiview section"
        self.fuser = Fuser3D(show, cameras)
        self.sync = FrameSync(
            [c.id for c in cameras],
            tolerance_s=None if mv.sync_tolerance_ms is None else mv.sync_tolerance_ms / 1e3,
            wait_s=None if mv.sync_wait_ms is None else mv.sync_wait_ms / 1e3,
            max_wait_s=MAX_SYNC_WAIT_MS / 1e3,
        )
        self.min_confidence = show.tracking.min_confidence
        self.forecast = show.smoothing.forecast_to_send  # 3D poses forecast to the send time, as the 2D ones
        self.sink = sink
        self.recorder = recorder
        self.camera_ids = [c.id for c in cameras]
        self.tracked = {name: False for name in self.fuser.names}
        self.steps = 0
        self.out_of_order = 0
        self.late: Counter[str] = Counter()  # camera -> steps it delivered no frame in time for
        self.tracked_steps: Counter[str] = Counter()  # performer -> steps with a 3D pose
        self.skew_ms: deque[float] = deque(maxlen=WINDOW)
        self.wait_ms: deque[float] = deque(maxlen=WINDOW)
        self.solve_ms: deque[float] = deque(maxlen=WINDOW)
        self.latency_ms: deque[float] = deque(maxlen=WINDOW)
        self._last_step = time.monotonic()
        self._last_lost_sent = -float("inf")

    def take(self, sources: Mapping[str, ThreadedSource], expected: Collection[str]) -> SyncedFrames | None:
        """The frames to process now (see `FrameSync.take`)."""
        return self.sync.take(sources, expected)

    def step(self, synced: SyncedFrames, results: list[PerformerResult], expected: Collection[str]) -> None:
        """Fuse the step's results, send every performer, record and count.

        Args:
            synced: what `take` returned; results: the 2D pipeline's results for ``synced.frames``.
            expected: the cameras that should have delivered (late ones among them are counted).
        """
        started = time.perf_counter()
        in_step = [r for r in results if r.camera_id in synced.step and not r.refused]
        poses = self.fuser.fuse(in_step, synced.t, time.time() if self.forecast else None)
        self.solve_ms.append((time.perf_counter() - started) * 1e3)
        if poses is None:  # a camera's clock jumped back: the smoother only moves forward
            self.out_of_order += 1
            return
        self.steps += 1
        self._last_step = time.monotonic()
        self.skew_ms.append(synced.skew_s * 1e3)
        self.wait_ms.append(synced.waited_s * 1e3)
        for cid in expected:
            if cid not in synced.step:
                self.late[cid] += 1
        for pose in poses:
            self.sink.send_performer(self.fuser.osc_frame(pose, self.min_confidence))
            latency_ms = (time.time() - pose.t) * 1e3
            if self.recorder is not None:
                record_pose3d(self.recorder, self.fuser.rig, pose, latency_ms=latency_ms, step_cameras=synced.step)
            self.tracked[pose.performer] = pose.tracked
            self.tracked_steps[pose.performer] += int(pose.tracked)
        self.latency_ms.append((time.time() - synced.t) * 1e3)

    def send_lost_if_silent(self, now: float) -> None:
        """No step for a while (every camera down): send every performer lost, once a second."""
        if now - self._last_step < LOST_INTERVAL_S or now - self._last_lost_sent < LOST_INTERVAL_S:
            return
        for name in self.fuser.names:
            self.sink.send_performer(self.fuser.lost_frame(name, time.time(), self.min_confidence))
            self.tracked[name] = False
        self._last_lost_sent = now

    def status_line(self) -> str:
        """One line for the status board: steps, skew, late cameras, triangulation time, who is in 3D."""
        if not self.steps:
            return "3D: waiting for the cameras' first frames"
        skew = np.percentile(self.skew_ms, [50, 95])
        late = ", ".join(f"{cid} {n / self.steps:.0%}" for cid, n in sorted(self.late.items()) if n) or "none"
        who = " ".join(f"{name} {'3D' if ok else 'LOST'}" for name, ok in self.tracked.items())
        return (f"3D: {self.steps} steps  skew p50/p95 {skew[0]:.1f}/{skew[1]:.1f} ms  late: {late}  "
                f"triangulation p50 {np.median(self.solve_ms):.2f} ms  {who}")  # fmt: skip

    def summary(self) -> dict[str, Any]:
        """The run's 3D numbers for `LiveSummary.multiview`."""
        steps = max(self.steps, 1)
        return {
            "steps": self.steps,
            "steps_out_of_order": self.out_of_order,
            "frame_period_ms": round(self.sync.period_s() * 1e3, 2),
            "sync_tolerance_ms": round(self.sync.tolerance_s * 1e3, 2),
            "skew_ms": latency_summary(list(self.skew_ms)),
            "sync_wait_ms": latency_summary(list(self.wait_ms)),
            "triangulation_ms": latency_summary(list(self.solve_ms)),
            "capture_to_send_ms": latency_summary(list(self.latency_ms)),
            "late_share": {cid: round(self.late[cid] / steps, 3) for cid in self.camera_ids},
            "tracked_share": {name: round(self.tracked_steps[name] / steps, 3) for name in self.fuser.names},
        }
