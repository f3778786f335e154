"""The paper's networks: blocks, recursive hourglass, stacked network and the preset registry.

Names are imported lazily so that ``import stagepose.models.cli`` (``stagepose --help``) does not import torch.
"""

from __future__ import annotations

from stagepose.lazy import lazy_getattr

_EXPORTS = {
    "BottleneckResidual": "stagepose.models.blocks",
    "InvertedResidual": "stagepose.models.blocks",
    "Hourglass": "stagepose.models.hourglass",
    "StackedHourglass": "stagepose.models.hourglass",
    "MODELS": "stagepose.models.registry",
    "ModelPreset": "stagepose.models.registry",
    "PaperFigures": "stagepose.models.registry",
    "build_model": "stagepose.models.registry",
    "get_preset": "stagepose.models.registry",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_getattr(__name__, _EXPORTS)
