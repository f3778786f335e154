"""Affine crops shared by training and runtime: the person box in the image <-> the model input.

Conventions: points are ``(..., 2)`` as (x, y) in pixels; sizes are (width, height); an affine is a
``(2, 3)`` float64 matrix mapping source points to destination points (``dst = A @ [x, y, 1]``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

# Model input normalisation: RGB, pixels scaled to 0..1, then per-channel (x - mean) / std.
INPUT_COLOR = "RGB"
INPUT_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
INPUT_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

# MPII's `scale` is the person height / 200 px; crops add this margin around the person. Training,
# evaluation and the live tracker's re-crop all use CROP_MARGIN, so the network sees people at one scale.
MPII_SCALE_PX = 200.0
CROP_MARGIN = 1.25


def crop_affine(
    center: np.ndarray | tuple[float, float],
    box_size: tuple[float, float],
    output_size: tuple[int, int],
    rotation_deg: float = 0.0,
) -> np.ndarray:
    """Affine (2, 3) from image pixels to a crop of ``output_size`` (w, h).

    The box of ``box_size`` (w, h) pixels centred on ``center`` fills the output; ``rotation_deg``
    rotates the content counter-clockwise about the centre (a positive angle turns the person left).
    """
    cx, cy = float(center[0]), float(center[1])
    out_w, out_h = output_size
    sx = out_w / float(box_size[0])
    sy = out_h / float(box_size[1])
    theta = math.radians(rotation_deg)
    cos, sin = math.cos(theta), math.sin(theta)
    # translate centre to origin, rotate, scale, translate to output centre
    rot = np.array([[cos, sin], [-sin, cos]])
    linear = np.diag([sx, sy]) @ rot
    offset = np.array([out_w / 2.0, out_h / 2.0]) - linear @ np.array([cx, cy])
    return np.hstack([linear, offset[:, None]])


def person_box(points: np.ndarray, margin: float) -> tuple[tuple[float, float], tuple[float, float]]:
    """Centre and (w, h) of the (M, 2) points' bounding box, grown by ``margin``.

    A side shorter than a third of the other is widened to that first, so a straight-arm pose still gets
    a body-shaped box. The one person box of training (``data.entries.joint_box``) and of the live
    tracker's re-crop (``show.tracking``), so the two cannot drift apart.
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    lo, hi = points.min(axis=0), points.max(axis=0)
    w, h = float(hi[0] - lo[0]), float(hi[1] - lo[1])
    w, h = max(w, h / 3.0), max(h, w / 3.0)
    center = (float(lo[0] + hi[0]) / 2.0, float(lo[1] + hi[1]) / 2.0)
    return center, (w * margin, h * margin)


def box_with_aspect(width: float, height: float, aspect_w_over_h: float) -> tuple[float, float]:
    """Grow the shorter side of a (w, h) box so that w / h equals ``aspect_w_over_h``."""
    if width / height > aspect_w_over_h:
        return width, width / aspect_w_over_h
    return height * aspect_w_over_h, height


def invert_affine(affine: np.ndarray) -> np.ndarray:
    """Inverse of a (2, 3) affine (or a batch ``(N, 2, 3)``)."""
    return np.asarray(cv2.invertAffineTransform(affine)) if np.ndim(affine) == 2 else np.stack(
        [cv2.invertAffineTransform(a) for a in affine]
    )


def apply_affine(points: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Map ``(..., 2)`` points by a ``(2, 3)`` affine; NaN points stay NaN."""
    points = np.asarray(points, dtype=np.float64)
    return points @ affine[:, :2].T + affine[:, 2]


def warp_crop(image: np.ndarray, affine: np.ndarray, output_size: tuple[int, int]) -> np.ndarray:
    """Resample ``image`` (H, W, 3) into the crop ``output_size`` (w, h); outside is black."""
    return cv2.warpAffine(
        image, affine, (int(output_size[0]), int(output_size[1])), flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0),
    )  # fmt: skip


def to_model_input(
    crops_bgr: np.ndarray,
    mean: Sequence[float] = INPUT_MEAN,
    std: Sequence[float] = INPUT_STD,
) -> np.ndarray:
    """(N, H, W, 3) uint8 BGR crops -> (N, 3, H, W) float32 normalised RGB, contiguous."""
    rgb = crops_bgr[..., ::-1].astype(np.float32) * (1.0 / 255.0)
    rgb -= np.asarray(mean, dtype=np.float32)
    rgb *= 1.0 / np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray(rgb.transpose(0, 3, 1, 2))
