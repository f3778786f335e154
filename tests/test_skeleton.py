"""The skeleton: order, flip pairs and mappings from LSP and COCO."""

from __future__ import annotations

import numpy as np

from stagepose.skeleton import (
    COCO_TO_MPII,
    FLIP_PAIRS,
    JOINT_NAMES,
    LIMBS,
    LSP_TO_MPII,
    Joint,
    flip_permutation,
    remap_to_mpii,
)


def test_mpii_order_and_names() -> None:
    assert JOINT_NAMES[0] == "r_ankle" and JOINT_NAMES[9] == "head_top" and JOINT_NAMES[15] == "l_wrist"
    assert Joint.pelvis == 6 and Joint.thorax == 7 and Joint.upper_neck == 8
    assert all(a != b for a, b in LIMBS) and len(LIMBS) == 15


def test_flip_pairs_swap_left_and_right() -> None:
    assert len(FLIP_PAIRS) == 6
    perm = flip_permutation()
    assert perm[Joint.r_wrist] == Joint.l_wrist and perm[Joint.l_ankle] == Joint.r_ankle
    assert perm[Joint.pelvis] == Joint.pelvis and perm[Joint.head_top] == Joint.head_top
    assert sorted(perm) == list(range(16)) and np.array_equal(perm[perm], np.arange(16))


def test_lsp_mapping_derives_pelvis_and_thorax() -> None:
    lsp = np.arange(28, dtype=float).reshape(14, 2)
    vis = np.ones(14)
    vis[3] = 0  # left hip unlabelled: pelvis cannot be derived
    joints, weight = remap_to_mpii(lsp, vis, LSP_TO_MPII)
    assert np.array_equal(joints[Joint.r_wrist], lsp[6]) and np.array_equal(joints[Joint.upper_neck], lsp[12])
    assert weight[Joint.pelvis] == 0 and np.isnan(joints[Joint.pelvis]).all()
    assert weight[Joint.thorax] == 1
    assert np.allclose(joints[Joint.thorax], (lsp[8] + lsp[9]) / 2)
    assert weight[Joint.l_hip] == 0 and np.isnan(joints[Joint.l_hip]).all()


def test_coco_mapping_batches_and_drops_face() -> None:
    coco = np.random.default_rng(0).uniform(0, 100, (3, 17, 2))
    vis = np.ones((3, 17))
    joints, weight = remap_to_mpii(coco, vis, COCO_TO_MPII)
    assert joints.shape == (3, 16, 2)
    assert np.allclose(joints[:, Joint.l_shoulder], coco[:, 5])
    assert np.allclose(joints[:, Joint.pelvis], (coco[:, 11] + coco[:, 12]) / 2)
    assert (weight[:, Joint.head_top] == 0).all() and (weight[:, Joint.upper_neck] == 0).all()
