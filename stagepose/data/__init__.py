"""Training data: MPII, LSP/LSPET, COCO-keypoints venue labels and unlabelled venue frames, as samples
of the agreed form (see ``stagepose.data.sample``), with training augmentation.

Public API (imported lazily, so ``import stagepose.data`` stays light for the CLI)::

    build_dataset(spec, *, split, input_size, augment, codec, seed) -> PoseDataset
    parse_spec(text) -> DatasetSpec
    AugmentConfig, PoseDataset, PersonEntry, DataSummary
"""

from __future__ import annotations

from stagepose.lazy import lazy_getattr

_EXPORTS = {
    "build_dataset": "stagepose.data.registry",
    "parse_spec": "stagepose.data.spec",
    "DatasetSpec": "stagepose.data.spec",
    "SPEC_HELP": "stagepose.data.spec",
    "AugmentConfig": "stagepose.data.augment",
    "PoseDataset": "stagepose.data.dataset",
    "PersonEntry": "stagepose.data.entries",
    "DataSummary": "stagepose.data.entries",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_getattr(__name__, _EXPORTS)
