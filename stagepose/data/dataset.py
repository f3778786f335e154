"""The torch data set over person entries: reads an image, cuts and encodes a sample.

Reproducible augmentation without global random state: sample ``index`` in epoch ``e`` draws from
``numpy.random.default_rng((seed, e, index, attempt))``, so the result depends on neither the worker
that loads it nor the order. Call ``set_epoch(e)`` before each epoch (with ``persistent_workers=True``
the workers keep the epoch they were started with: then leave persistence off, or the crops repeat).

An image that fails to decode here (it passed the header check at construction, so it is damaged
further in) is logged once, counted, and replaced by the next entry's sample, so an epoch never stops on
one bad file; more than ``MAX_SUBSTITUTES`` failures in a row raise a DataError (the disk is gone).

Given teacher labels (``stagepose.data.teacher_labels``), every sample also carries the teacher's heatmaps
and weights, zero for entries the file does not label, so that batches always have the same keys.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal

import cv2
import numpy as np
from torch.utils.data import Dataset

from stagepose.codec import HeatmapCodec
from stagepose.data.augment import AugmentConfig
from stagepose.data.entries import DataSummary, PersonEntry
from stagepose.data.sample import make_sample
from stagepose.data.teacher_labels import TeacherLabels, no_opinion
from stagepose.errors import DataError
from stagepose.sizes import ImageSize

logger = logging.getLogger(__name__)

MAX_SUBSTITUTES = 16
Metric = Literal["pckh", "pck"]


class PoseDataset(Dataset[dict[str, Any]]):
    """Samples (see ``stagepose.data.sample``) of a list of person entries.

    Args:
        entries: the persons, one sample each.
        codec: target encoder; ``codec.input_size`` is the crop size.
        augment: random changes for training, None for validation.
        seed: base of the per-sample random generators.
        summary: what the loader read and skipped (``summary()`` returns it).
        metric: "pckh" where head sizes are known (MPII), else "pck" (PCK@0.2 of the torso).
        name: the spec, for messages.
        teacher_labels: offline teacher keypoints, looked up by each entry's ``source_id``; None: samples
            carry no teacher keys.
    """

    def __init__(
        self,
        entries: Sequence[PersonEntry],
        *,
        codec: HeatmapCodec,
        augment: AugmentConfig | None = None,
        seed: int = 0,
        summary: DataSummary | None = None,
        metric: Metric = "pck",
        name: str = "",
        teacher_labels: TeacherLabels | None = None,
    ) -> None:
        if not entries:
            raise DataError(f"{name or 'data set'}: no samples")
        self.entries = list(entries)
        self.codec = codec
        self.augment = augment
        self.seed = int(seed)
        self.epoch = 0
        self.metric: Metric = metric
        self.name = name
        self._summary = summary or DataSummary(source=name, entries=len(entries), samples=len(entries))
        self._bad_images: set[str] = set()
        self._teacher: list[np.ndarray | None] | None = None
        if teacher_labels is not None:
            self._teacher = [teacher_labels.keypoints(e.source_id) for e in self.entries]
            self._summary.notes.append(f"teacher labels for {self.teacher_count} of {len(self.entries)} entries "
                                       f"from {teacher_labels.source or 'memory'}")  # fmt: skip

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def input_size(self) -> ImageSize:
        """Crop (width, height) in pixels."""
        return self.codec.input_size

    @property
    def labelled(self) -> bool:
        """Whether the samples carry labels (False for unlabelled venue frames)."""
        return self.entries[0].labelled

    @property
    def teacher_count(self) -> int:
        """Entries with teacher labels (0 without a label file)."""
        return 0 if self._teacher is None else sum(t is not None for t in self._teacher)

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation draws of ``epoch`` (see the module docstring)."""
        self.epoch = int(epoch)

    def summary(self) -> DataSummary:
        """What was read, used and skipped; ``load_failures`` counts this process's decode failures."""
        return self._summary

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self.entries):
            raise IndexError(f"index {index} out of range for {len(self.entries)} samples")
        for attempt in range(MAX_SUBSTITUTES):
            position = (index + attempt) % len(self.entries)
            entry = self.entries[position]
            image = self._read(entry)
            if image is None:
                continue
            rng = np.random.default_rng((self.seed, self.epoch, index, attempt)) if self.augment else None
            teacher = None
            if self._teacher is not None:
                found = self._teacher[position]
                teacher = no_opinion() if found is None else found
            return make_sample(image, entry, self.codec, self.augment, rng, teacher)
        raise DataError(
            f"{self.name}: {MAX_SUBSTITUTES} images in a row failed to decode from sample {index} on "
            f"(last: {entry.image}); check that the data folder is still readable"
        )

    def _read(self, entry: PersonEntry) -> np.ndarray | None:
        key = str(entry.image)
        if key in self._bad_images:
            return None
        try:
            image = cv2.imread(key, cv2.IMREAD_COLOR)
        except cv2.error:
            image = None
        if image is None or image.ndim != 3 or image.shape[2] != 3:
            self._bad_images.add(key)
            self._summary.load_failures += 1
            logger.warning("%s: cannot decode %s (damaged file?); using another sample in its place",
                           self.name, key)  # fmt: skip
            return None
        return image
