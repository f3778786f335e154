"""One performer in one camera: where to crop the next frame, and where the performer should be.

The model is single-person, so each performer a camera follows is its own track with its own crop
(`stagepose.show.assign` decides which pose belongs to which track). With no pose yet (or after losing
the performer) the crop is the stage zone's bounding box (the whole frame without a zone), and the
track also gets a few `search windows <stagepose.show.search>` per frame to find a performer who is small
in a wide shot or stands next to someone else. Once the
model finds a confident pose, the next crop is that pose's box grown by the training margin
(``transforms.person_box`` with ``CROP_MARGIN``, as the data loaders crop) at the model's aspect ratio,
so the network sees the performer at the scale it was trained on. A pose whose confident joints fall
mostly outside the zone is not the performer (a stagehand in the wings) and counts as a miss.

The zone crop is necessarily looser than a training crop: the performer may stand anywhere in the zone,
so they fill less of the input and the first pose is coarser. It only has to find the performer once:
the first pose replaces the zone box outright (no smoothing from a zone box), so from the next frame on
the crop is the training crop of the last pose. What remains (pose error, box smoothing lag) changes
the scale and centre by a few percent, inside the +-25 % scale and +-5 % shift that training augmentation
draws (``data.augment.AugmentConfig``). The ``min_box_fraction`` floor is the one deliberate exception:
where it binds (the model is sure of only part of the body) the crop stays looser than a training crop
rather than shrinking onto that part.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from stagepose.config import check_range
from stagepose.show.appearance import AppearanceConfig, Look
from stagepose.show.search import search_windows, standing_windows, zone_bounds
from stagepose.skeleton import Joint
from stagepose.transforms import CROP_MARGIN, box_with_aspect, person_box


@dataclass(frozen=True)
class TrackingConfig:
    """How a camera's performer is followed.

    Attributes:
        min_confidence: a joint with at least this heatmap peak counts as seen.
        min_joints: the performer is tracked while at least this many joints are seen.
        box_margin: crop side = the seen joints' box side x this margin. The default is the margin the
            model was trained and evaluated with (``transforms.CROP_MARGIN``); another value shows the
            network people at a scale it did not learn.
        min_box_fraction: the crop is never smaller than this fraction of the frame height (a floor
            against a partial pose, e.g. only the upper body found, shrinking the crop frame by frame).
        lost_after_frames: consecutive misses before the crop goes back to the zone.
        reacquire_frames: for this many frames after losing a performer, the track looks where they were
            last seen (its crop is their last box, grown by half) and takes only a pose within ``gate``
            of that place, so a look-alike elsewhere in the zone (a bystander, a mannequin) cannot take
            the name in the moment the performer is hidden; after that, any qualifying pose.
        box_smoothing: 0 = jump to the new box, towards 1 = move the box slowly (less crop jitter).
        search_windows: extra crops per frame, for the whole show, that searching performers share (the
            zone box of each is always tried): bounds the batch, so the frame time stays flat.
        search_heights: window heights to search at, as fractions of the frame height (largest first),
            for a camera without a stage calibration.
        performer_height_m: with a stage calibration, windows frame a person this tall standing at
            each floor point of the zone (`stagepose.show.search.standing_windows`) instead.
        gate: a pose whose centre is further than this many pose heights from where the track predicts
            the performer is not taken for that performer.
        overlap: two poses whose matching joints lie on average within this many pose heights of each
            other are the same person (one track keeps the name, the other searches again).
        body_radius: how far from a pose's bones (in its heights) still counts as its body
            (`stagepose.show.bodies`): used to tell one person's partial or mixed pose from another
            person, and to find the joints of a performer that lie on someone in front (occluded).
        body_share: a pose with at least this fraction of its seen joints on another's body is that
            person.
        occlusion: the joints a performer's pose puts on the body of another performer standing in
            front (lower in the image) are occluded: not measurements (confidence 0, never followed).
        assign_on_floor: with a stage calibration, compare a pose with a performer's prediction by their
            floor positions (in ``performer_height_m``) instead of in the image. Off by default: on the
            duet clip with its calibration it lost the lead more often (68 % tracked and 2 frames on
            nobody, against 92 % and none in the image), because a floor position from a partial or
            mixed pose (feet hidden behind the partner) jumps by metres.
        appearance: with several performers in a camera, each track learns its performer's torso colours
            and assignment refuses a pose that looks like another performer, like no performer it knows,
            or has no torso to look at: `stagepose.show.appearance`.
    """

    min_confidence: float = 0.3
    min_joints: int = 6
    box_margin: float = CROP_MARGIN
    min_box_fraction: float = 0.2
    lost_after_frames: int = 3
    reacquire_frames: int = 30
    box_smoothing: float = 0.3
    search_windows: int = 4
    search_heights: tuple[float, ...] = (0.8, 0.55, 0.35)
    performer_height_m: float = 1.75
    gate: float = 0.5
    overlap: float = 0.15
    body_radius: float = 0.08
    body_share: float = 0.8
    occlusion: bool = True
    assign_on_floor: bool = False
    appearance: bool = True

    def __post_init__(self) -> None:
        # every bound is checked with check_range, which also refuses NaN and inf (nan < 1 is False)
        check_range("min_confidence", self.min_confidence, 0.0, 1.0)
        if not 1 <= self.min_joints <= 16:
            raise ValueError(f"min_joints must be in 1..16, got {self.min_joints}")
        check_range("box_margin", self.box_margin, 1.0, 10.0)
        check_range("min_box_fraction", self.min_box_fraction, 0.0, 1.0, low_open=True)
        if not 1 <= self.lost_after_frames <= 100_000:
            raise ValueError(f"lost_after_frames must be in 1..100000, got {self.lost_after_frames}")
        if not 0 <= self.reacquire_frames <= 100_000:
            raise ValueError(f"reacquire_frames must be in 0..100000, got {self.reacquire_frames}")
        check_range("box_smoothing", self.box_smoothing, 0.0, 0.999)
        if not 0 <= self.search_windows <= 64:
            raise ValueError(f"search_windows must be in 0..64, got {self.search_windows}")
        if not 1 <= len(self.search_heights) <= 8:
            raise ValueError(f"search_heights needs 1..8 fractions of the frame height, got {len(self.search_heights)}")
        for height in self.search_heights:
            check_range("search_heights", height, 0.05, 1.0)
        check_range("performer_height_m", self.performer_height_m, 0.5, 3.0, unit="m")
        check_range("gate", self.gate, 0.0, 10.0, low_open=True)
        check_range("overlap", self.overlap, 0.0, 1.0, low_open=True)
        check_range("body_radius", self.body_radius, 0.0, 1.0, low_open=True)
        check_range("body_share", self.body_share, 0.0, 1.0, low_open=True)


REACQUIRE_GROWTH = 1.5  # the crop while re-acquiring: the last box, this much larger
# No joint of a body lies further from the torso's centre than this many torso lengths (neck/thorax to
# pelvis/hips, in the image): feet are about 2.1, hands over the head about 2.2. Joints beyond it count at
# this reach for the next crop (`reach_limited`), so a pose whose legs went to the far end of the crop does
# not keep that crop large frame after frame.
BODY_REACH_TORSOS = 2.5
UPPER_TORSO = (Joint.thorax, Joint.upper_neck, Joint.r_shoulder, Joint.l_shoulder)
LOWER_TORSO = (Joint.r_hip, Joint.l_hip, Joint.pelvis)
SHOULDERS_PER_TORSO = 0.8  # shoulder width / torso length of an adult, roughly
ZONE_MAJORITY = 0.5  # a pose may be a performer when at least this share of its seen joints is in the zone


@dataclass(frozen=True)
class CropBox:
    """A crop request: ``center`` (x, y) and ``size`` (w, h) in image pixels, and where it came from."""

    center: tuple[float, float]
    size: tuple[float, float]
    origin: Literal["zone", "track", "search"]


def pose_centre(joints: np.ndarray, seen: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre (x, y) and height (pixels, at least 1) of the seen joints' box."""
    points = joints[seen]
    low, high = points.min(axis=0), points.max(axis=0)
    return (low + high) / 2, float(max(high[1] - low[1], high[0] - low[0], 1.0))


