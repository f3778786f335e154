"""Performer crop: zone first, then the pose's box, back to the zone when the performer is lost."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stagepose.data.entries import PersonEntry, joint_box
from stagepose.data.sample import base_crop
from stagepose.show.tracking import PerformerTracker, TrackingConfig
from stagepose.transforms import CROP_MARGIN

FRAME = (1920, 1080)


def _pose(center: tuple[float, float], height: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    joints = np.stack(
        [center[0] + rng.uniform(-0.2, 0.2, 16) * height, center[1] + rng.uniform(-0.5, 0.5, 16) * height], axis=1
    )
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
