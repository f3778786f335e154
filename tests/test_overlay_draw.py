"""`draw_pose` draws what it can and never raises on finite numbers (a replay once crashed on one)."""

from __future__ import annotations

import numpy as np

from stagepose.show.overlay import draw_pose
from stagepose.skeleton import NUM_JOINTS, Joint


def _pose() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.uniform(100, 500, (NUM_JOINTS, 2)), np.ones(NUM_JOINTS)


def test_a_joint_reprojected_far_off_is_skipped_not_fatal() -> None:
    """A 3D point near a camera's plane reprojects to 1e12 px: OpenCV refuses such coordinates, so the joint
    (and its limbs) are left out and the rest of the pose is still drawn."""
    image = np.zeros((600, 600, 3), np.uint8)
    joints, conf = _pose()
    plain = draw_pose(image, joints, conf, name="lead")
    joints[Joint.r_hip] = (1.8e12, -4.4e12)
    joints[Joint.l_ankle] = (-3.0e9, 2.0e9)
    drawn = draw_pose(image, joints, conf, name="lead", label="cam02 #29")
    assert drawn.shape == image.shape and drawn.any()
    assert (drawn != plain).any()  # the limbs to the far joints are missing (and the label is there)
    assert not image.any()  # the input is not drawn on


def test_nothing_drawable_gives_the_frame_back() -> None:
    image = np.full((100, 100, 3), 7, np.uint8)
    joints = np.full((NUM_JOINTS, 2), np.nan)
    joints[0] = (np.inf, 5.0)
    assert (draw_pose(image, joints, np.ones(NUM_JOINTS), name="lead") == image).all()
