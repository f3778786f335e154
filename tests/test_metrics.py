"""PCKh@0.5 and PCK@0.2 on hand-computed cases."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from stagepose.metrics import (
    NO_HEAD_SIZE,
    NO_TORSO,
    head_size_from_boxes,
    pck_torso,
    pckh,
    table2_counts_row,
    table2_header,
    table2_row,
)
from stagepose.skeleton import Joint


def _gt() -> np.ndarray:
    return np.stack([np.arange(16) * 10.0, np.zeros(16)], axis=-1)[None]


def test_head_size_is_point_six_diagonal() -> None:
    boxes = np.array([[[0, 0], [30, 40]]], dtype=float)
    assert head_size_from_boxes(boxes)[0] == pytest.approx(0.6 * 50)


def test_pckh_hand_computed() -> None:
    gt = np.repeat(_gt(), 2, axis=0)
    visible = np.ones((2, 16))
    visible[1, Joint.l_wrist] = 0  # unlabelled: must not count either way
    head = np.array([20.0, 20.0])  # threshold 0.5 * 20 = 10 px
    pred = gt.copy()
    pred[0, Joint.r_wrist, 0] += 9.9  # correct
    pred[1, Joint.r_wrist, 0] += 10.1  # wrong
    pred[:, Joint.l_wrist, 1] += 50  # wrong in sample 0; unlabelled in sample 1
    result = pckh(pred, gt, visible, head)
    assert result.per_joint[Joint.r_wrist] == pytest.approx(50.0)
    assert result.per_joint[Joint.l_wrist] == pytest.approx(0.0)
    assert result.counts[Joint.l_wrist] == 1
    assert result.groups["wrist"] == pytest.approx(25.0)
    assert result.groups["head"] == pytest.approx(100.0)
    # mean over 14 joints weighted by counts: 27 correct of 28 labelled... minus the wrists
    labelled = 14 * 2 - 1
    correct = labelled - 2
    assert result.groups["mean"] == pytest.approx(100.0 * correct / labelled)


def test_pck_torso_uses_left_shoulder_to_right_hip() -> None:
    gt = np.zeros((1, 16, 2))
    gt[0, Joint.l_shoulder] = (0, 0)
    gt[0, Joint.r_hip] = (30, 40)  # torso 50 -> threshold 10 px
    visible = np.ones((1, 16))
    pred = gt.copy()
    pred[0, Joint.r_knee] += (6, 8)  # 10 px: correct (<=)
    pred[0, Joint.l_knee] += (6, 8.1)  # just over: wrong
    result = pck_torso(pred, gt, visible)
    assert result.per_joint[Joint.r_knee] == 100.0 and result.per_joint[Joint.l_knee] == 0.0
    assert result.groups["knee"] == pytest.approx(50.0)
    assert result.limb_mean == pytest.approx(100.0 * 11 / 12)


def test_samples_without_torso_are_skipped_and_nan_pred_is_wrong() -> None:
    gt = np.zeros((2, 16, 2))
    gt[:, Joint.r_hip] = (30, 40)
    visible = np.ones((2, 16))
    visible[1, Joint.l_shoulder] = 0
    pred = gt.copy()
    pred[0, Joint.r_ankle] = np.nan
    result = pck_torso(pred, gt, visible)
    assert result.samples_used == 1 and result.samples_skipped == 1
    assert result.skip_reason == NO_TORSO and result.to_json()["skip_reason"] == NO_TORSO
    assert result.per_joint[Joint.r_ankle] == 0.0
    never = pck_torso(pred, gt, np.zeros((2, 16)))
    assert math.isnan(never.groups["mean"]) and math.isnan(never.per_joint[0])


def test_table2_row_layout() -> None:
    gt = _gt()
    result = pckh(gt, gt, np.ones((1, 16)), np.array([10.0]))
    header, row = table2_header(), table2_row("lshm-2", result, 2.17, 6.31)
    assert header.split()[-8:] == ["head", "shoulder", "elbow", "wrist", "hip", "knee", "ankle", "mean"]
    assert row.split()[:3] == ["lshm-2", "2.17", "6.31"] and row.split()[-1] == "100.0"


def test_group_counts_are_the_joints_scored_in_scored_samples_only() -> None:
    gt = np.zeros((3, 16, 2))
    gt[:, Joint.r_hip] = (30, 40)
    visible = np.ones((3, 16))
    visible[1, Joint.r_hip] = 0  # no torso: none of its 15 labelled joints is scored
    visible[2, [Joint.l_wrist, Joint.head_top]] = 0
    result = pck_torso(gt.copy(), gt, visible)
    counts = result.group_counts
    assert counts["wrist"] == 3 and counts["head"] == 3 and counts["shoulder"] == 4 and counts["hip"] == 4
    assert counts["mean"] == 2 * 14 - 2 and counts["limbs"] == 2 * 12 - 1
    assert result.to_json()["group_counts"] == counts
    everyone = pckh(gt.copy(), gt, np.ones((3, 16)), np.full(3, 10.0))
    assert everyone.samples_skipped == 0 and everyone.to_json()["skip_reason"] is None
    assert pckh(gt, gt, np.ones((3, 16)), np.array([10.0, np.nan, 10.0])).skip_reason == NO_HEAD_SIZE


def test_counts_row_lines_up_under_the_table2_columns() -> None:
    gt = _gt()
    result = pckh(gt, gt, np.ones((1, 16)), np.array([10.0]))
    header, row = table2_header(), table2_counts_row(result)
    assert row.startswith("joints scored") and len(row) == len(header)
    counts = ["2"] * 7 + ["14"]
    assert row.split()[-8:] == counts
    ends = [m.end() for m in re.finditer(r"\S+", header)][-8:]
    for end, count in zip(ends, counts):  # right-aligned under each heading
        assert row[end - len(count) - 1 : end] == f" {count}"
