"""Performer crop: zone first, then the pose's box, back to the zone when the performer is lost."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stagepose.data.entries import PersonEntry, joint_box
from stagepose.data.sample import base_crop
from stagepose.show.tracking import BODY_REACH_TORSOS, PerformerTracker, TrackingConfig, reach_limited
from stagepose.transforms import CROP_MARGIN, person_box

FRAME = (1920, 1080)


def _pose(center: tuple[float, float], height: float) -> tuple[np.ndarray, np.ndarray]:
    """Joints scattered over a ``height``-tall box, with a torso (shoulders, thorax, neck over the hips and
    pelvis) a third of the height long, so that every joint is within a body's reach of it."""
    rng = np.random.default_rng(0)
    joints = np.stack(
        [center[0] + rng.uniform(-0.2, 0.2, 16) * height, center[1] + rng.uniform(-0.5, 0.5, 16) * height], axis=1
    )
    joints[[7, 8, 12, 13], 1] = center[1] - 0.25 * height
    joints[[2, 3, 6], 1] = center[1] + 0.1 * height
    return joints, np.full(16, 0.9)


def test_starts_from_zone_then_follows_the_pose() -> None:
    zone = np.array([[400, 100], [1400, 100], [1400, 1000], [400, 1000]], dtype=float)
    tracker = PerformerTracker(TrackingConfig(box_smoothing=0.0), input_aspect=1.0, zone=zone)
    first = tracker.crop(FRAME)
    assert first.origin == "zone" and first.center == (900.0, 550.0) and first.size == (1000.0, 1000.0)
    joints, conf = _pose((700, 500), 400)
    assert tracker.update(joints, conf, FRAME)
    box = tracker.crop(FRAME)
    assert box.origin == "track"
    assert abs(box.center[0] - (joints[:, 0].min() + joints[:, 0].max()) / 2) < 1
    assert box.size[0] == pytest.approx(box.size[1])  # model aspect kept
    assert box.size[1] == pytest.approx((joints[:, 1].max() - joints[:, 1].min()) * CROP_MARGIN)


def test_lost_after_misses_looks_where_they_were_then_goes_back_to_zone() -> None:
    tracker = PerformerTracker(TrackingConfig(lost_after_frames=2, reacquire_frames=3), input_aspect=0.75)
    joints, conf = _pose((900, 500), 500)
    tracker.update(joints, conf, FRAME)
    followed = tracker.crop(FRAME)
    weak = np.full(16, 0.05)
    assert tracker.update(joints, weak, FRAME)  # one miss: still tracked, same box
    assert tracker.crop(FRAME).origin == "track"
    assert not tracker.update(joints, weak, FRAME)
    # re-acquiring: the last box, half as large again, and the prediction stays where they were
    near = tracker.crop(FRAME)
    assert near.origin == "search" and near.center == pytest.approx(followed.center, abs=60)
    assert near.size[1] == pytest.approx(1.5 * followed.size[1])
    assert tracker.searching and tracker.prediction() is not None
    for _ in range(3):
        assert not tracker.update(joints, weak, FRAME)
    whole = tracker.crop(FRAME)  # reacquire_frames later: the whole zone, no prediction
    assert whole.origin == "zone" and whole.center == (960.0, 540.0) and tracker.prediction() is None
    assert whole.size[0] / whole.size[1] == pytest.approx(0.75) and whole.size[0] >= 1920


def test_pose_outside_the_zone_is_not_the_performer() -> None:
    zone = np.array([[0, 0], [800, 0], [800, 1080], [0, 1080]], dtype=float)
    tracker = PerformerTracker(TrackingConfig(lost_after_frames=1), input_aspect=1.0, zone=zone)
    joints, conf = _pose((1500, 500), 300)  # a stagehand in the right wing
    assert not tracker.update(joints, conf, FRAME)
    assert tracker.crop(FRAME).origin == "zone"


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="min_joints"):
        TrackingConfig(min_joints=0)
    with pytest.raises(ValueError, match="box_margin"):
        TrackingConfig(box_margin=0.5)


