"""Build the training sample agreed between the data and training areas, from a person entry and its image.

The sample (a dict that torch's default collate batches) has:

- ``image``: float32 tensor (3, H, W), the crop normalised by ``transforms.to_model_input``;
- ``heatmaps``: float32 (16, H/4, W/4) Gaussian targets from ``HeatmapCodec.encode``;
- ``target_weight``: float32 (16,), 0 where unlabelled or outside the heatmap;
- ``joints``: float32 (16, 2) ground truth in ORIGINAL image pixels, 0 where unlabelled;
- ``visible``: float32 (16,), 1 labelled, 0 not;
- ``image_to_input``: float32 (2, 3) affine that cut the crop (image pixels -> input pixels);
- ``head_size``: float32 scalar, MPII head size in image pixels, NaN where none;
- ``labelled``: bool, False for unlabelled venue frames (all targets and weights zero);
- ``source_id``: str;

and, only from a data set given teacher labels (``stagepose.data.teacher_labels``, every sample of it):

- ``teacher_heatmaps``: float32 (16, H/4, W/4), the teacher's keypoints encoded like the targets (same
  codec, so the same Gaussian sigma, peak 1);
- ``teacher_weight``: float32 (16,), the teacher's confidence 0..1, 0 where it has no opinion (or no
  label at all) or the joint falls outside the heatmap.

Invariant (tested): for every labelled joint k inside the crop,
``codec.heatmap_to_image(codec.decode(heatmaps)[0], image_to_input)[k] ~= joints[k]``. A flipped sample
keeps it: the flip is part of ``image_to_input`` and joint k of a mirrored crop is the person's mirrored
joint, so ``joints``, ``visible`` and the heatmap channels are all permuted by
``skeleton.flip_permutation()`` together. The teacher's keypoints go through the same affine and the
same permutation, so the invariant holds for ``teacher_heatmaps`` too (tested).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from stagepose.codec import HeatmapCodec
from stagepose.data.augment import AugmentConfig, CropParams, draw_crop, jitter_colors, occlude
from stagepose.data.entries import PersonEntry
from stagepose.skeleton import NUM_JOINTS, flip_permutation
from stagepose.transforms import apply_affine, box_with_aspect, crop_affine, to_model_input, warp_crop

_FLIP_PERM = flip_permutation()


def base_crop(entry: PersonEntry, input_size: tuple[int, int]) -> CropParams:
    """The plain (validation) crop: the entry's box widened to the input aspect, about its centre."""
    aspect = input_size[0] / input_size[1]
    w, h = box_with_aspect(entry.box[0], entry.box[1], aspect)
    return CropParams(center=entry.center, box=(w, h))


def crop_matrix(params: CropParams, input_size: tuple[int, int]) -> np.ndarray:
    """(2, 3) float64 affine image pixels -> input pixels for ``params``, mirror included."""
    affine = crop_affine(params.center, params.box, input_size, params.rotation_deg)
    if params.flip:
        # x' = (W - 1) - x in the crop: the mirrored crop is exactly np.fliplr of the plain one.
        mirror = np.array([[-1.0, 0.0, input_size[0] - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
        affine = (mirror @ np.vstack([affine, [0.0, 0.0, 1.0]]))[:2]
    return affine


def make_sample(
    image_bgr: np.ndarray,
    entry: PersonEntry,
    codec: HeatmapCodec,
    augment: AugmentConfig | None = None,
    rng: np.random.Generator | None = None,
    teacher: np.ndarray | None = None,
) -> dict[str, Any]:
    """Cut, augment and encode one sample.

    Args:
        image_bgr: (H, W, 3) uint8 BGR image of ``entry``.
        entry: the person.
        codec: target encoder; its ``input_size`` is the crop size.
        augment: random changes (training), or None for the plain crop (validation).
        rng: generator for ``augment`` (required with it).
        teacher: (16, 3) teacher keypoints [x, y, confidence] in image pixels (NaN / 0 where it has no
            opinion) to render as ``teacher_heatmaps``; None: no teacher keys in the sample.

    Returns:
        The sample dict described in the module docstring.
    """
    input_size = codec.input_size
    params = base_crop(entry, input_size)
    if augment is not None:
        if rng is None:
            raise ValueError("augmentation needs a random generator (rng)")
        params = draw_crop(rng, augment, params, entry.joints, entry.visible, input_size.aspect)
    affine = crop_matrix(params, input_size)
    crop = warp_crop(image_bgr, affine, input_size)
    if augment is not None and rng is not None:
        crop = occlude(jitter_colors(crop, rng, augment), rng, augment)

    joints = entry.joints
    visible = entry.visible if entry.labelled else np.zeros(NUM_JOINTS)
    if params.flip:
        joints, visible = joints[_FLIP_PERM], visible[_FLIP_PERM]
    if entry.labelled:
        heatmaps, weights = codec.encode(apply_affine(joints, affine), visible)
    else:
        w, h = codec.heatmap_size
        heatmaps, weights = np.zeros((NUM_JOINTS, h, w), np.float32), np.zeros(NUM_JOINTS, np.float32)
    labelled_joints = np.where((visible > 0)[:, None], np.nan_to_num(joints), 0.0)
    extra = {} if teacher is None else _teacher_targets(teacher, affine, params.flip, codec)
    return {
        "image": torch.from_numpy(to_model_input(crop[None])[0]),
        "heatmaps": torch.from_numpy(heatmaps),
        "target_weight": torch.from_numpy(weights.astype(np.float32)),
        "joints": torch.from_numpy(labelled_joints.astype(np.float32)),
        "visible": torch.from_numpy((visible > 0).astype(np.float32)),
        "image_to_input": torch.from_numpy(affine.astype(np.float32)),
        "head_size": torch.tensor(entry.head_size, dtype=torch.float32),
        "labelled": bool(entry.labelled),
        "source_id": entry.source_id,
        **extra,
    }


def _teacher_targets(teacher: np.ndarray, affine: np.ndarray, flip: bool, codec: HeatmapCodec) -> dict[str, Any]:
    """Teacher heatmaps and per-joint weights in the crop cut by ``affine`` (mirror included).

    The confidence weighs the joint in eq. 7 rather than scaling its Gaussian: MediaPipe's confidence
    says how likely the joint is visible, not how well it is placed, and a lowered peak would teach the
    student to hide occluded joints, which it must place (see ``stagepose.data.augment``).
    """
    teacher = np.asarray(teacher, dtype=np.float64)
    if teacher.shape != (NUM_JOINTS, 3):
        raise ValueError(f"teacher keypoints must be (16, 3) [x, y, confidence], got shape {teacher.shape}")
    if flip:
        teacher = teacher[_FLIP_PERM]
    confidence = np.where(np.isfinite(teacher[:, :2]).all(axis=1), np.nan_to_num(teacher[:, 2]), 0.0)
    heatmaps, weights = codec.encode(apply_affine(teacher[:, :2], affine), np.clip(confidence, 0.0, 1.0))
    return {"teacher_heatmaps": torch.from_numpy(heatmaps),
            "teacher_weight": torch.from_numpy(weights.astype(np.float32))}  # fmt: skip
