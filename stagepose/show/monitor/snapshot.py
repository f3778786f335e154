"""The hand-over between the show loop and the monitor: what the loop publishes, what the page reads.

The show loop must never wait for the monitor, so nothing here blocks or locks on the loop's side:
``publish`` stores a *reference* to the frame and its results in a one-per-camera "latest" slot (a
dict item assignment, atomic under the GIL; the image is not copied: sources never write to a frame
they handed over) and appends one latency sample to a bounded deque (``append`` is atomic too). The
monitor's own thread reads the slots when it wants a picture and drains the deque; a slot overwritten
before the monitor looked is simply a frame the page did not need. While no browser is connected
(``watching`` false) the loop stores no frames at all, so no image is kept alive for nobody.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from stagepose.show.osc.sink import DestinationStats
from stagepose.show.result import PerformerResult
from stagepose.show.sources.frame import Frame
from stagepose.show.sources.health import SourceHealth
from stagepose.show.status import CameraStatus

STATUS_INTERVAL_S = 0.5  # how often the loop hands over its telemetry while a browser watches
LATENCY_SAMPLES = 32_768  # bound of the latency deque: a minute of 3 cameras at 180 fps


class CameraView(NamedTuple):
    """The newest processed frame of one camera and the results the pipeline made of it."""

    frame: Frame
    results: tuple[PerformerResult, ...]


@dataclass(frozen=True)
class ShowStatus:
    """The show's telemetry at one moment, handed to the monitor a couple of times a second.

    Attributes:
        show: the show's name; mode: ``live`` or ``replay``.
        elapsed_s: since the show (or replay) started.
        backend: e.g. ``onnxruntime cpu fp32``.
        cameras: the terminal board's lines, one per camera (state, fps, latency, drops, reconnects).
        health: each camera's source health (received, dropped, decode errors, source fps), by camera id.
        tracked: (camera id, performer OSC name) -> tracked in that camera's last frame.
        osc: each OSC destination's counters (sent, errors).
        record_error: why the keypoint record is not writing, else None.
        note: a line for the page's header (replay: which video, how far).
    """

    show: str
    mode: Literal["live", "replay"]
    elapsed_s: float
    backend: str
    cameras: Sequence[CameraStatus]
    health: Mapping[str, SourceHealth] = field(default_factory=dict)
    tracked: Mapping[tuple[str, str], bool] = field(default_factory=dict)
    osc: Sequence[DestinationStats] = ()
    record_error: str | None = None
    note: str = ""


class MonitorFeed:
    """The show loop's side of the monitor: cheap, non-blocking hand-over of frames, latency and status.

    The loop calls `publish` for each processed frame and, when `status_due`, `publish_status`; the
    monitor server reads `views`, `status` and `drain_latencies` from its own thread and sets
    `watching` while at least one browser is connected.
    """

    def __init__(self, status_interval_s: float = STATUS_INTERVAL_S, latency_samples: int = LATENCY_SAMPLES) -> None:
        self.watching = False  # written by the server thread only
        self.paused = False  # `stagepose bench pipeline --monitor` switches the page off and on to time it
        self.farewell = "the show process stopped"  # the loop says why it ends; sent to the page at close
        self._views: dict[str, CameraView] = {}
        self._status: ShowStatus | None = None
        self._status_time: float | None = None  # monotonic time of the last publish_status
        self._latencies: collections.deque[tuple[float, float]] = collections.deque(maxlen=latency_samples)
        self._status_interval_s = status_interval_s
        self._next_status = 0.0
        self.published = 0  # frames handed over while watched

    # ----------------------------------------------------------------------------- show loop side

    def publish(self, frame: Frame, results: Sequence[PerformerResult], latency_ms: float | None = None) -> None:
        """Hand over one processed frame (by reference) and its capture-to-send latency; never blocks.

        Args:
            frame: the frame the pipeline just processed (not copied; sources never write to it again).
            results: that camera's results for it, one per performer.
            latency_ms: capture to send of this frame, for the page's latency chart (kept even while
                nobody watches, in a bounded deque, so the chart has the last minute when a page opens).
        """
        if latency_ms is not None:
            self._latencies.append((time.monotonic(), latency_ms))
        if self.watching and not self.paused:
            self._views[frame.camera_id] = CameraView(frame, tuple(results))
            self.published += 1

    def status_due(self, now: float) -> bool:
        """Whether the loop should build a `ShowStatus` now (a browser watches and the interval passed).

        Args:
            now: ``time.monotonic()``.
        """
        return self.watching and not self.paused and now >= self._next_status

    def publish_status(self, status: ShowStatus) -> None:
        """Hand over the show's telemetry (call when `status_due`)."""
        self._status = status
        self._status_time = time.monotonic()
        self._next_status = self._status_time + self._status_interval_s

    # ------------------------------------------------------------------------------- monitor side

    def views(self) -> dict[str, CameraView]:
        """A copy of the latest view per camera (the dict copy is atomic under the GIL)."""
        return dict(self._views)

    @property
    def status(self) -> ShowStatus | None:
        return self._status

    def status_age_s(self, now: float) -> float | None:
        """Seconds since the loop last handed over its status (None before the first): a show loop that
        stopped turning shows here, while the server itself still answers."""
        return None if self._status_time is None else now - self._status_time

    def drain_latencies(self) -> list[tuple[float, float]]:
        """Take every (monotonic time, latency ms) sample published since the last drain."""
        out = []
        while True:
            try:
                out.append(self._latencies.popleft())
            except IndexError:
                return out

    def set_watching(self, watching: bool) -> None:
        """Server side: a browser is connected (or the last one left: drop the frames kept for it)."""
        self.watching = watching
        if watching:
            self._next_status = 0.0  # a status at once for the page that just opened
        else:
            self._views.clear()
