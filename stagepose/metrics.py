"""Accuracy metrics as the benchmarks report them: PCKh@0.5 (MPII) and PCK@0.2 (LSP).

A joint counts only where the ground truth labels it; per-joint rates are NaN where no sample labels
that joint. Group rates (the paper's Table 2 columns) average the left and right joint rates, as
MPII's evaluation script prints them; the mean is over all labelled joints except pelvis and thorax,
weighted by how often each joint is labelled (MPII's ``jnt_ratio``).

A sample without its normaliser (no head size for PCKh; for PCK@0.2 no labelled left shoulder or right
hip, so no torso) cannot be scored at all. On LSPET that is about a quarter of the images, so results
say how many samples and joints were scored, and why the others were not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from stagepose.skeleton import JOINT_GROUPS, LIMB_JOINTS, NUM_JOINTS, Joint

SC_BIAS = 0.6  # MPII: head size = 0.6 x the head box diagonal
EXCLUDED_FROM_MEAN = (Joint.pelvis, Joint.thorax)
TABLE2_COLUMNS = ("head", "shoulder", "elbow", "wrist", "hip", "knee", "ankle", "mean")
NO_HEAD_SIZE = "no head size (no head box)"
NO_TORSO = "no torso reference (left shoulder or right hip not labelled)"


@dataclass(frozen=True)
class PCKResult:
    """Per-joint and grouped correct-keypoint rates, in percent.

    Attributes:
        name: "PCKh@0.5" or "PCK@0.2".
        per_joint: (16,) percent correct per MPII joint, NaN where never labelled.
        counts: (16,) number of labelled instances per joint (in scored samples).
        groups: Table 2 groups (head ... ankle) and "mean".
        limb_mean: mean over the 12 limb joints (shoulders to ankles), count-weighted.
        samples_used: samples scored (with a valid normaliser); samples_skipped: without one (excluded).
        skip_reason: why the skipped samples could not be scored.
    """

    name: str
    per_joint: np.ndarray
    counts: np.ndarray
    groups: dict[str, float] = field(default_factory=dict)
    limb_mean: float = float("nan")
    samples_used: int = 0
    samples_skipped: int = 0
    skip_reason: str = ""

    @property
    def group_counts(self) -> dict[str, int]:
        """Joints scored per Table 2 group, for the mean (all but pelvis and thorax) and "limbs"."""
        out = {g: _count(self.counts, js) for g, js in JOINT_GROUPS.items()}
        out["mean"] = _count(self.counts, [j for j in Joint if j not in EXCLUDED_FROM_MEAN])
        out["limbs"] = _count(self.counts, LIMB_JOINTS)
        return out

    def to_json(self) -> dict[str, object]:
        """Plain data for a JSON report."""
        return {
            "metric": self.name,
            "groups": {k: _finite_or_none(v) for k, v in self.groups.items()},
            "limb_mean": _finite_or_none(self.limb_mean),
            "per_joint": {Joint(i).name: _finite_or_none(v) for i, v in enumerate(self.per_joint)},
            "counts": {Joint(i).name: int(c) for i, c in enumerate(self.counts)},
            "group_counts": self.group_counts,
            "samples_used": self.samples_used,
            "samples_skipped": self.samples_skipped,
            "skip_reason": self.skip_reason if self.samples_skipped else None,
        }


def _count(counts: np.ndarray, joints: Sequence[Joint]) -> int:
    return int(sum(int(counts[int(j)]) for j in joints))


def _finite_or_none(value: float) -> float | None:
    return None if not np.isfinite(value) else round(float(value), 3)


def head_size_from_boxes(head_boxes: np.ndarray) -> np.ndarray:
    """MPII head size from head boxes (N, 2, 2) = [[x1, y1], [x2, y2]]: 0.6 x the box diagonal."""
    head_boxes = np.asarray(head_boxes, dtype=np.float64)
    return SC_BIAS * np.linalg.norm(head_boxes[:, 1] - head_boxes[:, 0], axis=-1)


def torso_size(gt: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """LSP torso size: left shoulder to right hip distance (N,), NaN where either is unlabelled."""
    gt = np.asarray(gt, dtype=np.float64)
    size = np.linalg.norm(gt[:, Joint.l_shoulder] - gt[:, Joint.r_hip], axis=-1)
    ok = (np.asarray(visible)[:, Joint.l_shoulder] > 0) & (np.asarray(visible)[:, Joint.r_hip] > 0)
    return np.where(ok, size, np.nan)


def pck(
    pred: np.ndarray,
    gt: np.ndarray,
    visible: np.ndarray,
    normaliser: np.ndarray,
    threshold: float,
    name: str,
    skip_reason: str = "no normaliser",
) -> PCKResult:
    """Correct where ``|pred - gt| <= threshold * normaliser`` (per sample).

    Args:
        pred: (N, 16, 2) predicted pixels (NaN counts as wrong).
        gt: (N, 16, 2) ground-truth pixels.
        visible: (N, 16) > 0 where the ground truth labels the joint.
        normaliser: (N,) head size or torso size in pixels; samples with NaN or <= 0 are skipped.
        threshold: fraction of the normaliser (0.5 for PCKh, 0.2 for PCK).
        name: label for reports.
        skip_reason: why a sample without a normaliser is not scored, for reports.
    """
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    visible = np.asarray(visible) > 0
    normaliser = np.asarray(normaliser, dtype=np.float64)
    if pred.shape != gt.shape or pred.shape[1:] != (NUM_JOINTS, 2) or visible.shape != pred.shape[:2]:
        raise ValueError(f"shapes must be (N, 16, 2) and (N, 16): pred {pred.shape}, gt {gt.shape}, "
                         f"visible {visible.shape}")  # fmt: skip
    usable = np.isfinite(normaliser) & (normaliser > 0)
    labelled = visible & usable[:, None]
    dist = np.linalg.norm(pred - gt, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        correct = (dist <= threshold * normaliser[:, None]) & labelled  # NaN distance -> False
    counts = labelled.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_joint = np.where(counts > 0, 100.0 * correct.sum(axis=0) / counts, np.nan)
    groups = {g: float(np.nanmean(per_joint[list(js)])) if np.isfinite(per_joint[list(js)]).any()
              else float("nan") for g, js in JOINT_GROUPS.items()}  # fmt: skip
    mean_joints = [j for j in Joint if j not in EXCLUDED_FROM_MEAN]
    groups["mean"] = _weighted(per_joint, counts, mean_joints)
    return PCKResult(
        name=name,
        per_joint=per_joint,
        counts=counts,
        groups=groups,
        limb_mean=_weighted(per_joint, counts, list(LIMB_JOINTS)),
        samples_used=int(usable.sum()),
        samples_skipped=int((~usable).sum()),
        skip_reason=skip_reason,
    )


def _weighted(per_joint: np.ndarray, counts: np.ndarray, joints: list[Joint]) -> float:
    idx = [int(j) for j in joints]
    total = counts[idx].sum()
    if total == 0:
        return float("nan")
    return float(np.nansum(per_joint[idx] * counts[idx]) / total)


def pckh(pred: np.ndarray, gt: np.ndarray, visible: np.ndarray, head_sizes: np.ndarray,
         threshold: float = 0.5) -> PCKResult:  # fmt: skip
    """MPII PCKh: threshold x head size (see ``head_size_from_boxes``)."""
    return pck(pred, gt, visible, head_sizes, threshold, f"PCKh@{threshold:g}", NO_HEAD_SIZE)


def pck_torso(pred: np.ndarray, gt: np.ndarray, visible: np.ndarray, threshold: float = 0.2) -> PCKResult:
    """LSP PCK: threshold x torso size (left shoulder to right hip of the ground truth)."""
    return pck(pred, gt, visible, torso_size(gt, visible), threshold, f"PCK@{threshold:g}", NO_TORSO)


def table2_header() -> str:
    """Column header in the layout of the paper's Table 2."""
    cols = "".join(f"{c:>9}" for c in TABLE2_COLUMNS)
    return f"{'model':<16}{'params/M':>9}{'GFLOPs':>8}{cols}"


def table2_row(label: str, result: PCKResult, params_m: float | None = None, gflops: float | None = None) -> str:
    """One row: model, params, compute, then head ... ankle and mean (percent, '-' where unknown)."""
    def num(v: float | None, width: int, digits: int) -> str:
        return f"{'-':>{width}}" if v is None or not np.isfinite(v) else f"{v:>{width}.{digits}f}"

    cols = "".join(num(result.groups.get(c), 9, 1) for c in TABLE2_COLUMNS)
    return f"{label:<16}{num(params_m, 9, 2)}{num(gflops, 8, 2)}{cols}"


def table2_counts_row(result: PCKResult, label: str = "joints scored") -> str:
    """Under a Table 2 row: how many joints each column's rate is computed from."""
    counts = result.group_counts
    cols = "".join(f"{counts[c]:>9d}" for c in TABLE2_COLUMNS)
    return f"{label:<16}{'':>17}{cols}"
