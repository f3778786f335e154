"""What each performer looks like: a colour model of the torso, to keep names when pose geometry is ambiguous.

Where a performer is heading (`stagepose.show.assign`) cannot tell two people apart when one walks behind
the other: a single-person model given a crop with both in it returns a pose on either, or a mix, and the
pose nearest a prediction may be the other person's. Clothes and skin can. A pose's *look* is a hue,
saturation and value histogram of the pixels on its torso: the shoulder-hip quadrilateral when all four
are seen, else a box around whatever torso joints are seen (at least 2; the box is at least
``MIN_EXTENT`` x pose height on each side, below the shoulders when no hip is seen), sampled on a
``GRID`` x ``GRID`` grid (about 0.15 ms per pose). On the pose2sim duet the Bhattacharyya distance
between whole-torso histograms of one person in two frames is about 0.3 (median; 0.5-0.7 at the 90th
percentile), between the two people about 0.8.

Each track learns its performer's look (`Look`, a running mean) only while it follows them confidently
and unambiguously: the whole shoulder-hip quadrilateral seen, none of its torso joints hidden by someone
in front, its torso box clear of every other performer's, and (once learned) looking like what was
learned so far and not more like another performer. Assignment then refuses, per track
(`stagepose.show.assign.TrackView.refused`):

- a hand-over: a pose that looks clearly more like another performer of the camera than this one;
- a stranger: a pose that looks like no performer the track knows: further than ``stranger`` from its
  look while it re-acquires a lost performer (the anatomical skeleton behind the duet's lead), further
  than ``stranger_following`` while it follows one (a pose on nobody's torso); never while it searches
  the whole zone, so a lighting change while someone is off stage does not lock them out (the
  hand-over rule compares performers under the same light and stays); a performer found that way
  looking like a stranger is learned afresh;
- a pose without a torso (fewer than two torso joints: nothing to compare).

A track without a learned look refuses nothing, so one performer per camera works as before. Cost: the
histograms of a frame's poses and both rules take about 0.25 ms per performer per frame (measured on
the duet, 2 performers, 2.2 poses per frame on average, on a shared 2-core machine).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from stagepose.config import check_range
from stagepose.skeleton import Joint

TORSO = np.array([Joint.r_hip, Joint.l_hip, Joint.pelvis, Joint.thorax, Joint.r_shoulder, Joint.l_shoulder])
QUAD = np.array([Joint.l_shoulder, Joint.r_shoulder, Joint.r_hip, Joint.l_hip])
SHOULDERS = np.array([Joint.r_shoulder, Joint.l_shoulder, Joint.thorax])
HIPS = np.array([Joint.r_hip, Joint.l_hip, Joint.pelvis])
GRID = 10  # samples per side: 100 pixels per pose
MIN_EXTENT = 0.2  # a box around too few torso joints (the shoulders only) grows to this x pose height
BINS = (12, 4, 4)  # hue (0-179 in OpenCV), saturation, value
_INSET = np.linspace(0.1, 0.9, GRID)  # grid inside the region, off its edges (arms, background)


@dataclass(frozen=True)
class AppearanceConfig:
    """When a look is learned and when it refuses a pose (Bhattacharyya distances, 0 same .. 1 disjoint).

    Attributes:
        warmup: looks learned from fewer poses refuse nothing.
        rate: after ``warmup`` poses the look moves this much towards each new one (running mean before).
        learn_within: a learned look takes in only poses within this distance of itself (no drift onto
            someone else).
        handover: refuse a pose that is further than this from the track's look ...
        margin: ... and at least this much nearer another performer's look.
        stranger: while re-acquiring, refuse a pose further than this from the track's look; a track that
            searched the whole zone and took a pose further than this forgets its look.
        stranger_following: while following, refuse a pose further than this (1: never).
        need_torso: a track with a learned look refuses a pose without a torso (no look to check).
    """

    warmup: int = 5
    rate: float = 0.05
    learn_within: float = 0.65
    handover: float = 0.45
    margin: float = 0.15
    stranger: float = 0.7
    stranger_following: float = 0.9
    need_torso: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.warmup <= 10_000:
            raise ValueError(f"warmup must be in 1..10000, got {self.warmup}")
        check_range("rate", self.rate, 0.0, 1.0, low_open=True)
        for name in ("learn_within", "handover", "margin", "stranger", "stranger_following"):
            check_range(name, getattr(self, name), 0.0, 1.0)


def torso_region(joints: np.ndarray, seen: np.ndarray) -> np.ndarray | None:
    """(GRID*GRID, 2) image pixels on the pose's torso; None with fewer than 2 torso joints seen.

    Args:
        joints: (16, 2) image pixels; seen: (16,) bool.
    """
    if seen[QUAD].all():  # bilinear grid inside the shoulder-hip quadrilateral
        l_sh, r_sh, r_hip, l_hip = joints[QUAD]
        u, v = np.meshgrid(_INSET, _INSET)
        top = l_sh + u[..., None] * (r_sh - l_sh)
        bottom = l_hip + u[..., None] * (r_hip - l_hip)
        return np.asarray(top + v[..., None] * (bottom - top)).reshape(-1, 2)
    torso = joints[TORSO[seen[TORSO]]]
    if len(torso) < 2:
        return None
    points = joints[seen]
    extent = MIN_EXTENT * float(max(np.ptp(points, axis=0).max(), 1.0))
    low, high = torso.min(axis=0), torso.max(axis=0)
    grow = np.maximum(extent - (high - low), 0.0)
    low, high = low - grow / 2, high + grow / 2
    if grow[1] > 0 and not seen[HIPS].any():  # shoulders only: the torso is below them (upright)
        low[1], high[1] = low[1] + grow[1] / 2, high[1] + grow[1] / 2
    elif grow[1] > 0 and not seen[SHOULDERS].any():  # hips only: above them
        low[1], high[1] = low[1] - grow[1] / 2, high[1] - grow[1] / 2
    x, y = np.meshgrid(low[0] + _INSET * (high[0] - low[0]), low[1] + _INSET * (high[1] - low[1]))
    return np.stack([x.ravel(), y.ravel()], axis=1)


def torso_box(joints: np.ndarray, seen: np.ndarray) -> np.ndarray | None:
    """(4,) x0, y0, x1, y1 of the pixels `torso_region` samples; None without a region."""
    region = torso_region(joints, seen)
    return None if region is None else np.concatenate([region.min(axis=0), region.max(axis=0)])


def torso_histogram(image: np.ndarray, joints: np.ndarray, seen: np.ndarray) -> np.ndarray | None:
    """The pose's look: (prod(BINS),) HSV histogram of its torso pixels, summing to 1; None without a torso.

    Args:
        image: (H, W, 3) BGR uint8 frame the pose was decoded from.
        joints: (16, 2) image pixels; seen: (16,) bool.
    """
    region = torso_region(joints, seen)
    if region is None or not np.isfinite(region).all():
        return None
    h, w = image.shape[:2]
    xy = np.clip(np.rint(region), 0, [w - 1, h - 1]).astype(np.intp)
    hsv = cv2.cvtColor(np.ascontiguousarray(image[xy[:, 1], xy[:, 0]][None]), cv2.COLOR_BGR2HSV)[0].astype(np.intp)
    hue, sat, val = (hsv[:, 0] * BINS[0]) // 180, (hsv[:, 1] * BINS[1]) // 256, (hsv[:, 2] * BINS[2]) // 256
    index = (np.minimum(hue, BINS[0] - 1) * BINS[1] + sat) * BINS[2] + val
    counts = np.bincount(index, minlength=int(np.prod(BINS))).astype(np.float64)
    return counts / counts.sum()


def bhattacharyya(a: np.ndarray, b: np.ndarray) -> float:
    """Distance between two histograms that sum to 1: 0 the same, 1 nothing in common."""
    return float(np.sqrt(max(0.0, 1.0 - float(np.sqrt(a * b).sum()))))


class Look:
    """One track's learned look: the running mean of the histograms it was taught (per instance state)."""

    def __init__(self, config: AppearanceConfig) -> None:
        self.config = config
        self.histogram: np.ndarray | None = None
        self.samples = 0

    @property
    def ready(self) -> bool:
        """Learned from enough poses to refuse any."""
        return self.samples >= self.config.warmup

    def distance(self, histogram: np.ndarray | None) -> float | None:
        """Bhattacharyya distance of a pose's look from this one; None if either is unknown or not ready."""
        if histogram is None or self.histogram is None or not self.ready:
            return None
        return bhattacharyya(self.histogram, histogram)

    def forget(self) -> None:
        """Start afresh (the performer was found again looking unlike what was learned: the light changed)."""
        self.histogram, self.samples = None, 0

    def learn(self, histogram: np.ndarray) -> None:
        """Move towards ``histogram``: a running mean during warm-up, then by ``config.rate``."""
        self.samples += 1
        if self.histogram is None:
            self.histogram = histogram.copy()
            return
        rate = max(1.0 / self.samples, self.config.rate)
        self.histogram = (1 - rate) * self.histogram + rate * histogram