class PerformerTracker:
    """One track's crop state; ``crop()`` (and ``windows()`` while searching) before inference, then
    ``accept()`` the pose assigned to it or ``miss()``; ``update()`` does both for a lone track."""

    def __init__(
        self,
        config: TrackingConfig,
        input_aspect: float,
        zone: np.ndarray | None = None,
        appearance: AppearanceConfig | None = None,
    ) -> None:
        """Args:
        config: tracking parameters.
        input_aspect: model input width / height.
        zone: (P, 2) image polygon where the performer is looked for, or None for the whole frame.
        appearance: how the performer's look is learned and used (default: `AppearanceConfig()`).
        """
        self.config = config
        self.input_aspect = input_aspect
        self.zone = None if zone is None else np.asarray(zone, dtype=np.float32).reshape(-1, 2)
        self._box: CropBox | None = None
        self._misses = 0
        self.tracked = False
        self._centre: np.ndarray | None = None  # last accepted pose: centre and height
        self._lost_at: tuple[np.ndarray, float] | None = None  # where the performer was last followed
        self._since_lost = 0  # frames searched since then
        self._windows: list[CropBox] = []
        self._windows_for: tuple[tuple[int, int], bool] | None = None
        self._next_window = 0
        self.look = Look(appearance or AppearanceConfig())  # the performer's torso colours, kept when lost

    @property
    def searching(self) -> bool:
        """No pose to follow: the crop is the zone box and search windows are tried."""
        return self._box is None

    def crop(self, frame_size: tuple[int, int]) -> CropBox:
        """The box to cut from the next frame of ``frame_size`` (w, h)."""
        if self._box is not None:
            return self._box
        if self.reacquiring:
            centre, scale = self._lost_at  # type: ignore[misc]
            side = min(REACQUIRE_GROWTH * scale, float(frame_size[1]))
            w, h = box_with_aspect(side * self.input_aspect, side, self.input_aspect)
            return CropBox((float(centre[0]), float(centre[1])), (w, h), "search")
        return self._zone_box(frame_size)

    @property
    def state(self) -> Literal["following", "reacquiring", "searching"]:
        """Following a pose, looking where a lost performer was last seen, or searching the whole zone."""
        if self._box is not None:
            return "following"
        return "reacquiring" if self.reacquiring else "searching"

    @property
    def reacquiring(self) -> bool:
        """Searching for a performer lost less than ``reacquire_frames`` frames ago, where they were."""
        return self._box is None and self._lost_at is not None and self._since_lost < self.config.reacquire_frames

    def windows(
        self, frame_size: tuple[int, int], count: int, head_of: Callable[[np.ndarray], np.ndarray] | None = None
    ) -> list[CropBox]:
        """The next ``count`` search windows of this track's zone, in rotation (a scan over sizes and places).

        ``head_of`` (feet pixels -> head pixels of a performer standing there, from the camera's stage
        calibration) sizes the windows by the floor; without it they are fractions of the frame height.
        """
        if count <= 0:
            return []
        if self._windows_for != (frame_size, head_of is not None):
            if head_of is not None:
                self._windows = standing_windows(self.zone, frame_size, head_of, self.input_aspect)
            else:
                self._windows = search_windows(self.zone, frame_size, self.config.search_heights, self.input_aspect)
            self._windows_for, self._next_window = (frame_size, head_of is not None), 0
        if not self._windows:
            return []
        count = min(count, len(self._windows))
        out = [self._windows[(self._next_window + i) % len(self._windows)] for i in range(count)]
        self._next_window = (self._next_window + count) % len(self._windows)
        return out

    def seen(self, confidence: np.ndarray, joints: np.ndarray) -> np.ndarray:
        """(16,) bool: the joints confident enough to count."""
        return (np.asarray(confidence) >= self.config.min_confidence) & np.isfinite(joints).all(axis=1)

    def qualifies(self, joints: np.ndarray, confidence: np.ndarray, zone_share: float | None = None) -> bool:
        """Enough joints seen, mostly inside the zone: a pose that may be this performer.

        ``zone_share``: the pose's `zone_share` when the caller has it already (the zone test is not repeated).
        """
        seen = self.seen(confidence, joints)
        if seen.sum() < self.config.min_joints:
            return False
        share = self._share_inside(joints[seen]) if zone_share is None else zone_share
        return share >= ZONE_MAJORITY

    def prediction(self) -> tuple[np.ndarray, float] | None:
        """Where the performer should be: (centre (x, y), scale in pixels); None while searching, except
        in the first ``reacquire_frames`` frames after a loss, when it is where they were last followed.

        The centre is the last accepted pose's; the scale is the height of the crop that follows it (the
        pose box with the training margin, or the ``min_box_fraction`` floor). Between frames (16-40 ms)
        a performer moves a few percent of their height. Two simpler choices failed on real footage:
        a velocity from pose-box centres (a partial pose, upper body only, moves the centre by a quarter
        height in one frame and the extrapolation overshoots) and the pose's own height as the scale (a
        partial pose shrinks it, so the next whole pose looks far away).
        """
        if self._box is not None and self._centre is not None:
            return self._centre, self._box.size[1]
        if self.reacquiring:
            return self._lost_at  # where they were last seen, for ``reacquire_frames`` frames
        return None

    def update(self, joints: np.ndarray, confidence: np.ndarray, frame_size: tuple[int, int]) -> bool:
        """Take the pose decoded from this track's own crop; returns whether the performer is tracked.

        Args:
            joints: (16, 2) image pixels.
            confidence: (16,) heatmap peaks.
            frame_size: (w, h) of the frame the pose came from.
        """
        if self.qualifies(joints, confidence):
            self.accept(joints, confidence, frame_size)
            return True
        return self.miss()

    def accept(self, joints: np.ndarray, confidence: np.ndarray, frame_size: tuple[int, int]) -> None:
        """This pose is the performer: follow it."""
        seen = self.seen(confidence, joints)
        self._centre, _ = pose_centre(joints, seen)
        self._lost_at = None
        self._misses = 0
        self.tracked = True
        self._box = self._follow(reach_limited(joints, seen), frame_size)

    def miss(self) -> bool:
        """No pose for this performer in this frame; returns whether it still counts as tracked."""
        if self._box is None:  # searching already
            self._since_lost += 1
            return False
        self._misses += 1
        if self._misses >= self.config.lost_after_frames:
            self.lose()
        return self.tracked

    def lose(self) -> None:
        """Back to searching now (another track has this person, or too many misses)."""
        if self._box is not None and self._centre is not None:  # was following: remember where
            self._lost_at, self._since_lost = (self._centre, self._box.size[1]), 0
        self.tracked = False
        self._box = None  # back to the zone: re-acquire
        self._misses = 0

    def zone_share(self, joints: np.ndarray, confidence: np.ndarray) -> float:
        """The fraction of a pose's seen joints inside this track's zone (1 without a zone, 0 with none seen)."""
        return self._share_inside(joints[self.seen(confidence, joints)])

    def _share_inside(self, points: np.ndarray) -> float:
        if self.zone is None:
            return 1.0
        if not len(points):
            return 0.0
        inside = [cv2.pointPolygonTest(self.zone, (float(x), float(y)), False) >= 0 for x, y in points]
        return float(np.mean(inside))

    def _zone_box(self, frame_size: tuple[int, int]) -> CropBox:
        """The zone's bounding box (looser than a training crop: see the module docstring)."""
        x0, y0, x1, y1 = zone_bounds(self.zone, frame_size)
        size = box_with_aspect(max(x1 - x0, 1.0), max(y1 - y0, 1.0), self.input_aspect)
        return CropBox(((x0 + x1) / 2, (y0 + y1) / 2), size, "zone")

    def _follow(self, points: np.ndarray, frame_size: tuple[int, int]) -> CropBox:
        # Joints predicted off-frame are clipped, and the box never outgrows the whole-frame crop: a
        # confused pose spread over the crop must not make the next crop larger, frame after frame.
        points = np.clip(points, 0.0, np.array(frame_size, dtype=np.float64) - 1.0)
        center, (w, h) = person_box(points, self.config.box_margin)  # the training crop's box
        side_min = self.config.min_box_fraction * frame_size[1]
        size = box_with_aspect(max(w, side_min * self.input_aspect), max(h, side_min), self.input_aspect)
        largest = box_with_aspect(float(frame_size[0]), float(frame_size[1]), self.input_aspect)
        if size[0] > largest[0]:
            size = largest
        previous = self._box
        if previous is not None and previous.origin == "track" and self.config.box_smoothing > 0:
            a = self.config.box_smoothing
            center = (a * previous.center[0] + (1 - a) * center[0], a * previous.center[1] + (1 - a) * center[1])
            size = (a * previous.size[0] + (1 - a) * size[0], a * previous.size[1] + (1 - a) * size[1])
        return CropBox((float(center[0]), float(center[1])), (float(size[0]), float(size[1])), "track")


