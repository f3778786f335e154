"""Matching frames of several cameras in time, by capture timestamp.

Recorded files in lockstep and live feeds alike are matched by ``t_capture``: a frame of another camera
belongs to a reference frame when it is the nearest one in time and no further than half a frame
period; each frame is used once. The spread of the matched capture times (the skew) is reported per
group, so a camera whose clock or latency drifts shows up in numbers rather than in wobbly joints.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np

T = TypeVar("T")


@dataclass(frozen=True)
class FrameGroup(Generic[T]):
    """Frames of several cameras taken at (about) the same time.

    Attributes:
        t: the reference frame's capture time (Unix seconds).
        items: camera -> its payload (e.g. that frame's 2D poses).
        times: camera -> its capture time.
        missing: cameras with no frame within tolerance.
    """

    t: float
    items: dict[str, T]
    times: dict[str, float]
    missing: tuple[str, ...] = ()

    @property
    def skew_s(self) -> float:
        """Latest minus earliest capture time of the group, seconds (0 for one camera)."""
        values = list(self.times.values())
        return max(values) - min(values) if values else 0.0


@dataclass(frozen=True)
class MatchReport(Generic[T]):
    """Groups in reference order and what did not match.

    Attributes:
        groups: one per reference frame.
        reference: the camera whose frames define the groups.
        period_s: the frame period used (tolerance: half of it).
        unmatched: camera -> frames of it that joined no group.
    """

    groups: list[FrameGroup[T]]
    reference: str
    period_s: float
    unmatched: dict[str, int] = field(default_factory=dict)

    def skew_summary(self) -> dict[str, float]:
        """Median and maximum group skew in milliseconds, over groups with 2 or more cameras."""
        skews = [g.skew_s for g in self.groups if len(g.times) > 1]
        if not skews:
            return {"median_ms": 0.0, "max_ms": 0.0}
        return {"median_ms": float(np.median(skews) * 1e3), "max_ms": float(np.max(skews) * 1e3)}


def frame_period(times: Sequence[float]) -> float:
    """The median positive step between successive capture times (seconds).

    Raises:
        ValueError: fewer than two distinct times.
    """
    steps = np.diff(np.sort(np.asarray(times, dtype=np.float64)))
    steps = steps[steps > 0]
    if len(steps) == 0:
        raise ValueError("a frame period needs at least two distinct capture times")
    return float(np.median(steps))


def match_streams(
    streams: Mapping[str, Sequence[tuple[float, T]]],
    *,
    period_s: float | None = None,
    reference: str | None = None,
) -> MatchReport[T]:
    """Group per-camera streams of (t_capture, payload) by nearest capture time.

    Args:
        streams: camera -> its frames as (t_capture seconds, payload), in any order.
        period_s: the frame period; default: the reference stream's median step.
        reference: the camera whose frames define the groups; default: the one with the most frames
            (the first named on a tie).

    Returns:
        A `MatchReport`: one group per reference frame, in time order; a camera's frame joins the group
        of the reference frame nearest to it if it is within ``period_s / 2`` of it and the nearest of its
        stream to that reference frame.

    Raises:
        ValueError: no streams, an unknown reference, or a period that cannot be determined.
    """
    if not streams:
        raise ValueError("no camera streams to match")
    if reference is None:
        reference = max(streams, key=lambda name: len(streams[name]))
    if reference not in streams:
        raise ValueError(f"reference camera {reference!r} is not among the streams {list(streams)}")
    ref = sorted(streams[reference], key=lambda item: item[0])
    ref_t = np.array([t for t, _ in ref], dtype=np.float64)
    period = frame_period(ref_t.tolist()) if period_s is None else float(period_s)
    if not period > 0:
        raise ValueError(f"period_s must be > 0, got {period_s}")
    tolerance = period / 2.0
    chosen: dict[str, dict[int, tuple[float, T]]] = {}
    unmatched: dict[str, int] = {}
    for name, stream in streams.items():
        if name == reference:
            continue
        best: dict[int, tuple[float, float, T]] = {}  # reference index -> (distance, t, payload)
        for t, payload in stream:
            if len(ref_t) == 0:
                break
            i = int(np.searchsorted(ref_t, t))
            near = [j for j in (i - 1, i) if 0 <= j < len(ref_t)]
            j = min(near, key=lambda j: abs(ref_t[j] - t))
            distance = abs(ref_t[j] - t)
            if distance <= tolerance and (j not in best or distance < best[j][0]):
                best[j] = (distance, float(t), payload)
        chosen[name] = {j: (t, payload) for j, (_, t, payload) in best.items()}
        unmatched[name] = len(stream) - len(best)
    groups = []
    for j, (t, payload) in enumerate(ref):
        items = {reference: payload}
        times = {reference: float(t)}
        missing = []
        for name in streams:
            if name == reference:
                continue
            if j in chosen[name]:
                times[name], items[name] = chosen[name][j]
            else:
                missing.append(name)
        groups.append(FrameGroup(t=float(t), items=items, times=times, missing=tuple(missing)))
    return MatchReport(groups=groups, reference=reference, period_s=period, unmatched=unmatched)


def group_latest(latest: Mapping[str, tuple[float, T]], period_s: float) -> FrameGroup[T]:
    """The live case: from each camera's newest frame, those taken together with the newest one.

    A camera whose newest frame is more than ``period_s / 2`` older than the newest frame of all is
    left out (it is late; its next frame will match a later group).

    Args:
        latest: camera -> (t_capture, payload) of its newest frame.
        period_s: the frame period (seconds).

    Returns:
        The group, with the latecomers in ``missing``.

    Raises:
        ValueError: no cameras, or a period that is not > 0.
    """
    if not latest:
        raise ValueError("no camera frames to group")
    if not period_s > 0:
        raise ValueError(f"period_s must be > 0, got {period_s}")
    newest = max(t for t, _ in latest.values())
    items = {name: payload for name, (t, payload) in latest.items() if newest - t <= period_s / 2.0}
    times = {name: float(t) for name, (t, _) in latest.items() if name in items}
    missing = tuple(name for name in latest if name not in items)
    return FrameGroup(t=float(newest), items=items, times=times, missing=missing)
