"""`stagepose live`: run a show until the files end, Ctrl-C or SIGTERM.

The loop polls every camera without blocking (one dead camera never holds up the others), batches
the newest frames into one inference call, sends OSC, appends the keypoint record and redraws the
status board. A camera that stops delivering, never connects, fails, or whose frames are refused
(calibration does not fit) is reported lost: ``/status 0`` every ``LOST_STATUS_INTERVAL_S``, the
board, and a ``camera_lost`` / ``camera_failed`` record event with the reason; every performer that
camera follows is sent lost. ``/stagepose/heartbeat`` counts the performers tracked now. Its source reconnects
on its own thread; when frames return it is tracked again. The record is secondary: a write error is
shown on the board, logged and sent as ``/stagepose/record 0 ...``, and the show goes on.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

from stagepose.runtime.backends.base import Backend, BackendConfig
from stagepose.show.config import CameraConfig, ShowConfig
from stagepose.show.osc import OscSink, PerformerFrame
from stagepose.show.pipeline import PosePipeline
from stagepose.show.record import KeypointRecorder
from stagepose.show.sources.base import ThreadedSource
from stagepose.show.sources.clock import SharedAnchor
from stagepose.show.sources.health import SourceHealth, SourceState
from stagepose.show.status import CameraStatus, StatusBoard
from stagepose.show.telemetry import CameraStats, latency_summary

if TYPE_CHECKING:
    from stagepose.show.live3d import LiveFusion
    from stagepose.show.monitor.snapshot import MonitorFeed, ShowStatus
    from stagepose.show.sync import SyncedFrames

log = logging.getLogger(__name__)

LOST_STATUS_INTERVAL_S = 1.0  # how often a camera without frames re-sends its 'lost' status
IDLE_SLEEP_S = 0.001


@dataclass
class LiveSummary:
    """What a run did, for the final report and tests."""

    frames: dict[str, int] = field(default_factory=dict)
    latency_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    stage_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    backend: str = ""
    stopped_by: str = ""
    osc: str = ""
    cameras_without_frames: dict[str, str] = field(default_factory=dict)
    record_error: str | None = None
    record_lines_lost: int = 0
    multiview: dict[str, Any] = field(default_factory=dict)  # a multiview show: its 3D steps (`LiveFusion.summary`)

    @property
    def show_failed(self) -> bool:
        """No camera delivered a single usable frame (all failed, never connected, or were refused)."""
        return not any(self.frames.values())


def backend_config(show: ShowConfig) -> BackendConfig:
    """The runtime backend settings from the show's model section, batching all its cameras."""
    return show.model.backend_config(show.resolve, max_batch=max(1, len(show.active_cameras)))


def open_show_backend(show: ShowConfig) -> Backend:
    """Open and warm up the model for the show's batch size (lazy work happens before the show)."""
    from stagepose.runtime.backends.select import open_backend

    backend = open_backend(backend_config(show))
    batch = len(show.active_cameras)
    backend.warmup(tuple(sorted({1, batch})))
    return backend


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Set ``stop`` on SIGINT/SIGTERM while inside (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum: int, _frame: object) -> None:
        log.info("received %s: stopping after this frame", signal.Signals(signum).name)
        stop.set()

    for sig in previous:
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run_live(
    show: ShowConfig,
    *,
    stop: threading.Event | None = None,
    status_stream: TextIO | None = None,
    backend: Backend | None = None,
) -> LiveSummary:
    """Run ``show`` until its file sources end (``run.stop_when_sources_end``), ``run.max_duration_s``
    passes, ``stop`` is set, or Ctrl-C / SIGTERM.

    Raises:
        ConfigError / EngineError / ModelError: before the show starts (bad file, no usable backend).
    """
    stop = stop or threading.Event()
    with contextlib.ExitStack() as stack:
        if backend is None:
            backend = stack.enter_context(open_show_backend(show))
        stack.enter_context(stop_on_signals(stop))
        loop = _LiveLoop(show, backend, status_stream or sys.stderr, stack)
        return loop.run(stop)


