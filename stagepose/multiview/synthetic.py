"""A synthetic multi-camera scene with known answers: cameras in a ring, standing skeletons in metres.

Used by the triangulation benchmark (``stagepose bench triangulate``) and the tests: poses projected
here through known cameras (lens distortion included) must triangulate back to the skeleton.
"""

from __future__ import annotations

import numpy as np

from stagepose.multiview.cameras import Rig, RigCamera
from stagepose.skeleton import NUM_JOINTS, Joint

IMAGE_SIZE = (1920, 1080)
K_1080P = np.array([[1400.0, 0.0, 959.5], [0.0, 1400.0, 539.5], [0.0, 0.0, 1.0]])
DIST = np.array([-0.08, 0.05, 0.0005, -0.0003])

# A 1.75 m person standing at the origin, facing -y (towards a camera at negative y), metres.
_SKELETON = {
    Joint.r_ankle: (-0.12, 0.0, 0.08), Joint.r_knee: (-0.11, 0.0, 0.50), Joint.r_hip: (-0.10, 0.0, 0.92),
    Joint.l_hip: (0.10, 0.0, 0.92), Joint.l_knee: (0.11, 0.0, 0.50), Joint.l_ankle: (0.12, 0.0, 0.08),
    Joint.pelvis: (0.0, 0.0, 0.92), Joint.thorax: (0.0, 0.0, 1.42), Joint.upper_neck: (0.0, 0.0, 1.52),
    Joint.head_top: (0.0, 0.0, 1.75), Joint.r_wrist: (-0.40, -0.10, 1.00), Joint.r_elbow: (-0.30, 0.0, 1.15),
    Joint.r_shoulder: (-0.19, 0.0, 1.42), Joint.l_shoulder: (0.19, 0.0, 1.42), Joint.l_elbow: (0.30, 0.0, 1.15),
    Joint.l_wrist: (0.40, -0.10, 1.00),
}  # fmt: skip
SKELETON = np.array([_SKELETON[j] for j in Joint], dtype=np.float64)


def look_at(position: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(R, t) of an OpenCV camera at ``position`` looking at ``target`` (world z up, horizon level)."""
    position, target = np.asarray(position, dtype=np.float64), np.asarray(target, dtype=np.float64)
    forward = target - position
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    R = np.vstack([right, down, forward])  # noqa: N806
    return R, -R @ position


def ring_rig(
    cameras: int = 4,
    radius_m: float = 5.0,
    height_m: float = 2.5,
    target: tuple[float, float, float] = (0.0, 0.0, 1.0),
    image_size: tuple[int, int] = IMAGE_SIZE,
    K: np.ndarray = K_1080P,  # noqa: N803
    dist: np.ndarray = DIST,
) -> Rig:
    """``cameras`` cameras evenly around a circle, all aimed at ``target``."""
    out = []
    for i in range(cameras):
        a = 2 * np.pi * i / cameras - np.pi / 2  # the first one in front (negative y)
        R, t = look_at(np.array([radius_m * np.cos(a), radius_m * np.sin(a), height_m]), np.array(target))  # noqa: N806
        out.append(RigCamera(f"cam{i + 1:02d}", image_size, np.array(K, float), np.array(dist, float), R, t))
    return Rig(tuple(out))


def skeleton(centre: tuple[float, float] = (0.0, 0.0), yaw_rad: float = 0.0, scale: float = 1.0) -> np.ndarray:
    """(16, 3) standing skeleton (MPII order) at floor position ``centre``, turned by ``yaw_rad`` about z."""
    c, s = np.cos(yaw_rad), np.sin(yaw_rad)
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    return SKELETON * scale @ rot.T + np.array([centre[0], centre[1], 0.0])


def observe(
    rig: Rig, points: np.ndarray, noise_px: float, rng: np.random.Generator, confidence: float = 0.8
) -> tuple[np.ndarray, np.ndarray]:
    """Raw pixels of ``points`` (N, 3) in every view with Gaussian pixel noise, and a confidence per view.

    Returns:
        (C, N, 2) pixels (NaN outside the image or behind the camera) and (C, N) confidence.
    """
    pixels = rig.project(points)
    pixels = pixels + rng.normal(0.0, noise_px, pixels.shape)
    inside = np.zeros(pixels.shape[:2], dtype=bool)
    for v, cam in enumerate(rig.cameras):
        w, h = cam.image_size
        inside[v] = np.isfinite(pixels[v]).all(axis=1) & (pixels[v, :, 0] >= 0) & (pixels[v, :, 0] < w)
        inside[v] &= (pixels[v, :, 1] >= 0) & (pixels[v, :, 1] < h)
    pixels[~inside] = np.nan
    conf = np.where(inside, confidence, 0.0)
    return pixels, conf


__all__ = ["IMAGE_SIZE", "K_1080P", "NUM_JOINTS", "SKELETON", "look_at", "observe", "ring_rig", "skeleton"]
