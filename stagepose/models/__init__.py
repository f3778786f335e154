"""The paper's networks: blocks, recursive hourglass, stacked network and the preset registry."""

from stagepose.models.blocks import BottleneckResidual, InvertedResidual
from stagepose.models.hourglass import Hourglass, StackedHourglass
from stagepose.models.registry import MODELS, ModelPreset, PaperFigures, build_model, get_preset

__all__ = [
    "BottleneckResidual",
    "InvertedResidual",
    "Hourglass",
    "StackedHourglass",
    "MODELS",
    "ModelPreset",
    "PaperFigures",
    "build_model",
    "get_preset",
]