class _LiveLoop:
    """The open parts of a running show and one iteration of its loop (poll, infer, send, watch, report)."""

    def __init__(self, show: ShowConfig, backend: Backend, status_stream: TextIO, stack: contextlib.ExitStack):
        from stagepose.show.sources import open_source

        self.show = show
        self.cameras = show.active_cameras
        desc = backend.describe()
        self.backend_label = f"{desc['backend']} {desc['device']} {desc['precision']}"
        self.sink = stack.enter_context(OscSink(show.outputs.osc))
        self.monitor: MonitorFeed | None = None  # the operator's page; it draws on its own thread, never here
        if show.monitor.enabled:
            from stagepose.show.monitor.server import open_monitor

            self.monitor = stack.enter_context(open_monitor(show, mode="live"))
        self.recorder: KeypointRecorder | None = None
        if show.outputs.record.path:
            self.recorder = stack.enter_context(
                KeypointRecorder.from_config(
                    show.resolve(show.outputs.record.path),
                    show.outputs.record,
                    metadata={"show": show.show, "backend": self.backend_label},
                )
            )
        self.fusion: LiveFusion | None = None  # a multiview show: time steps of all cameras -> 3D per performer
        if show.fused:
            from stagepose.show.live3d import LiveFusion

            self.fusion = LiveFusion(show, self.cameras, self.sink, self.recorder)  # reads calibrations: fails early
        # files of a multiview show are recordings of synchronised cameras: they play in lockstep
        anchor = SharedAnchor() if show.fused else None
        self.sources: dict[str, ThreadedSource] = {
            c.id: stack.enter_context(
                open_source(c.uri, c.id, base_dir=show.base_dir, stall_timeout_s=c.stall_timeout_s, file_anchor=anchor)
            )
            for c in self.cameras
        }
        self.pipeline = PosePipeline(show, backend, self.cameras, timing_window=show.telemetry.window_frames)
        self.stats = {c.id: CameraStats(c.id, window=show.telemetry.window_frames) for c in self.cameras}
        # (camera, performer) -> whether that performer was tracked in the camera's last frame
        self.tracked: dict[tuple[str, str], bool] = {}
        self.board = stack.enter_context(  # log lines print above the board on a terminal
            StatusBoard(status_stream, show.telemetry.status_interval_s, show.telemetry.status_line)
        )
        self.last_lost_sent = {c.id: -float("inf") for c in self.cameras}
        self.was_live = {c.id: False for c in self.cameras}
        self.reported: dict[str, str | None] = {c.id: None for c in self.cameras}  # the problem on record
        self.started = time.monotonic()

    def run(self, stop: threading.Event) -> LiveSummary:
        started = self.started = time.monotonic()
        stopped_by = "stop requested"
        while not stop.is_set():
            processed = self._process_new_frames()
            healths = {cid: src.health() for cid, src in self.sources.items()}
            now = time.monotonic()
            self._watch_cameras(healths, now)
            if self.monitor is not None and self.monitor.status_due(now):  # only while a page is open
                self.monitor.publish_status(self._monitor_status(healths, now - started))
            if self.fusion is not None:
                self.fusion.send_lost_if_silent(now)
            self.sink.heartbeat(
                performers_tracked=self._performers_tracked(),
                record=None if self.recorder is None else (self.recorder.error is None, self.recorder.lines_lost),
            )
            if self.board.due(now):
                self._draw(healths, now - started)
            if self.show.run.stop_when_sources_end and all(h.state.finished for h in healths.values()):
                stopped_by = "sources ended"
                break
            if self.show.run.max_duration_s is not None and now - started >= self.show.run.max_duration_s:
                stopped_by = "max_duration_s reached"
                break
            if not processed:
                time.sleep(IDLE_SLEEP_S)
        healths = {cid: src.health() for cid, src in self.sources.items()}
        self._draw(healths, time.monotonic() - started)
        if self.monitor is not None:
            self.monitor.farewell = f"the show stopped: {stopped_by}"
        return LiveSummary(
            frames={cid: s.processed for cid, s in self.stats.items()},
            cameras_without_frames={
                c.id: self._problem(c, healths[c.id], float("inf")) or "no frame"
                for c in self.cameras
                if not self.stats[c.id].processed
            },
            record_error=None if self.recorder is None else self.recorder.error,
            record_lines_lost=0 if self.recorder is None else self.recorder.lines_lost,
            latency_ms={cid: latency_summary(list(s.latencies_ms)) for cid, s in self.stats.items()},
            stage_ms={k: latency_summary(v) for k, v in self.pipeline.times.ms.items()},
            backend=self.backend_label,
            stopped_by=stopped_by,
            osc=self.sink.summary(),
            multiview={} if self.fusion is None else self.fusion.summary(),
        )

    def _performers_tracked(self) -> int:
        """For the heartbeat: performers tracked now (in 3D in a multiview show, else in their camera)."""
        if self.fusion is not None:
            return sum(self.fusion.tracked.values())
        return sum(self.tracked.values())

    def _expected_cameras(self) -> set[str]:
        """Cameras that should deliver now: live, frames not refused (a multiview step waits for these)."""
        return {
            cid
            for cid, src in self.sources.items()
            if src.health().state == SourceState.LIVE and self.pipeline.camera_state(cid).refused is None
        }

    def _process_new_frames(self) -> bool:
        """Take each camera's newest frame, run them as one batch and send the results.

        A single-camera show never waits. A multiview show waits (bounded, `FrameSync`) for a camera whose
        newest frame is older than the others', then sends the fused 3D performers instead of each
        camera's 2D ones.
        """
        synced: SyncedFrames | None = None
        expected: set[str] = set()
        if self.fusion is not None:
            expected = self._expected_cameras()
            synced = self.fusion.take(self.sources, expected)
            frames = [] if synced is None else synced.frames
        else:
            frames = [f for src in self.sources.values() if (f := src.latest(timeout=0)) is not None]
        if not frames:
            return False
        # the send time is read once the model's output is decoded, so a forecast is for when packets leave
        results = self.pipeline.process(frames, t_send=time.time)
        for result in results:
            if result.refused:
                continue  # _watch_cameras reports the camera lost, with the reason
            if self.fusion is None:
                self.sink.send_performer(PerformerFrame.from_result(result, self.show.tracking.min_confidence))
            self.tracked[(result.camera_id, result.performer)] = result.tracked
            latency_ms = (time.time() - result.t_capture) * 1e3
            if self.recorder is not None:
                self.recorder.write_result(result, latency_ms)
        for frame in frames:  # camera statistics count frames, tracked while any of its performers is
            mine = [r for r in results if r.camera_id == frame.camera_id and not r.refused]
            if mine:
                latency_ms = (time.time() - frame.t_capture) * 1e3
                self.stats[frame.camera_id].add(latency_ms, any(r.tracked for r in mine))
                if self.monitor is not None:  # a reference into a slot: no copy, no wait
                    self.monitor.publish(frame, mine, latency_ms)
        if self.fusion is not None and synced is not None:
            self.fusion.step(synced, results, expected)
        return True

    def _problem(self, camera: CameraConfig, health: SourceHealth, now: float) -> str | None:
        """Why ``camera`` gives no pose now, or None (delivering, still starting, or a file that ended)."""
        state = health.state
        refused = self.pipeline.camera_state(camera.id).refused
        if state == SourceState.LIVE:
            return None if refused is None else f"frames refused: {refused}"
        if state == SourceState.ENDED:
            return None
        if state == SourceState.CONNECTING:
            # Give a camera its stall timeout to come up before calling it lost (unless it already failed).
            if health.last_error is None and now - self.started < camera.stall_timeout_s:
                return None
            return f"never connected: {health.last_error or 'no frame yet'}"
        return health.last_error or state.value

    def _watch_cameras(self, healths: dict[str, SourceHealth], now: float) -> None:
        """Report cameras that give no pose (log, record, OSC 'lost' at the lost rate) and their return."""
        for camera in self.cameras:
            health = healths[camera.id]
            state = health.state
            problem = self._problem(camera, health, now)
            if state == SourceState.LIVE and problem is None:
                if self.reported[camera.id] is not None and self.recorder is not None:
                    self.recorder.write_event("camera_resumed", camera=camera.id)
                self.reported[camera.id] = None
                self.was_live[camera.id] = True
                continue
            if state == SourceState.ENDED:
                continue
            if self.was_live[camera.id] and state != SourceState.LIVE:
                self.pipeline.reset_camera(camera.id)  # its next frames may come after a long gap
                self.stats[camera.id].tracked = False
                for key in self.tracked:
                    if key[0] == camera.id:
                        self.tracked[key] = False
                self.was_live[camera.id] = False
            if problem is not None:
                self._report(camera, state, problem)
            if self.fusion is None and now - self.last_lost_sent[camera.id] >= LOST_STATUS_INTERVAL_S:
                # (a multiview show keeps its performers from the other cameras; `LiveFusion` sends them
                # lost when no camera delivers)
                for lost in self.pipeline.no_frame(camera.id, time.time()):
                    self.sink.send_performer(PerformerFrame.from_result(lost, self.show.tracking.min_confidence))
                    self.tracked[(camera.id, lost.performer)] = False
                self.last_lost_sent[camera.id] = now

    def _report(self, camera: CameraConfig, state: SourceState, problem: str) -> None:
        """Log and record a camera's problem once per outage (and once more if it then fails for good)."""
        kind = "camera_failed" if state == SourceState.FAILED else "camera_lost"
        if self.reported[camera.id] in (kind, "camera_failed"):
            return
        performers = ",".join(self.pipeline.camera_state(camera.id).performers)
        log.warning("camera %r (performers %s) %s: %s", camera.id, performers, state.value, problem)
        if self.recorder is not None:
            shown = "refused" if problem.startswith("frames refused") else state.value
            self.recorder.write_event(kind, camera=camera.id, performer=performers, state=shown, reason=problem)
        self.reported[camera.id] = kind

    def _monitor_status(self, healths: dict[str, SourceHealth], elapsed_s: float) -> ShowStatus:
        """The telemetry the monitor page shows (the board's lines, source health, OSC counters)."""
        from stagepose.show.monitor.snapshot import ShowStatus

        return ShowStatus(
            show=self.show.show,
            mode="live",
            elapsed_s=elapsed_s,
            backend=self.backend_label,
            cameras=_statuses(self.cameras, healths, self.stats, self.pipeline),
            health=healths,
            tracked=dict(self.tracked),
            osc=self.sink.stats(),
            record_error=None if self.recorder is None else self.recorder.error,
        )

    def _draw(self, healths: dict[str, SourceHealth], elapsed_s: float) -> None:
        header = f"stagepose live: {self.show.show}  {elapsed_s:7.1f} s   (Ctrl-C stops)"
        if self.recorder is not None and self.recorder.error is not None:
            header += f"   RECORD NOT WRITING ({self.recorder.lines_lost} lines lost): {self.recorder.error}"
        footer = [] if self.fusion is None else [self.fusion.status_line()]
        self.board.show(header, _statuses(self.cameras, healths, self.stats, self.pipeline), self.backend_label, footer)


def _statuses(
    cameras: list[CameraConfig],
    healths: dict[str, SourceHealth],
    stats: dict[str, CameraStats],
    pipeline: PosePipeline,
) -> list[CameraStatus]:
    out = []
    for camera in cameras:
        health = healths[camera.id]
        p50, p95 = stats[camera.id].latency_percentiles()
        out.append(
            CameraStatus(
                camera_id=camera.id,
                performer=",".join(pipeline.camera_state(camera.id).performers),
                source_state=health.state.value,
                fps=stats[camera.id].fps,
                latency_p50_ms=p50,
                latency_p95_ms=p95,
                dropped=health.frames_dropped,
                reconnects=health.reconnects,
                tracked=stats[camera.id].tracked and health.state == SourceState.LIVE,
                error=pipeline.camera_state(camera.id).refused
                or (None if health.state == SourceState.LIVE else health.last_error),
            )
        )
    return out
