"""Which decoded pose belongs to which performer of a camera (pure: numbers in, indexes out).

Every crop of a camera (each track's own crop and the search windows) gives one candidate pose.
Tracks that follow someone take candidates by predicted position first, nearest first (a crossing
does not swap names: each name goes to the pose nearest where that performer was heading, and a pose
further than ``gate`` pose heights from a prediction is not that performer). Two candidates that
overlap (their joints coincide: the same person seen from two crops) can go to one track only, so when
two tracks lock onto one person the one whose prediction agrees better keeps the name. Searching tracks
then take what is left: their own zone crop's pose first, else the most confident qualifying window,
never one that overlaps a pose already named. A pose that qualifies for no track (a bystander outside
every zone) is never named.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Candidate:
    """One decoded pose: (16, 2) image pixels, (16,) heatmap peaks, which joints count as seen."""

    joints: np.ndarray
    confidence: np.ndarray
    seen: np.ndarray

    @property
    def centre(self) -> np.ndarray:
        points = self.joints[self.seen]
        return np.asarray((points.min(axis=0) + points.max(axis=0)) / 2) if len(points) else np.full(2, np.nan)

    @property
    def height(self) -> float:
        points = self.joints[self.seen]
        if not len(points):
            return 1.0
        extent = points.max(axis=0) - points.min(axis=0)
        return float(max(extent.max(), 1.0))

    @property
    def score(self) -> float:
        """Sum of the seen joints' confidence: more and surer joints rank first."""
        return float(np.asarray(self.confidence)[self.seen].sum())


@dataclass(frozen=True)
class TrackView:
    """What assignment needs of one track.

    Attributes:
        prediction: (centre (x, y), pose height) where the performer should be; None while searching.
        own: index of the candidate from this track's own crop.
        qualifies: per candidate, whether it may be this performer (enough joints, inside the zone).
    """

    prediction: tuple[np.ndarray, float] | None
    own: int
    qualifies: Sequence[bool]


def poses_overlap(a: Candidate, b: Candidate, fraction: float) -> bool:
    """Whether two poses are the same person: joints seen in both lie on average within ``fraction`` of
    the larger pose height of each other (needs at least 3 such joints)."""
    both = a.seen & b.seen
    if both.sum() < 3:
        return False
    distance = np.linalg.norm(a.joints[both] - b.joints[both], axis=1).mean()
    return bool(distance < fraction * max(a.height, b.height))


def assign(
    tracks: Sequence[TrackView], candidates: Sequence[Candidate], *, gate: float, overlap: float
) -> list[int | None]:
    """The candidate index each track takes (None: none this frame).

    Args:
        tracks: the camera's tracks, in the order of the show file.
        candidates: every pose decoded in this camera's frame.
        gate: the largest distance from a prediction, in predicted pose heights.
        overlap: `poses_overlap` fraction.
    """
    taken: list[int | None] = [None] * len(tracks)
    used: list[int] = []

    def free(c: int) -> bool:
        return all(c != u and not poses_overlap(candidates[c], candidates[u], overlap) for u in used)

    pairs = []
    for t, track in enumerate(tracks):
        if track.prediction is None:
            continue
        centre, height = track.prediction
        for c, candidate in enumerate(candidates):
            if track.qualifies[c]:
                cost = float(np.linalg.norm(candidate.centre - centre)) / max(height, 1.0)
                if cost <= gate:
                    pairs.append((cost, t, c))
    for _, t, c in sorted(pairs):
        if taken[t] is None and free(c):
            taken[t], used = c, [*used, c]
    for t, track in enumerate(tracks):
        if track.prediction is not None:
            continue
        options = [c for c in range(len(candidates)) if track.qualifies[c] and free(c)]
        if not options:
            continue
        choice = track.own if track.own in options else max(options, key=lambda c: candidates[c].score)
        taken[t], used = choice, [*used, choice]
    return taken
