"""The MPII 16-joint skeleton, defined once for training, runtime and OSC.

Joint order is MPII's (also the model's output order). LSP (14 joints) and COCO (17 keypoints) map onto
it; pelvis and thorax, which they lack, can be derived as the hip and shoulder mid-points.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np


class Joint(IntEnum):
    """MPII joints in MPII order; the name is the short OSC-friendly name."""

    r_ankle = 0
    r_knee = 1
    r_hip = 2
    l_hip = 3
    l_knee = 4
    l_ankle = 5
    pelvis = 6
    thorax = 7
    upper_neck = 8
    head_top = 9
    r_wrist = 10
    r_elbow = 11
    r_shoulder = 12
    l_shoulder = 13
    l_elbow = 14
    l_wrist = 15


NUM_JOINTS = len(Joint)
JOINT_NAMES: tuple[str, ...] = tuple(j.name for j in Joint)

LIMBS: frozenset[tuple[Joint, Joint]] = frozenset(
    {
        (Joint.r_ankle, Joint.r_knee),
        (Joint.r_knee, Joint.r_hip),
        (Joint.r_hip, Joint.pelvis),
        (Joint.l_hip, Joint.pelvis),
        (Joint.l_knee, Joint.l_hip),
        (Joint.l_ankle, Joint.l_knee),
        (Joint.pelvis, Joint.thorax),
        (Joint.thorax, Joint.upper_neck),
        (Joint.upper_neck, Joint.head_top),
        (Joint.r_wrist, Joint.r_elbow),
        (Joint.r_elbow, Joint.r_shoulder),
        (Joint.r_shoulder, Joint.thorax),
        (Joint.l_shoulder, Joint.thorax),
        (Joint.l_elbow, Joint.l_shoulder),
        (Joint.l_wrist, Joint.l_elbow),
    }
)


def _derive_flip_pairs() -> tuple[tuple[Joint, Joint], ...]:
    """Pairs (right, left) found from the r_/l_ name prefixes, so they cannot drift from the enum."""
    pairs = []
    for joint in Joint:
        if joint.name.startswith("r_"):
            pairs.append((joint, Joint[("l_" + joint.name[2:])]))
    return tuple(pairs)


FLIP_PAIRS: tuple[tuple[Joint, Joint], ...] = _derive_flip_pairs()


def flip_permutation() -> np.ndarray:
    """Index array that swaps left and right joints: ``flipped[:, k] = joints[:, perm[k]]``."""
    perm = np.arange(NUM_JOINTS)
    for right, left in FLIP_PAIRS:
        perm[right], perm[left] = left, right
    return perm


# Joint groups as the MPII benchmark (and the paper's Table 2) report them.
JOINT_GROUPS: dict[str, tuple[Joint, ...]] = {
    "head": (Joint.upper_neck, Joint.head_top),
    "shoulder": (Joint.r_shoulder, Joint.l_shoulder),
    "elbow": (Joint.r_elbow, Joint.l_elbow),
    "wrist": (Joint.r_wrist, Joint.l_wrist),
    "hip": (Joint.r_hip, Joint.l_hip),
    "knee": (Joint.r_knee, Joint.l_knee),
    "ankle": (Joint.r_ankle, Joint.l_ankle),
}

# The 12 limb joints (no head, pelvis, thorax): used for the LSP limb-joint mean.
LIMB_JOINTS: tuple[Joint, ...] = tuple(
    j for g in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle") for j in JOINT_GROUPS[g]
)

# LSP / LSP-extended joint k is MPII joint LSP_TO_MPII[k] (LSP "neck" is MPII's upper neck).
LSP_TO_MPII: tuple[Joint, ...] = (
    Joint.r_ankle,
    Joint.r_knee,
    Joint.r_hip,
    Joint.l_hip,
    Joint.l_knee,
    Joint.l_ankle,
    Joint.r_wrist,
    Joint.r_elbow,
    Joint.r_shoulder,
    Joint.l_shoulder,
    Joint.l_elbow,
    Joint.l_wrist,
    Joint.upper_neck,
    Joint.head_top,
)

# COCO keypoint k is MPII joint COCO_TO_MPII[k], or None where MPII has no such joint (face points).
COCO_KEYPOINT_NAMES: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip
COCO_TO_MPII: tuple[Joint | None, ...] = (
    None, None, None, None, None,
    Joint.l_shoulder, Joint.r_shoulder, Joint.l_elbow, Joint.r_elbow, Joint.l_wrist, Joint.r_wrist,
    Joint.l_hip, Joint.r_hip, Joint.l_knee, Joint.r_knee, Joint.l_ankle, Joint.r_ankle,
)  # fmt: skip

# Joints derivable as a mid-point of two labelled joints: (derived, (a, b)).
MIDPOINTS: tuple[tuple[Joint, tuple[Joint, Joint]], ...] = (
    (Joint.pelvis, (Joint.r_hip, Joint.l_hip)),
    (Joint.thorax, (Joint.r_shoulder, Joint.l_shoulder)),
)


def remap_to_mpii(
    joints: np.ndarray,
    visible: np.ndarray,
    mapping: tuple[Joint | None, ...],
    derive_midpoints: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Map another skeleton's joints onto MPII's 16.

    Args:
        joints: (..., K_src, 2) source joint coordinates.
        visible: (..., K_src) source labels, > 0 where the joint is labelled.
        mapping: for each source joint, the MPII joint it is, or None to drop it.
        derive_midpoints: fill pelvis/thorax as hip/shoulder mid-points where both ends are labelled
            and the source has no label of its own.

    Returns:
        (..., 16, 2) coordinates (NaN where unknown) and (..., 16) float weights (1 labelled, 0 not).
    """
    joints = np.asarray(joints, dtype=np.float64)
    visible = np.asarray(visible, dtype=np.float64)
    if joints.shape[-2] != len(mapping) or visible.shape[-1] != len(mapping):
        raise ValueError(
            f"expected {len(mapping)} source joints, got joints {joints.shape} and labels {visible.shape}"
        )
    lead = joints.shape[:-2]
    out = np.full((*lead, NUM_JOINTS, 2), np.nan)
    weight = np.zeros((*lead, NUM_JOINTS))
    for src, dst in enumerate(mapping):
        if dst is None:
            continue
        labelled = visible[..., src] > 0
        out[..., dst, :] = np.where(labelled[..., None], joints[..., src, :], np.nan)
        weight[..., dst] = labelled
    if derive_midpoints:
        for derived, (a, b) in MIDPOINTS:
            both = (weight[..., a] > 0) & (weight[..., b] > 0) & (weight[..., derived] == 0)
            mid = 0.5 * (out[..., a, :] + out[..., b, :])
            out[..., derived, :] = np.where(both[..., None], mid, out[..., derived, :])
            weight[..., derived] = np.where(both, 1.0, weight[..., derived])
    return out, weight
