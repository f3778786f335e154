"""Per-camera health and latency: what the status line prints and the replay summary reports.

Latency is capture-to-send: from the frame's capture time (stream PTS or capture clock, anchored to
the wall clock) to the moment its OSC bundle leaves. Windows are bounded, so a long show uses
constant memory.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from stagepose.config import check_range

MAX_WINDOW_FRAMES = 100_000  # an hour at 30 fps; a larger window only costs memory

@dataclass(frozen=True)
class TelemetryConfig:
    """How often the status line refreshes (at most once an hour), and how many recent frames
    (10..100000) the statistics cover."""

    status_interval_s: float = 1.0
    window_frames: int = 300
    status_line: bool = True

    def __post_init__(self) -> None:
        check_range("status_interval_s", self.status_interval_s, 0.0, 3600.0, low_open=True, unit=" s")
        if not 10 <= self.window_frames <= MAX_WINDOW_FRAMES:
            raise ValueError(f"window_frames must be in 10..{MAX_WINDOW_FRAMES}, got {self.window_frames}")


@dataclass
class CameraStats:
    """Rolling statistics of one camera's processed frames."""

    camera_id: str
    window: int = 300
    latencies_ms: collections.deque = field(default_factory=collections.deque)
    frame_times: collections.deque = field(default_factory=collections.deque)
    all_latencies_ms: list[float] = field(default_factory=list)
    processed: int = 0
    tracked: bool = False
    keep_all: bool = False

    def __post_init__(self) -> None:
        self.latencies_ms = collections.deque(maxlen=self.window)
        self.frame_times = collections.deque(maxlen=self.window)

    def add(self, latency_ms: float, tracked: bool, now: float | None = None) -> None:
        self.latencies_ms.append(latency_ms)
        self.frame_times.append(time.monotonic() if now is None else now)
        if self.keep_all:
            self.all_latencies_ms.append(latency_ms)
        self.processed += 1
        self.tracked = tracked

    @property
    def fps(self) -> float:
        if len(self.frame_times) < 2:
            return 0.0
        span = self.frame_times[-1] - self.frame_times[0]
        return (len(self.frame_times) - 1) / span if span > 0 else 0.0

    def latency_percentiles(self) -> tuple[float, float]:
        """(p50, p95) over the window in ms, NaN before the first frame."""
        if not self.latencies_ms:
            return float("nan"), float("nan")
        values = np.fromiter(self.latencies_ms, dtype=np.float64)
        return float(np.percentile(values, 50)), float(np.percentile(values, 95))


def latency_summary(latencies_ms: Sequence[float] | np.ndarray) -> dict[str, float]:
    """p50/p95/p99/mean/max of a latency list, in ms (empty list: count 0)."""
    values = np.asarray(latencies_ms, dtype=np.float64)
    if values.size == 0:
        return {"count": 0}
    return {
        "count": int(values.size),
        "p50_ms": round(float(np.percentile(values, 50)), 3),
        "p95_ms": round(float(np.percentile(values, 95)), 3),
        "p99_ms": round(float(np.percentile(values, 99)), 3),
        "mean_ms": round(float(values.mean()), 3),
        "max_ms": round(float(values.max()), 3),
    }


def save_latency_histogram(stages_ms: Mapping[str, Sequence[float]], path: str, title: str) -> None:
    """A PNG histogram per pipeline stage (and the total), for people who would rather look."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n, v in stages_ms.items() if len(v)]
    fig, axes = plt.subplots(len(names), 1, figsize=(7, 1.8 * len(names) + 0.6), squeeze=False)
    for ax, name in zip(axes[:, 0], names):
        values = np.asarray(stages_ms[name])
        ax.hist(values, bins=50, color="#3b7dd8")
        p50, p95 = np.percentile(values, [50, 95])
        ax.axvline(p50, color="k", lw=1)
        ax.axvline(p95, color="r", lw=1, ls="--")
        ax.set_ylabel(name, rotation=0, ha="right", va="center")
        ax.text(0.99, 0.85, f"p50 {p50:.1f} ms  p95 {p95:.1f} ms", transform=ax.transAxes, ha="right", fontsize=8)
    axes[-1, 0].set_xlabel("milliseconds")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
