"""How good is a teacher? Its labels scored against a data set's ground truth, as a model would be.

``stagepose data label-score FILE --data SPEC`` tells, before any training, whether a label file can teach:
its PCK should clearly beat the student's own (a teacher barely better than the student teaches nothing,
training/README.md). Entries the file does not label, or where the teacher found nobody, count as misses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stagepose.data.dataset import PoseDataset
from stagepose.data.teacher_labels import TeacherLabels
from stagepose.metrics import PCKResult, pck_torso, pckh


@dataclass(frozen=True)
class LabelScore:
    """A label file against ground truth.

    Attributes:
        result: PCKh@0.5 (data with head sizes) or PCK@0.2 of the torso, per joint and group.
        entries: labelled entries (ground truth) in the data.
        with_labels: of those, entries the file has a person for.
        missing: entries the file never labelled.
    """

    result: PCKResult
    entries: int
    with_labels: int
    missing: int

    def to_json(self) -> dict[str, object]:
        """Plain data for a JSON report."""
        return {**self.result.to_json(), "entries": self.entries, "with_labels": self.with_labels,
                "missing": self.missing}  # fmt: skip


def score_labels(labels: TeacherLabels, dataset: PoseDataset) -> LabelScore:
    """Score ``labels`` against the ground truth of ``dataset`` (entries without ground truth are left out)."""
    entries = [e for e in dataset.entries if e.labelled]
    pred = np.full((len(entries), 16, 2), np.nan)
    for i, entry in enumerate(entries):
        keypoints = labels.keypoints(entry.source_id)
        if keypoints is not None:
            pred[i] = keypoints[:, :2]
    gt = np.stack([np.nan_to_num(e.joints) for e in entries])
    visible = np.stack([e.visible for e in entries])
    if dataset.metric == "pckh":
        result = pckh(pred, gt, visible, np.array([e.head_size for e in entries]))
    else:
        result = pck_torso(pred, gt, visible)
    with_labels = int(np.isfinite(pred).all(axis=2).any(axis=1).sum())
    missing = sum(e.source_id not in labels.labels for e in entries)
    return LabelScore(result=result, entries=len(entries), with_labels=with_labels, missing=missing)
