"""Taking live frames of several cameras that were captured together.

Live feeds are not genlocked: each camera delivers on its own clock and each source keeps only its
newest frame. So when the show takes its frames, one camera's newest may be a frame older than the
others'. `FrameSync.take` takes every camera's newest frame, and for each camera whose frame is more
than the tolerance (half a frame period by default) older than the newest of all, it waits a bounded
time for that camera's next frame, which is then due. The frames within the tolerance of the newest
form the time step that is triangulated; a late camera sits this step out (its frame still feeds its
2D tracker) and is counted, with the step's skew, so a camera whose clock or latency drifts shows in
numbers, not as wobbly joints.

The frame period of a camera is measured from its frames (capture-time step per decoded frame, which
counts frames a latest-only source skipped), so 25, 30 and 60 fps cameras mix.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Collection, Mapping
from dataclasses import dataclass

import numpy as np

from stagepose.show.sources.base import ThreadedSource
from stagepose.show.sources.frame import Frame

DEFAULT_PERIOD_S = 1.0 / 30.0  # until a camera's frames say otherwise
PERIOD_WINDOW = 30  # frame-to-frame steps the period is the median of


@dataclass(frozen=True)
class SyncedFrames:
    """One take: every frame to process, and which of them form the time step.

    Attributes:
        frames: every camera's newest frame (all go through the 2D pipeline).
        step: the camera ids whose frames were captured within the tolerance of the newest frame.
        t: the step's capture time: the mean of the step's capture times (Unix s).
        skew_s: latest minus earliest capture time within the step.
        waited_s: how long the take waited for late cameras.
    """

    frames: list[Frame]
    step: tuple[str, ...]
    t: float
    skew_s: float
    waited_s: float


class FrameSync:
    """Chooses, at each take, frames of the cameras that belong to one instant.

    Args:
        camera_ids: the show's active cameras.
        tolerance_s: fixed tolerance (seconds) or None: half the longest measured frame period.
        wait_s: fixed longest wait for a late camera, or None: the longest measured frame period.
        max_wait_s: the cap on the wait (the show loop is held while it waits).
    """

    def __init__(
        self, camera_ids: Collection[str], tolerance_s: float | None, wait_s: float | None, max_wait_s: float
    ) -> None:
        self._tolerance_s = tolerance_s
        self._wait_s = wait_s
        self._max_wait_s = max_wait_s
        self._steps: dict[str, deque[float]] = {cid: deque(maxlen=PERIOD_WINDOW) for cid in camera_ids}
        self._last: dict[str, Frame] = {}

    def period_s(self, camera_id: str | None = None) -> float:
        """The measured frame period of one camera, or the longest over all (default before any)."""
        ids = [camera_id] if camera_id is not None else list(self._steps)
        periods = [float(np.median(self._steps[cid])) for cid in ids if self._steps.get(cid)]
        return max(periods) if periods else DEFAULT_PERIOD_S

    @property
    def tolerance_s(self) -> float:
        return self._tolerance_s if self._tolerance_s is not None else self.period_s() / 2.0

    @property
    def wait_s(self) -> float:
        return min(self._wait_s if self._wait_s is not None else self.period_s(), self._max_wait_s)

    def take(self, sources: Mapping[str, ThreadedSource], expected: Collection[str]) -> SyncedFrames | None:
        """Every camera's newest frame, waiting (at most `wait_s`) for the ``expected`` ones that lag.

        Args:
            sources: the cameras' sources (never blocked on longer than the wait).
            expected: cameras that should deliver now (live and not refused); others are not waited for.

        Returns:
            The frames and the time step, or None when no camera has a new frame.
        """
        frames = {cid: f for cid, src in sources.items() if (f := src.latest(timeout=0)) is not None}
        if not frames:
            return None
        newest = max(f.t_capture for f in frames.values())
        tolerance = self.tolerance_s
        started = time.monotonic()
        deadline = started + self.wait_s
        for cid in expected:
            if cid not in sources:
                continue
            frame = frames.get(cid)
            while frame is None or newest - frame.t_capture > tolerance:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                later = sources[cid].latest(timeout=remaining)
                if later is None:
                    break
                frame = later
            if frame is not None:
                frames[cid] = frame
        waited = time.monotonic() - started
        for frame in frames.values():
            self._learn(frame)
        step = tuple(cid for cid, f in frames.items() if abs(f.t_capture - newest) <= tolerance)
        times = [frames[cid].t_capture for cid in step]
        return SyncedFrames(
            frames=list(frames.values()),
            step=step,
            t=float(np.mean(times)),
            skew_s=float(max(times) - min(times)),
            waited_s=waited,
        )

    def _learn(self, frame: Frame) -> None:
        """Update the camera's period from the capture-time step per decoded frame since its last take."""
        last = self._last.get(frame.camera_id)
        self._last[frame.camera_id] = frame
        if last is None or frame.seq <= last.seq:
            return  # first frame, or the source restarted (its frame counter began again)
        step = (frame.t_capture - last.t_capture) / (frame.seq - last.seq)
        if step > 0 and frame.camera_id in self._steps:
            self._steps[frame.camera_id].append(step)