def reach_limited(joints: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """The seen joints, each pulled in to at most `BODY_REACH_TORSOS` torso lengths from the torso's centre.

    For the next crop only (the pose sent is not changed): in a crop much larger than the performer the
    model can put the legs at the crop's far edge (the treadmill's end), and a box grown around them keeps
    the crop large, so the performer stays small in it and the legs stay wrong. Without both ends of the
    torso seen the joints are returned as they are.

    Args:
        joints: (16, 2) image pixels; seen: (16,) bool, the joints that count.

    Returns:
        (S, 2) the seen joints, limited.
    """
    points = np.asarray(joints, dtype=np.float64)[seen]
    upper = [j for j in UPPER_TORSO if seen[j]]
    lower = [j for j in LOWER_TORSO if seen[j]]
    if not upper or not lower:
        return points
    top, bottom = joints[upper].mean(axis=0), joints[lower].mean(axis=0)
    torso = float(np.hypot(*(top - bottom)))
    # bent towards the camera the torso looks short but the shoulders keep their width (about 0.8 torso)
    if seen[Joint.r_shoulder] and seen[Joint.l_shoulder]:
        width = float(np.hypot(*(joints[Joint.r_shoulder] - joints[Joint.l_shoulder])))
        torso = max(torso, width / SHOULDERS_PER_TORSO)
    reach = BODY_REACH_TORSOS * torso
    if reach <= 0.0:
        return points
    centre = (top + bottom) / 2.0
    offset = points - centre
    distance = np.hypot(offset[:, 0], offset[:, 1])
    scale = np.minimum(1.0, reach / np.maximum(distance, 1e-9))
    return centre + offset * scale[:, None]
