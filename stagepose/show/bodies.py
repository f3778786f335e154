"""Where a decoded pose's body lies in the image, for telling people apart when they touch or overlap.

A single-person model given a crop with two people in it often returns a *mixed* pose: some joints on
one person, some on the other, or one person's upper body alone at the wrong scale. Comparing joints
label by label (`stagepose.show.assign.poses_overlap`) misses those: the partner's hip labelled as the
lead's knee lies on the partner's body but far from the partner's knee. So a pose's *body* is the union
of its seen bones, each a capsule ``radius`` x pose height wide, and its torso quadrilateral (shoulders
and hips); what matters is how many of another pose's joints fall on it.

The same geometry says which joints of a performer standing behind another are hidden: on a stage seen
from above floor level the person nearer the camera stands lower in the image, and the joints the model
puts on that person's body, for the one behind, are occluded: not measurements.
"""

from __future__ import annotations

import cv2
import numpy as np

from stagepose.skeleton import LIMBS, Joint

_BONES = np.array(sorted((int(a), int(b)) for a, b in LIMBS))
_TORSO = (Joint.l_shoulder, Joint.r_shoulder, Joint.r_hip, Joint.l_hip)


def pose_height(joints: np.ndarray, seen: np.ndarray) -> float:
    """The larger side of the seen joints' box, in pixels (at least 1)."""
    points = joints[seen]
    if not len(points):
        return 1.0
    return float(max(np.ptp(points, axis=0).max(), 1.0))


def distance_to_body(points: np.ndarray, joints: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """(N,) distance in pixels from each point to the pose's body (its seen bones; 0 inside its torso).

    Args:
        points: (N, 2) image pixels.
        joints: (16, 2) the pose; seen: (16,) which of its joints count.
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    distance = np.full(len(points), np.inf)
    bones = _BONES[seen[_BONES[:, 0]] & seen[_BONES[:, 1]]]
    if len(bones):
        a, b = joints[bones[:, 0]], joints[bones[:, 1]]  # (B, 2)
        ab = b - a
        t = np.einsum("nbk,bk->nb", points[:, None, :] - a[None], ab) / np.maximum((ab * ab).sum(axis=1), 1e-9)
        nearest = a[None] + np.clip(t, 0.0, 1.0)[..., None] * ab[None]
        distance = np.linalg.norm(points[:, None, :] - nearest, axis=2).min(axis=1)
    if all(seen[j] for j in _TORSO):
        torso = joints[list(_TORSO)].astype(np.float32)
        inside = [cv2.pointPolygonTest(torso, (float(x), float(y)), False) >= 0 for x, y in points]
        distance[np.asarray(inside, dtype=bool)] = 0.0
    return distance


def on_body(
    joints: np.ndarray, seen: np.ndarray, other: np.ndarray, other_seen: np.ndarray, radius: float
) -> np.ndarray:
    """(16,) bool: which seen joints of a pose lie on another pose's body (within ``radius`` x its height)."""
    out = np.zeros(len(joints), dtype=bool)
    if not seen.any() or not other_seen.any():
        return out
    reach = radius * pose_height(other, other_seen)
    out[seen] = distance_to_body(joints[seen], other, other_seen) <= reach
    return out


def share_on_body(
    joints: np.ndarray, seen: np.ndarray, other: np.ndarray, other_seen: np.ndarray, radius: float
) -> float:
    """The fraction of a pose's seen joints that lie on another pose's body (0 with none seen)."""
    count = int(seen.sum())
    return float(on_body(joints, seen, other, other_seen, radius).sum() / count) if count else 0.0


def in_front(a_joints: np.ndarray, a_seen: np.ndarray, b_joints: np.ndarray, b_seen: np.ndarray) -> bool:
    """Whether pose ``a`` is nearer the camera than ``b``: its lowest seen joint is lower in the image."""
    return bool(a_joints[a_seen, 1].max() > b_joints[b_seen, 1].max())