def refusals(looks: Sequence[Look], histograms: Sequence[np.ndarray | None], states: Sequence[str]) -> list[list[bool]]:
    """Per track, per candidate: whether its look rules the candidate out for that performer (see the module).

    Args:
        looks: one per track of the camera.
        histograms: one per candidate pose (None: no torso seen, never refused).
        states: per track, `stagepose.show.tracking.PerformerTracker.state` ("following", "reacquiring" or
            "searching").
    """
    distances = [[look.distance(h) for h in histograms] for look in looks]
    out = []
    for t, look in enumerate(looks):
        config = look.config
        stranger = {"following": config.stranger_following, "reacquiring": config.stranger}.get(states[t], 1.0)
        row = []
        for c in range(len(histograms)):
            own = distances[t][c]
            if own is None:  # no look to compare: refused only for a track that knows its performer's look
                row.append(config.need_torso and look.ready and histograms[c] is None)
                continue
            others = [d[c] for m, d in enumerate(distances) if m != t and d[c] is not None]
            handover = own > config.handover and any(d + config.margin <= own for d in others)  # type: ignore[operator]
            row.append(handover or own > stranger)
        out.append(row)
    return out


def learn(
    looks: Sequence[Look],
    histograms: Sequence[np.ndarray | None],
    taken: Sequence[int | None],
    joints: Sequence[np.ndarray],
    seen: Sequence[np.ndarray],
    hidden: Sequence[np.ndarray],
    states: Sequence[str],
) -> None:
    """Teach each track the look of the pose it took, where that pose is unambiguous (see the module).

    A track that searched the whole zone (``states``, as given to `refusals`) and took a pose that looks like
    a stranger forgets its look first: the performer may look different now (a lighting change while they
    were lost), and the look must not refuse them for good.

    Args:
        looks: one per track; taken: per track, the candidate it took (None: none).
        histograms, joints, seen: per candidate, its look, (16, 2) joints and (16,) seen joints.
        hidden: per track, (16,) bool joints of its pose hidden by someone in front.
        states: per track, its `stagepose.show.tracking.PerformerTracker.state` before this frame.
    """
    boxes = {c: torso_box(joints[c], seen[c]) for c in taken if c is not None}
    for t, (look, c) in enumerate(zip(looks, taken)):
        if c is not None and states[t] == "searching":
            own = look.distance(histograms[c])
            if own is not None and own > look.config.stranger:
                look.forget()
        if c is None or histograms[c] is None or not seen[c][QUAD].all() or hidden[t][TORSO].any():
            continue
        box = boxes[c]
        if box is None or any(_overlap(box, other) for d, other in boxes.items() if d != c and other is not None):
            continue
        own = look.distance(histograms[c])
        if own is not None:
            if own > look.config.learn_within:
                continue
            others = [o.distance(histograms[c]) for m, o in enumerate(looks) if m != t]
            if any(d is not None and d < own for d in others):
                continue
        look.learn(histograms[c])  # type: ignore[arg-type]


def _overlap(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3])
