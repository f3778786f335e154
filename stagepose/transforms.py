"""Affine crops shared by training and runtime: the person box in the image <-> the model input.

Conventions: points are ``(..., 2)`` as (x, y) in pixels; sizes are ``sizes.ImageSize`` (width, height);
an affine is a ``(2, 3)`` float64 matrix mapping source points to destination points (``dst = A @ [x, y, 1]``).
Images come from OpenCV and PyAV as uint8 BGR; `InputFormat` turns crops of them into the model's input.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import cv2
import numpy as np

from stagepose.sizes import ImageSize

Color = Literal["RGB", "BGR"]

# Model input normalisation of every stagepose model: RGB, pixels scaled to 0..1, then per-channel
# (x - mean) / std. Exported models record it in their sidecar, which is what the runtime follows.
INPUT_COLOR: Color = "RGB"
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
    """Resample ``image`` (H, W, 3) into the crop ``output_size`` (width, height); outside is black."""
    width, height = output_size
    return cv2.warpAffine(
        image, affine, (int(width), int(height)), flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0),
    )  # fmt: skip


def to_model_input(
    crops_bgr: np.ndarray,
    mean: Sequence[float] = INPUT_MEAN,
    std: Sequence[float] = INPUT_STD,
    color: Color = INPUT_COLOR,
) -> np.ndarray:
    """(N, H, W, 3) BGR crops -> (N, 3, H, W) float32, channels in ``color`` order, normalised, contiguous.

    ``mean`` and ``std`` are per model channel (in ``color`` order) for pixels scaled to 0..1. uint8
    crops go through one ``cv2.LUT`` per crop (a 256-entry float32 table per channel, the same float32
    values as the arithmetic below, which other dtypes take) and one transposing copy.
    """
    if color not in ("RGB", "BGR"):
        raise ValueError(f"color must be RGB or BGR, got {color!r}")
    crops_bgr = np.asarray(crops_bgr)
    if crops_bgr.dtype != np.uint8:
        pixels = crops_bgr[..., ::-1] if color == "RGB" else crops_bgr
        pixels = pixels.astype(np.float32) * (1.0 / 255.0)
        pixels -= np.asarray(mean, dtype=np.float32)
        pixels *= 1.0 / np.asarray(std, dtype=np.float32)
        return np.ascontiguousarray(pixels.transpose(0, 3, 1, 2))
    table = _lookup_table(tuple(float(m) for m in mean), tuple(float(s) for s in std), color)
    n, h, w, _ = crops_bgr.shape
    out = np.empty((n, 3, h, w), dtype=np.float32)
    for crop, planes in zip(crops_bgr, out):
        normalised = cv2.LUT(crop, table).transpose(2, 0, 1)  # (3, h, w), crop (BGR) channel order
        planes[:] = normalised[::-1] if color == "RGB" else normalised
    return out


@lru_cache(maxsize=8)
def _lookup_table(mean: tuple[float, ...], std: tuple[float, ...], color: Color) -> np.ndarray:
    """(1, 256, 3) float32 for ``cv2.LUT``: the normalised value of each uint8 level per BGR crop channel."""
    levels = np.arange(256, dtype=np.float32)[:, None] * (1.0 / 255.0)  # the float32 steps of to_model_input
    levels = levels - np.asarray(mean, dtype=np.float32)
    levels *= 1.0 / np.asarray(std, dtype=np.float32)  # (256, 3) in model channel order
    table = np.ascontiguousarray((levels[:, ::-1] if color == "RGB" else levels)[None])
    table.setflags(write=False)
    return table


@dataclass(frozen=True)
class InputFormat:
    """What a model takes: its input size, channel order and normalisation (from its sidecar).

    Attributes:
        size: model input (width, height).
        color: channel order the model expects; frames arrive BGR and are converted when it says RGB.
        mean: per-channel mean of pixels scaled to 0..1, in ``color`` order.
        std: per-channel standard deviation, in ``color`` order.
    """

    size: ImageSize = ImageSize(256, 256)
    color: Color = INPUT_COLOR
    mean: tuple[float, float, float] = INPUT_MEAN
    std: tuple[float, float, float] = INPUT_STD

    def __post_init__(self) -> None:
        object.__setattr__(self, "size", ImageSize.of(self.size))
        if self.color not in ("RGB", "BGR"):
            raise ValueError(f"color must be RGB or BGR, got {self.color!r}")

    def normalise(self, crops_bgr: np.ndarray) -> np.ndarray:
        """(N, h, w, 3) uint8 BGR crops of the model size -> the (N, 3, h, w) float32 model input."""
        return to_model_input(crops_bgr, self.mean, self.std, self.color)

    def crop_batch(self, images_bgr: Sequence[np.ndarray], affines: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """Cut one crop per (image, affine) pair and normalise them into one (N, 3, h, w) float32 batch.

        Args:
            images_bgr: N uint8 BGR images (H, W, 3), e.g. the same frame once per performer.
            affines: N (2, 3) image -> model-input affines (`crop_affine` to ``size``).
        """
        if len(images_bgr) != len(affines):
            raise ValueError(f"{len(images_bgr)} images but {len(affines)} affines")
        crops = np.empty((len(images_bgr), self.size.height, self.size.width, 3), dtype=np.uint8)
        for crop, image, affine in zip(crops, images_bgr, affines):
            cv2.warpAffine(image, affine, self.size, dst=crop, flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))  # fmt: skip
        return self.normalise(crops)
