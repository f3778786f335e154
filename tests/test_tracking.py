"""Performer crop: zone first, then the pose's box, back to the zone when the performer is lost."""

from __future__ import annotations

import numpy as np
import pytest

from stagepose.show.tracking import PerformerTracker, TrackingConfig

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
    assert box.size[1] == pytest.approx((joints[:, 1].max() - joints[:, 1].min()) * 1.5)


def test_lost_after_misses_goes_back_to_zone() -> None:
    tracker = PerformerTracker(TrackingConfig(lost_after_frames=2), input_aspect=0.75)
    joints, conf = _pose((900, 500), 500)
    tracker.update(joints, conf, FRAME)
    weak = np.full(16, 0.05)
    assert tracker.update(joints, weak, FRAME)  # one miss: still tracked, same box
    assert tracker.crop(FRAME).origin == "track"
    assert not tracker.update(joints, weak, FRAME)
    whole = tracker.crop(FRAME)
    assert whole.origin == "zone" and whole.center == (960.0, 540.0)
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
