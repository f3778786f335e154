"""Training augmentation: random crop geometry (scale, rotation, shift, flip, half body) and pixel changes
(colour jitter, occluding rectangles).

Geometry is drawn as numbers and applied as ONE affine warp per sample (no repeated resampling); pixel
changes act on the small crop, not the full image. Every draw comes from a ``numpy.random.Generator``
passed in (the data set seeds it from (seed, epoch, index)), never from global random state.

Occlusion matters for this model: the paper claims robustness to occluded joints, and on stage performers
pass behind props, set pieces and each other. Occluded joints keep their targets, so the model learns to
place a hidden wrist from the arm that leads to it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from stagepose.skeleton import Joint

# Half-body augmentation crops to one of these groups (as HRNet does for COCO and MPII).
UPPER_BODY: tuple[Joint, ...] = (
    Joint.head_top, Joint.upper_neck, Joint.thorax, Joint.r_shoulder, Joint.l_shoulder,
    Joint.r_elbow, Joint.l_elbow, Joint.r_wrist, Joint.l_wrist,
)  # fmt: skip
LOWER_BODY: tuple[Joint, ...] = (
    Joint.pelvis, Joint.r_hip, Joint.l_hip, Joint.r_knee, Joint.l_knee, Joint.r_ankle, Joint.l_ankle,
)  # fmt: skip
HALF_BODY_MARGIN = 1.5  # around the group's joints (a half body has less context than a whole one)
HALF_BODY_MIN_LABELLED = 8  # whole-body labels needed before cropping to half of them


@dataclass(frozen=True)
class AugmentConfig:
    """Random changes applied to training crops (validation uses none). Defaults follow HRNet/mmpose.

    Attributes:
        scale: box scale drawn uniformly from [1 - scale, 1 + scale] (0.25: +-25 %).
        rotation_deg: rotation drawn uniformly from [-rotation_deg, rotation_deg] ...
        rotation_prob: ... with this probability (else 0).
        translate: box centre shift, uniform in +-translate x box size per axis (a runtime crop from
            the previous frame's pose is rarely centred).
        flip_prob: probability of a horizontal flip (left and right joints swap).
        half_body_prob: probability of cropping to the upper or lower body (needs 8 labelled joints,
            and ``half_body_min_joints`` in the chosen half).
        half_body_min_joints: labelled joints the chosen half needs.
        brightness, contrast, saturation: factors drawn from [1 - x, 1 + x].
        color_cast: per-channel gain drawn from [1 - x, 1 + x] (coloured stage light, white balance).
        occlusion_prob: probability of pasting occluding rectangles into the crop ...
        occlusion_max_boxes: ... from 1 to this many ...
        occlusion_area: ... each covering this (min, max) fraction of the crop, in a random solid colour.
    """

    scale: float = 0.25
    rotation_deg: float = 30.0
    rotation_prob: float = 0.6
    translate: float = 0.05
    flip_prob: float = 0.5
    half_body_prob: float = 0.2
    half_body_min_joints: int = 3
    brightness: float = 0.25
    contrast: float = 0.25
    saturation: float = 0.25
    color_cast: float = 0.1
    occlusion_prob: float = 0.5
    occlusion_max_boxes: int = 2
    occlusion_area: tuple[float, float] = (0.02, 0.12)

    def __post_init__(self) -> None:
        for name in ("rotation_prob", "flip_prob", "half_body_prob", "occlusion_prob"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} is a probability in [0, 1], got {value}")
        for name in ("scale", "brightness", "contrast", "saturation", "color_cast"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} is a relative change in [0, 1), got {value}")
        if not 0.0 <= self.rotation_deg <= 180.0:
            raise ValueError(f"rotation_deg must be in [0, 180], got {self.rotation_deg}")
        if not 0.0 <= self.translate <= 0.5:
            raise ValueError(f"translate must be in [0, 0.5], got {self.translate}")
        if self.occlusion_max_boxes < 1:
            raise ValueError(f"occlusion_max_boxes must be >= 1, got {self.occlusion_max_boxes}")
        lo, hi = self.occlusion_area
        if not 0.0 < lo <= hi < 1.0:
            raise ValueError(f"occlusion_area must be (min, max) with 0 < min <= max < 1, got {self.occlusion_area}")
        if self.half_body_min_joints < 2:
            raise ValueError(f"half_body_min_joints must be >= 2, got {self.half_body_min_joints}")


@dataclass(frozen=True)
class CropParams:
    """Where one crop is cut: box centre and (w, h) in image pixels, rotation, and whether to mirror it."""

    center: tuple[float, float]
    box: tuple[float, float]
    rotation_deg: float = 0.0
    flip: bool = False


def draw_crop(
    rng: np.random.Generator,
    config: AugmentConfig,
    base: CropParams,
    joints: np.ndarray,
    visible: np.ndarray,
    aspect: float,
) -> CropParams:
    """Random crop geometry around ``base`` (the un-augmented crop).

    Args:
        rng: the sample's generator.
        config: what to draw.
        base: centre and box of the plain crop (box already at the input aspect).
        joints: (16, 2) image pixels, NaN where unlabelled (for half body).
        visible: (16,) labels.
        aspect: model input width / height.
    """
    center = np.array(base.center, dtype=np.float64)
    box = np.array(base.box, dtype=np.float64)
    if config.half_body_prob > 0 and rng.random() < config.half_body_prob:
        half = _half_body(rng, config, joints, visible, aspect)
        if half is not None:
            center, box = half
    box *= rng.uniform(1.0 - config.scale, 1.0 + config.scale)
    center += rng.uniform(-config.translate, config.translate, size=2) * box
    rotation = 0.0
    if config.rotation_deg > 0 and rng.random() < config.rotation_prob:
        rotation = float(rng.uniform(-config.rotation_deg, config.rotation_deg))
    flip = bool(rng.random() < config.flip_prob)
    return CropParams((float(center[0]), float(center[1])), (float(box[0]), float(box[1])), rotation, flip)


def _half_body(
    rng: np.random.Generator, config: AugmentConfig, joints: np.ndarray, visible: np.ndarray, aspect: float
) -> tuple[np.ndarray, np.ndarray] | None:
    from stagepose.transforms import box_with_aspect

    labelled = (visible > 0) & np.isfinite(joints).all(axis=1)
    if labelled.sum() < HALF_BODY_MIN_LABELLED:
        return None
    groups = [UPPER_BODY, LOWER_BODY]
    if rng.random() < 0.5:
        groups.reverse()
    for group in groups:
        idx = [int(j) for j in group if labelled[j]]
        if len(idx) < config.half_body_min_joints:
            continue
        pts = joints[idx]
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        w, h = box_with_aspect(max(float(hi[0] - lo[0]), 1.0), max(float(hi[1] - lo[1]), 1.0), aspect)
        return (lo + hi) / 2.0, np.array([w, h]) * HALF_BODY_MARGIN
    return None


_LUMA_BGR = np.array([0.114, 0.587, 0.299])


def jitter_colors(crop: np.ndarray, rng: np.random.Generator, config: AugmentConfig) -> np.ndarray:
    """Brightness, contrast, saturation and colour-cast changes of a (H, W, 3) uint8 BGR crop (a new array).

    All four are linear in the pixel, so they are composed into one 3x4 colour matrix and applied in a
    single ``cv2.transform`` (with rounding and clipping to 0..255): brightness b scales, contrast c
    pulls towards the mean grey m, saturation s blends with the luma, and the cast scales each channel:
    ``out = G (s I + (1 - s) 1 w^T) (c b x + (1 - c) b m)``.
    """
    if not (config.brightness or config.contrast or config.saturation or config.color_cast):
        return crop
    b = rng.uniform(1.0 - config.brightness, 1.0 + config.brightness) if config.brightness else 1.0
    c = rng.uniform(1.0 - config.contrast, 1.0 + config.contrast) if config.contrast else 1.0
    s = rng.uniform(1.0 - config.saturation, 1.0 + config.saturation) if config.saturation else 1.0
    gains = (rng.uniform(1.0 - config.color_cast, 1.0 + config.color_cast, size=3) if config.color_cast
             else np.ones(3))  # fmt: skip
    mean = float(crop.mean()) * b if config.contrast else 0.0
    saturation = s * np.eye(3) + (1.0 - s) * np.outer(np.ones(3), _LUMA_BGR)
    linear = np.diag(gains) @ saturation * (c * b)
    offset = gains * (1.0 - c) * mean  # saturation maps grey to itself: its rows sum to 1
    return cv2.transform(crop, np.hstack([linear, offset[:, None]]).astype(np.float32))


def occlude(crop: np.ndarray, rng: np.random.Generator, config: AugmentConfig) -> np.ndarray:
    """Paste 1..occlusion_max_boxes solid rectangles of random colour into a (H, W, 3) crop (a new array)."""
    if config.occlusion_prob <= 0 or rng.random() >= config.occlusion_prob:
        return crop
    out = crop.copy()
    height, width = out.shape[:2]
    for _ in range(int(rng.integers(1, config.occlusion_max_boxes + 1))):
        area = rng.uniform(*config.occlusion_area) * width * height
        ratio = np.exp(rng.uniform(np.log(0.3), np.log(3.3)))  # h / w, log-uniform as random erasing
        h = int(min(round(np.sqrt(area * ratio)), height))
        w = int(min(round(np.sqrt(area / ratio)), width))
        if h < 1 or w < 1:
            continue
        y = int(rng.integers(0, height - h + 1))
        x = int(rng.integers(0, width - w + 1))
        out[y : y + h, x : x + w] = rng.integers(0, 256, size=3, dtype=np.uint8)
    return out