def test_box_never_outgrows_the_frame() -> None:
    """A confused pose spread over the whole crop must not grow the crop frame after frame."""
    tracker = PerformerTracker(TrackingConfig(min_confidence=0.0, min_joints=1, box_smoothing=0.0), 1.0)
    rng = np.random.default_rng(3)
    for _ in range(20):
        box = tracker.crop(FRAME)
        spread = np.array(box.center) + rng.uniform(-1, 1, (16, 2)) * np.array(box.size)
        tracker.update(spread, np.full(16, 0.5), FRAME)
    assert tracker.crop(FRAME).size[0] <= 1920 + 1e-6


def _training_crop(joints: np.ndarray, input_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Centre and (w, h) of the crop the data loaders cut around these labelled joints (validation crop)."""
    box = joint_box(joints, np.ones(16), CROP_MARGIN)
    assert box is not None
    entry = PersonEntry(image=Path("x.jpg"), image_size=FRAME, center=box[0], box=box[1], joints=joints,
                        visible=np.ones(16), head_size=float("nan"), source_id="test")  # fmt: skip
    params = base_crop(entry, input_size)
    return np.array(params.center), np.array(params.box)


@pytest.mark.parametrize(
    ("input_size", "pose"),
    [((128, 128), "standing"), ((192, 256), "standing"), ((192, 256), "arms_out"), ((256, 192), "lying")],
)
def test_crop_from_a_pose_is_the_training_crop_of_those_joints(input_size: tuple[int, int], pose: str) -> None:
    """The live input must look like the training input: same box, margin and aspect, within a pixel."""
    joints, conf = _pose((900, 560), 600)
    if pose == "arms_out":  # wider than tall before the aspect is applied
        joints[:, 0] = 900 + (joints[:, 0] - 900) * 4.0
    elif pose == "lying":  # much wider than tall: the thin side is widened to a third of the long one
        joints = np.stack([900 + (joints[:, 1] - 560) * 1.5, 560 + (joints[:, 0] - 900) * 0.2], axis=1)
    zone = np.array([[100, 50], [1800, 50], [1800, 1050], [100, 1050]], dtype=float)
    tracker = PerformerTracker(TrackingConfig(), input_aspect=input_size[0] / input_size[1], zone=zone)
    assert tracker.config.box_margin == CROP_MARGIN  # the default is the training margin
    first = tracker.crop(FRAME)
    assert first.origin == "zone"
    assert tracker.update(joints, conf, FRAME)
    center, size = _training_crop(joints, input_size)
    for _ in range(3):  # the first pose replaces the zone box; the same pose keeps the box (smoothing on)
        box = tracker.crop(FRAME)
        assert box.origin == "track"
        assert np.abs(np.array(box.center) - center).max() <= 1.0
        assert np.abs(np.array(box.size) - size).max() <= 1.0
        tracker.update(joints, conf, FRAME)


def test_crop_converges_to_the_training_crop_when_the_pose_moves() -> None:
    """With box smoothing the crop lags a moving pose, then settles on the training crop of where it stopped."""
    tracker = PerformerTracker(TrackingConfig(box_smoothing=0.3), input_aspect=0.75)
    joints, conf = _pose((700, 540), 500)
    tracker.update(joints, conf, FRAME)
    moved = joints * 1.2 + np.array([150.0, -100.0])  # a step closer to the camera and to the side
    for _ in range(12):
        tracker.update(moved, conf, FRAME)
    center, size = _training_crop(moved, (192, 256))
    box = tracker.crop(FRAME)
    assert np.abs(np.array(box.center) - center).max() <= 1.0
    assert np.abs(np.array(box.size) - size).max() <= 1.0


# --- appearance: each performer's torso colours (stagepose.show.appearance) -------------------------------

# An upright person in MPII joint order, in heights from the middle of the body (y down).
_PERSON = np.array([
    (0.08, 0.5), (0.08, 0.25), (0.08, 0.0), (-0.08, 0.0), (-0.08, 0.25), (-0.08, 0.5),  # r/l leg
    (0.0, 0.0), (0.0, -0.3), (0.0, -0.38), (0.0, -0.5),  # pelvis, thorax, upper neck, head top
    (0.18, 0.0), (0.16, -0.15), (0.12, -0.3), (-0.12, -0.3), (-0.16, -0.15), (-0.18, 0.0),  # r/l arm
])  # fmt: skip
_SHIRTS = {"red": (40, 40, 200), "blue": (200, 90, 30), "green": (40, 180, 40)}  # BGR


def _stage(people: dict[str, tuple[float, float]], height: float = 300.0, seed: int = 0) -> np.ndarray:
    """A grey 1000x600 frame with a noisy shirt-coloured torso block per person (name -> centre)."""
    rng = np.random.default_rng(seed)
    image = np.full((600, 1000, 3), 128, np.uint8)
    for name, (x, y) in people.items():
        x0, x1 = int(x - 0.14 * height), int(x + 0.14 * height)
        y0, y1 = int(y - 0.33 * height), int(y + 0.03 * height)
        image[y0:y1, x0:x1] = _SHIRTS[name]
    noise = rng.integers(-12, 13, image.shape)
    return np.clip(image.astype(int) + noise, 0, 255).astype(np.uint8)


def _joints(centre: tuple[float, float], height: float = 300.0) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(centre) + _PERSON * height, np.ones(16, bool)


def _look_of(config, *histograms):  # type: ignore[no-untyped-def]
    from stagepose.show.appearance import Look

    look = Look(config)
    for histogram in histograms:
        look.learn(histogram)
    return look


def test_torso_colours_tell_two_performers_apart() -> None:
    from stagepose.show.appearance import bhattacharyya, torso_histogram

    first = _stage({"red": (300, 300), "blue": (700, 300)})
    later = _stage({"red": (330, 310), "blue": (690, 300)}, seed=1)  # the next frame: moved, other noise
    red = torso_histogram(first, *_joints((300, 300)))
    red_later = torso_histogram(later, *_joints((330, 310)))
    blue = torso_histogram(first, *_joints((700, 300)))
    assert red is not None and red_later is not None and blue is not None
    assert red.sum() == pytest.approx(1.0)
    assert bhattacharyya(red, red_later) < 0.3 < 0.9 < bhattacharyya(red, blue)
    # with fewer than two torso joints seen there is no torso to look at
    joints, seen = _joints((300, 300))
    seen[[2, 3, 6, 7, 12]] = False
    assert torso_histogram(first, joints, seen) is None


def test_a_torso_seen_by_its_shoulders_only_is_looked_for_below_them() -> None:
    from stagepose.show.appearance import torso_region

    joints, seen = _joints((300, 300))
    seen[[2, 3, 6]] = False  # no hip, no pelvis
    region = torso_region(joints, seen)
    assert region is not None and region.shape == (100, 2)
    shoulders_y = joints[[12, 13], 1].mean()
    assert region[:, 1].min() >= shoulders_y - 1e-6 and region[:, 1].max() > shoulders_y + 30


def test_a_learned_look_refuses_another_performers_pose_and_a_stranger_while_reacquiring() -> None:
    from stagepose.show.appearance import AppearanceConfig, refusals, torso_histogram

    config = AppearanceConfig(warmup=3, stranger_following=1.0)  # strangers refused while re-acquiring only
    image = _stage({"red": (200, 300), "blue": (500, 300), "green": (800, 300)})
    red, blue, green = (torso_histogram(image, *_joints((x, 300))) for x in (200, 500, 800))
    headless = np.zeros(16, bool)
    headless[[0, 1, 4, 5, 10, 15]] = True  # legs and wrists: no torso, so no look
    candidates = [red, blue, green, torso_histogram(image, _joints((200, 300))[0], headless)]
    assert candidates[3] is None
    # looks learned from too few poses refuse nothing
    young = [_look_of(config, red), _look_of(config, blue)]
    assert refusals(young, candidates, ["following", "following"]) == [[False] * 4, [False] * 4]
    looks = [_look_of(config, red, red, red), _look_of(config, blue, blue, blue)]
    # each refuses the other's pose and a pose without a torso; the stranger (green) only while re-acquiring
    assert refusals(looks, candidates, ["following", "searching"]) == [[False, True, False, True],
                                                                       [True, False, False, True]]  # fmt: skip
    assert refusals(looks, candidates, ["reacquiring", "following"])[0] == [False, True, True, True]
    lenient = AppearanceConfig(warmup=3, need_torso=False)
    # alone in its camera, a following track still refuses what looks like nobody it knows (> stranger_following)
    assert refusals([_look_of(lenient, red, red, red)], candidates, ["following"]) == [[False, True, True, False]]
    assert refusals([_look_of(lenient, red, red, red)], candidates, ["searching"]) == [[False, False, False, False]]


def test_a_look_is_learned_only_from_a_whole_torso_clear_of_other_performers() -> None:
    from stagepose.show.appearance import AppearanceConfig, learn, torso_histogram

    image = _stage({"red": (200, 300), "blue": (500, 300)})
    poses = [_joints((200, 300)), _joints((500, 300)), _joints((230, 300))]  # the last overlaps the red torso
    histograms = [torso_histogram(image, j, s) for j, s in poses]
    joints, seen = [p[0] for p in poses], [p[1] for p in poses]
    clear = [np.zeros(16, bool), np.zeros(16, bool)]
    FOLLOWING = ["following", "following"]  # noqa: N806
    looks = [_look_of(AppearanceConfig()), _look_of(AppearanceConfig())]
    learn(looks, histograms, [0, 1], joints, seen, clear, FOLLOWING)
    assert [look.samples for look in looks] == [1, 1]
    learn(looks, histograms, [0, 2], joints, seen, clear, FOLLOWING)  # two torsos overlap: neither is sure
    hidden = [np.zeros(16, bool), np.eye(16, dtype=bool)[12]]  # a shoulder behind someone in front
    learn(looks, histograms, [0, 1], joints, seen, hidden, FOLLOWING)
    assert [look.samples for look in looks] == [2, 1]
    partial = [s.copy() for s in seen]
    partial[0][3] = False  # one hip not seen: no whole torso
    learn(looks, histograms, [0, 1], joints, partial, clear, FOLLOWING)
    assert [look.samples for look in looks] == [2, 2]


def test_appearance_config_rejects_bad_values() -> None:
    from stagepose.show.appearance import AppearanceConfig

    with pytest.raises(ValueError, match="margin"):
        AppearanceConfig(margin=1.5)
    with pytest.raises(ValueError, match="warmup"):
        AppearanceConfig(warmup=0)
    with pytest.raises(ValueError, match="rate"):
        AppearanceConfig(rate=float("nan"))


def test_a_performer_found_again_looking_like_a_stranger_is_learned_afresh() -> None:
    """A lighting change while the performer was lost must not lock them out for good."""
    from stagepose.show.appearance import AppearanceConfig, learn, torso_histogram

    config = AppearanceConfig(warmup=2)
    red_light, green_light = _stage({"red": (300, 300)}), _stage({"green": (300, 300)})
    joints, seen = _joints((300, 300))
    red, green = torso_histogram(red_light, joints, seen), torso_histogram(green_light, joints, seen)
    look = _look_of(config, red, red, red)
    none = [np.zeros(16, bool)]
    learn([look], [green], [0], [joints], [seen], none, ["reacquiring"])  # re-acquiring: not taught a stranger
    assert look.samples == 3 and look.distance(green) == pytest.approx(1.0, abs=0.05)
    learn([look], [green], [0], [joints], [seen], none, ["searching"])  # found after a whole search: start afresh
    assert look.samples == 1 and look.histogram is not None and not look.ready
    learn([look], [green], [0], [joints], [seen], none, ["following"])
    assert look.distance(green) == pytest.approx(0.0, abs=1e-6)


def _body(hip_y: float, torso: float) -> np.ndarray:
    """(16, 2) a standing body facing the camera: pelvis at (900, hip_y), torso ``torso`` px long."""
    j = np.zeros((16, 2))
    x, t = 900.0, torso
    j[[6, 7, 8, 9]] = [(x, hip_y), (x, hip_y - t), (x, hip_y - 1.15 * t), (x, hip_y - 1.6 * t)]  # pelvis..head
    j[[2, 3]] = [(x - 0.3 * t, hip_y), (x + 0.3 * t, hip_y)]  # hips
    j[[12, 13]] = [(x - 0.4 * t, hip_y - t), (x + 0.4 * t, hip_y - t)]  # shoulders
    j[[11, 14]] = [(x - 0.5 * t, hip_y - 0.5 * t), (x + 0.5 * t, hip_y - 0.5 * t)]  # elbows
    j[[10, 15]] = [(x - 0.55 * t, hip_y), (x + 0.55 * t, hip_y)]  # wrists
    j[[1, 4]] = [(x - 0.3 * t, hip_y + 0.8 * t), (x + 0.3 * t, hip_y + 0.8 * t)]  # knees
    j[[0, 5]] = [(x - 0.3 * t, hip_y + 1.6 * t), (x + 0.3 * t, hip_y + 1.6 * t)]  # ankles
    return j


def test_legs_at_the_far_end_of_the_crop_do_not_keep_it_large() -> None:
    """The model put both ankles 1,100 px under the hips (on the treadmill's end, pose2sim_single): the next
    crop follows the body's reach, not them, so it shrinks onto the performer and the legs can come back."""
    body = _body(hip_y=500.0, torso=250.0)
    conf = np.full(16, 0.9)
    wrong = body.copy()
    wrong[[0, 5], 1] = 1600.0
    wrong[[1, 4], 1] = 1150.0
    seen = np.ones(16, dtype=bool)
    limited = reach_limited(wrong, seen)
    top, bottom = body[[7, 8, 12, 13]].mean(axis=0), body[[2, 3, 6]].mean(axis=0)  # upper and lower torso
    reach = BODY_REACH_TORSOS * np.hypot(*(top - bottom))
    assert np.hypot(*(limited - (top + bottom) / 2).T).max() <= reach + 1e-6
    assert limited[[0, 5], 1].max() < 1100 < wrong[[0, 5], 1].min()
    np.testing.assert_allclose(reach_limited(body, seen), body)  # a whole body is within reach: unchanged
    crops = {}
    for name, joints in (("right", body), ("legs far off", wrong)):
        tracker = PerformerTracker(TrackingConfig(box_smoothing=0.0, min_box_fraction=0.1), input_aspect=1.0)
        tracker.crop(FRAME)
        assert tracker.update(joints, conf, FRAME)
        crops[name] = tracker.crop(FRAME).size[1]
    unlimited = person_box(wrong, CROP_MARGIN)[1][1]
    assert crops["right"] < crops["legs far off"] < 0.85 * unlimited, (crops, unlimited)


def test_a_body_bent_towards_the_camera_keeps_its_reach() -> None:
    """Bent over, the torso looks short but the shoulders keep their width: the limbs are not pulled in."""
    bent = _body(hip_y=500.0, torso=250.0)
    bent[[7, 8, 9, 12, 13], 1] = bent[[7, 8, 9, 12, 13], 1] * 0.2 + 500.0 * 0.8  # torso foreshortened to a fifth
    assert np.hypot(*(bent[7] - bent[6])) < 60
    np.testing.assert_allclose(reach_limited(bent, np.ones(16, dtype=bool)), bent)
    partial = np.ones(16, dtype=bool)
    partial[[2, 3, 6]] = False  # no lower torso seen: nothing to measure reach by, joints as they are
    np.testing.assert_allclose(reach_limited(bent, partial), bent[partial])
