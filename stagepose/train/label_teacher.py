"""The label teacher at the start of a run: read ``teacher.labels`` and say how much of the data it teaches.

A label file that is missing, malformed or labels none of the training entries stops the run before it
starts (a wrong file would otherwise train silently without any teacher term); entries it does not label
simply get no teacher term.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from stagepose.data.dataset import PoseDataset
from stagepose.data.teacher_labels import TeacherLabels, read_labels
from stagepose.errors import ConfigError, DataError
from stagepose.train.config import ExperimentConfig

logger = logging.getLogger(__name__)


def load_teacher_labels(config: ExperimentConfig) -> TeacherLabels | None:
    """The file of ``teacher.labels``, read and checked, or None for a network teacher or none.

    Raises:
        ConfigError: the file is missing or malformed (the message names the field and the file).
    """
    if config.teacher is None or config.teacher.labels is None:
        return None
    try:
        labels = read_labels(config.teacher.labels)
    except DataError as exc:
        raise ConfigError(f"teacher.labels: {exc}") from None
    logger.info("teacher: %d labels by %s (%s, %s) from %s", len(labels), labels.teacher.name,
                labels.teacher.software, labels.teacher.mode, config.teacher.labels)  # fmt: skip
    return labels


def check_coverage(parts: Sequence[PoseDataset], labels: TeacherLabels) -> int:
    """Log how many training entries the labels teach; returns that number.

    Raises:
        ConfigError: the labels teach none of the entries, or none of a data set without ground truth
            (its samples would teach nothing).
    """
    total = sum(len(p) for p in parts)
    taught = sum(p.teacher_count for p in parts)
    for part in parts:
        logger.info("teacher labels for %d of %d entries of %s", part.teacher_count, len(part), part.name)
        if not part.labelled and part.teacher_count == 0:
            raise ConfigError(f"teacher.labels {labels.source} labels none of {part.name} (no ground truth either, "
                              f"so it would teach nothing); label it with `stagepose data label --data SPEC --out "
                              f"{labels.source}` (keys are the entries' source ids, e.g. "
                              f"{part.entries[0].source_id!r})")  # fmt: skip
    if taught == 0:
        example = next(iter(labels.labels), "none")
        raise ConfigError(f"teacher.labels {labels.source} labels none of the {total} training entries (its keys "
                          f"look like {example!r}, the data's like {parts[0].entries[0].source_id!r}); label "
                          f"data.train with `stagepose data label`")  # fmt: skip
    logger.info("teacher labels for %d of %d training entries (%.0f %%); the others get no teacher term",
                taught, total, 100.0 * taught / max(total, 1))  # fmt: skip
    return taught
