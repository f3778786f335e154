"""Which decoded pose belongs to which performer of a camera (pure: numbers in, indexes out).

Every crop of a camera (each track's own crop and the search windows) gives one candidate pose.
Tracks that follow someone take candidates by predicted position first, nearest first (a crossing
does not swap names: each name goes to the pose nearest where that performer was heading, and a pose
further than ``gate`` pose heights from a prediction is not that performer). With
``tracking.assign_on_floor`` and a stage calibration, where both the prediction and the pose have a floor
position, the distance is measured on the stage floor instead, in performer heights (two people one
behind the other overlap in the image but stand metres apart on the floor); off by default, see
`stagepose.show.tracking.TrackingConfig`. Two candidates of one
person (`SamePerson`: their joints coincide, or most joints of one lie on the other's body, as when a
crop holding two people gives one person's upper body at the wrong scale) can go to one track only, so
when two tracks lock onto one person the one whose prediction agrees better keeps the name. Searching
tracks then take what is left, the surest pose first (most confident joints: a whole person beats a
mixed or partial pose), never one of a person already named. A pose that qualifies for no track (a
bystander outside every zone) is never named. A track never takes a pose its performer's look refuses
(`TrackView.refused`, from `stagepose.show.appearance`: the pose looks like another performer, or, while
re-acquiring, like nobody it knows), however near.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from stagepose.show.bodies import share_on_body


@dataclass(frozen=True)
class Candidate:
    """One decoded pose: (16, 2) image pixels, (16,) heatmap peaks, which joints count as seen."""

    joints: np.ndarray
    confidence: np.ndarray
    seen: np.ndarray
    floor: np.ndarray | None = None  # stage floor (x, y) metres, with a stage calibration

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
        zone_share: per candidate, the fraction of its seen joints inside this track's zone (1 without a
            zone); None: all 1.
        floor: (stage floor (x, y) metres, performer height in metres) of the prediction, with a stage
            calibration; None otherwise.
        refused: per candidate, whether the performer's look rules it out (`stagepose.show.appearance`);
            None: none is.
    """

    prediction: tuple[np.ndarray, float] | None
    own: int
    qualifies: Sequence[bool]
    floor: tuple[np.ndarray, float] | None = None
    zone_share: Sequence[float] | None = None
    refused: Sequence[bool] | None = None

    def allows(self, c: int) -> bool:
        """Whether candidate ``c`` may be this performer: it qualifies and its look is not refused."""
        return bool(self.qualifies[c]) and not (self.refused is not None and self.refused[c])


def _zone_share(track: TrackView, c: int) -> float:
    return 1.0 if track.zone_share is None else round(float(track.zone_share[c]), 2)


def distance(track: TrackView, candidate: Candidate) -> float:
    """How far a candidate is from a track's prediction, in performer heights: on the stage floor when
    both have a floor position, else in the image (in predicted pose heights)."""
    if track.floor is not None and candidate.floor is not None:
        place, tall = track.floor
        return float(np.linalg.norm(candidate.floor - place)) / max(tall, 1e-6)
    assert track.prediction is not None
    centre, height = track.prediction
    return float(np.linalg.norm(candidate.centre - centre)) / max(height, 1.0)


def poses_overlap(a: Candidate, b: Candidate, fraction: float) -> bool:
    """Whether two poses are the same person: joints seen in both lie on average within ``fraction`` of
    the larger pose height of each other (needs at least 3 such joints)."""
    both = a.seen & b.seen
    if both.sum() < 3:
        return False
    distance = np.linalg.norm(a.joints[both] - b.joints[both], axis=1).mean()
    return bool(distance < fraction * max(a.height, b.height))


# A searching track looks for someone not yet named: a pose with half its joints on a named performer's
# body is that performer (or a mix of both), not a new person. Tracked performers who touch or cross
# keep the stricter `SamePerson.body_share`: their poses are told apart by where each was heading.
NEW_PERSON_SHARE = 0.5


@dataclass(frozen=True)
class SamePerson:
    """When two decoded poses are one person (see `stagepose.show.bodies`).

    Attributes:
        overlap: `poses_overlap` fraction (joints with the same label coincide).
        body_radius: how far from a pose's bones still counts as its body, in pose heights.
        body_share: one pose is the other's person when at least this fraction of its seen joints lie
            on the other's body.
    """

    overlap: float
    body_radius: float
    body_share: float

    def __call__(self, a: Candidate, b: Candidate, share: float | None = None) -> bool:
        """Whether ``a`` and ``b`` are one person (``share``: the `body_share` to apply)."""
        if a is b or poses_overlap(a, b, self.overlap):
            return True
        on = max(share_on_body(a.joints, a.seen, b.joints, b.seen, self.body_radius),
                 share_on_body(b.joints, b.seen, a.joints, a.seen, self.body_radius))  # fmt: skip
        return on >= (self.body_share if share is None else share)


def assign(
    tracks: Sequence[TrackView], candidates: Sequence[Candidate], *, gate: float, same: SamePerson
) -> list[int | None]:
    """The candidate index each track takes (None: none this frame).

    Args:
        tracks: the camera's tracks, in the order of the show file.
        candidates: every pose decoded in this camera's frame.
        gate: the largest distance from a prediction, in predicted pose heights.
        same: when two candidates are one person.
    """
    taken: list[int | None] = [None] * len(tracks)
    used: list[int] = []

    def free(c: int, share: float | None = None) -> bool:
        return all(c != u and not same(candidates[c], candidates[u], share) for u in used)

    pairs = []
    for t, track in enumerate(tracks):
        if track.prediction is None:
            continue
        for c, candidate in enumerate(candidates):
            if track.allows(c):
                cost = distance(track, candidate)
                if cost <= gate:
                    pairs.append((cost, t, c))
    for _, t, c in sorted(pairs):
        if taken[t] is None and free(c):
            taken[t], used = c, [*used, c]
    # searching tracks, over all of them (not in show-file order): a pose goes first to the track whose zone
    # holds it most fully (overlapping zones: each person is wholly inside their own performer's zone), then
    # the surest pose first (a mixed pose in one crop does not take a person another track sees whole);
    # ties go to a track's own crop
    options = [(-_zone_share(track, c), -candidates[c].score, c != track.own, t, c) for t, track in enumerate(tracks)
               if track.prediction is None for c in range(len(candidates)) if track.allows(c)]  # fmt: skip
    for *_, t, c in sorted(options):
        if taken[t] is None and free(c, NEW_PERSON_SHARE):
            taken[t], used = c, [*used, c]
    return taken
