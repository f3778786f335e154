"""What the page receives as JSON: the show's state (cameras, performers, OSC, record) and the latency chart.

Built on the monitor's thread from the loop's last `ShowStatus`, the latest results and the latency
samples. Plain data only (JSON has no NaN: unknown numbers are null).
"""

from __future__ import annotations

import collections
import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from stagepose.show.config import ShowConfig
from stagepose.show.monitor.snapshot import CameraView, ShowStatus
from stagepose.show.overlay import performer_colour

CHART_WINDOW_S = 60.0  # the latency chart covers the last minute
CHART_BUCKET_S = 2.0  # one point (p50, p95) per bucket
MAX_SAMPLES = 65_536  # samples kept for the chart: a minute of 3 cameras at 360 fps


def _num(value: float | None, digits: int = 1) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


def _hex(bgr: tuple[int, int, int]) -> str:
    b, g, r = bgr
    return f"#{r:02x}{g:02x}{b:02x}"


class LatencyHistory:
    """Capture-to-send latency over the last ``window_s``: p50/p95 per bucket and over the whole window.

    Buckets are fixed slices of the monotonic clock, so a finished bucket's percentiles are computed once;
    each `chart` call sorts only the current bucket and the window (a few thousand numbers). Not thread-safe:
    fed and read by the monitor's render thread only.
    """

    def __init__(self, window_s: float = CHART_WINDOW_S, bucket_s: float = CHART_BUCKET_S) -> None:
        self.window_s = window_s
        self.bucket_s = bucket_s
        self._samples: collections.deque[tuple[float, float]] = collections.deque(maxlen=MAX_SAMPLES)
        self._open: dict[int, list[float]] = {}  # bucket -> its samples, until it is over
        self._done: dict[int, tuple[float | None, float | None]] = {}  # bucket -> (p50, p95)

    def extend(self, samples: list[tuple[float, float]]) -> None:
        """Add (monotonic time, latency ms) samples, oldest first."""
        self._samples.extend(samples)
        for t, value in samples:
            self._open.setdefault(int(t // self.bucket_s), []).append(value)

    def chart(self, now: float) -> dict[str, Any]:
        """``{"window_s", "bucket_s", "t": [s before now], "p50": [...], "p95": [...], "p50_ms", "p95_ms",
        "count"}`` over the last window (``now``: ``time.monotonic()``)."""
        while self._samples and now - self._samples[0][0] > self.window_s:
            self._samples.popleft()
        current = int(now // self.bucket_s)
        first = int((now - self.window_s) // self.bucket_s) + 1
        for bucket in [b for b in self._open if b < current]:
            values = self._open.pop(bucket)
            b50, b95 = np.percentile(values, [50, 95])
            self._done[bucket] = (_num(b50), _num(b95))
        for bucket in [b for b in self._done if b < first]:
            del self._done[bucket]
        points = dict(self._done)
        if current in self._open:
            b50, b95 = np.percentile(self._open[current], [50, 95])
            points[current] = (_num(b50), _num(b95))
        out: dict[str, Any] = {"window_s": self.window_s, "bucket_s": self.bucket_s, "t": [], "p50": [], "p95": [],
                               "p50_ms": None, "p95_ms": None, "count": len(self._samples)}  # fmt: skip
        for bucket in sorted(b for b in points if b >= first):
            out["t"].append(round((bucket + 0.5) * self.bucket_s - now, 1))
            out["p50"].append(points[bucket][0])
            out["p95"].append(points[bucket][1])
        if self._samples:
            window = np.fromiter((v for _, v in self._samples), np.float64, len(self._samples))
            p50, p95 = np.percentile(window, [50, 95])
            out["p50_ms"], out["p95_ms"] = _num(p50), _num(p95)
        return out


def status_payload(
    show: ShowConfig,
    status: ShowStatus | None,
    views: Mapping[str, CameraView],
    chart: dict[str, Any],
    monitor: dict[str, Any],
    *,
    camera_ids: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The page's ``status`` event.

    Args:
        show: the show config (cameras and performers in file order).
        status: the loop's last telemetry (None before the first).
        views: the latest frame and results per camera.
        chart: `LatencyHistory.chart`.
        monitor: the monitor's own counters (clients, pictures, drops).
        camera_ids: the cameras to show (default: every active camera).
    """
    min_conf = show.tracking.min_confidence
    boards = {c.camera_id: c for c in status.cameras} if status else {}
    healths = status.health if status else {}
    tracked = status.tracked if status else {}
    shown = [c for c in show.active_cameras if camera_ids is None or c.id in camera_ids]
    cameras = []
    for camera in shown:
        board, health = boards.get(camera.id), healths.get(camera.id)
        view = views.get(camera.id)
        cameras.append({
            "id": camera.id,
            "performers": [p.address for p in show.performers_of(camera.id)],
            "state": board.source_state if board else (health.state.value if health else "starting"),
            "kind": health.kind if health else None,
            "fps": _num(board.fps) if board else None,
            "source_fps": _num(health.fps) if health else None,
            "latency_p50_ms": _num(board.latency_p50_ms) if board else None,
            "latency_p95_ms": _num(board.latency_p95_ms) if board else None,
            "dropped": board.dropped if board else None,
            "reconnects": board.reconnects if board else None,
            "decode_errors": health.decode_errors if health else None,
            "frame_age_s": _num(health.last_frame_age_s, 2) if health else None,
            "tracked": board.tracked if board else False,
            "error": board.error if board else None,
            "frame_seq": view.frame.seq if view else None,
        })  # fmt: skip
    performers = []
    for index, performer in enumerate(show.cast):
        for camera_id in performer.cameras:
            if camera_id not in {c.id for c in shown}:
                continue
            view = views.get(camera_id)
            result = next((r for r in view.results if r.performer == performer.address), None) if view else None
            is_tracked = tracked.get((camera_id, performer.address), result.tracked if result else False)
            state = "waiting"
            if result is not None:
                state = "refused" if result.refused else ("tracked" if is_tracked else "lost")
            elif (camera_id, performer.address) in tracked:
                state = "tracked" if is_tracked else "lost"
            seen = 0
            floor = None
            if result is not None and is_tracked:
                ok = np.isfinite(result.joints).all(axis=1) & (result.confidence >= min_conf) & (result.confidence > 0)
                seen = int(ok.sum())
                floor = None if result.floor is None else [_num(result.floor[0], 2), _num(result.floor[1], 2)]
            performers.append({
                "name": performer.name, "osc_name": performer.address, "camera": camera_id, "state": state,
                "joints_seen": seen, "joints": len(result.confidence) if result is not None else 16,
                "stage_m": floor, "colour": _hex(performer_colour(index_in_camera(show, camera_id, performer.address))),
                "order": index,
            })  # fmt: skip
    osc = [dataclasses.asdict(d) for d in status.osc] if status else []
    return {
        "show": show.show,
        "mode": status.mode if status else "starting",
        "elapsed_s": _num(status.elapsed_s) if status else None,
        "backend": status.backend if status else "",
        "note": status.note if status else "",
        "record_error": status.record_error if status else None,
        "min_confidence": min_conf,
        "cameras": cameras,
        "performers": performers,
        "osc": osc,
        "latency": chart,
        "monitor": monitor,
    }


def index_in_camera(show: ShowConfig, camera_id: str, address: str) -> int:
    """A performer's place among the performers of a camera (its colour in the picture)."""
    names = [p.address for p in show.performers_of(camera_id)]
    return names.index(address) if address in names else 0
