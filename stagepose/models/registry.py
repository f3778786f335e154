"""Model presets: the paper's teacher and students, built by name.

A preset is plain data (``ModelPreset``); ``build_model`` turns it into a ``StackedHourglass``. The
``MODELS`` dict is the whole registry: grep it to find every model stagepose knows.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Literal

from torch import nn

from stagepose.errors import ModelError
from stagepose.models.blocks import BottleneckResidual, InvertedResidual
from stagepose.models.hourglass import BlockFactory, StackedHourglass
from stagepose.skeleton import NUM_JOINTS

BlockName = Literal["bottleneck", "inverted_residual"]


@dataclass(frozen=True)
class PaperFigures:
    """What the paper's Table 2 reports for the model (params in M, "计算成本/GB" compute in G)."""

    label: str
    params_m: float
    compute_g: float


@dataclass(frozen=True)
class ModelPreset:
    """Everything needed to build one network; ``channels`` is the hourglass feature width."""

    name: str
    num_stacks: int
    channels: int
    block: BlockName
    expand_ratio: int = 2
    depth: int = 4
    num_joints: int = NUM_JOINTS
    description: str = ""
    paper: PaperFigures | None = None

    def __post_init__(self) -> None:
        if self.num_stacks < 1 or self.channels < 1 or self.depth < 1 or self.expand_ratio < 1:
            raise ValueError(f"preset {self.name!r}: stacks, channels, depth and expand_ratio must be >= 1")

    @property
    def min_input_multiple(self) -> int:
        """Input height and width must be multiples of this (stride 4 stem, then 2**depth)."""
        return 4 * 2**self.depth


MODELS: dict[str, ModelPreset] = {
    "teacher-hg8": ModelPreset(
        name="teacher-hg8",
        num_stacks=8,
        channels=256,
        block="bottleneck",
        description="teacher: 8-stack standard hourglass, bottleneck residuals",
        paper=PaperFigures("Teacher_8", 26.0, 12.0),
    ),
    "lshm-4": ModelPreset(
        name="lshm-4",
        num_stacks=4,
        channels=128,
        block="inverted_residual",
        description="student: 4 lightweight hourglass modules (inverted residuals, t=2)",
        paper=PaperFigures("LSHM_4", 12.0, 3.6),
    ),
    "lshm-2": ModelPreset(
        name="lshm-2",
        num_stacks=2,
        channels=128,
        block="inverted_residual",
        description="student: 2 lightweight hourglass modules (inverted residuals, t=2)",
        paper=PaperFigures("LSHM_2", 2.3, 2.9),
    ),
    # A CPU-sized teacher for the LSPET recipes in training/ (not in the paper): the teacher's block
    # and width with 2 stacks, about a quarter of teacher-hg8's compute.
    "teacher-hg2": ModelPreset(
        name="teacher-hg2",
        num_stacks=2,
        channels=256,
        block="bottleneck",
        description="small teacher: 2-stack standard hourglass, bottleneck residuals (CPU recipes)",
    ),
}


def get_preset(name: str, **overrides: object) -> ModelPreset:
    """Look up a preset by name, optionally replacing fields (e.g. ``channels=64``).

    Raises:
        ModelError: unknown name (the message lists the known ones) or unknown override field.
    """
    try:
        preset = MODELS[name]
    except KeyError:
        raise ModelError(f"unknown model preset {name!r}; known presets: {', '.join(MODELS)}") from None
    if overrides:
        known = {f.name for f in dataclasses.fields(ModelPreset)} - {"name", "paper"}
        bad = sorted(set(overrides) - known)
        if bad:
            raise ModelError(f"unknown preset field(s) {bad}; allowed: {', '.join(sorted(known))}")
        preset = dataclasses.replace(preset, **overrides)  # type: ignore[arg-type]
    return preset


def block_factory(preset: ModelPreset) -> BlockFactory:
    """The residual block the preset names, as ``(in_channels, out_channels) -> nn.Module``."""
    if preset.block == "bottleneck":
        return BottleneckResidual
    if preset.block == "inverted_residual":
        return functools.partial(InvertedResidual, expand_ratio=preset.expand_ratio)
    raise ModelError(f"preset {preset.name!r}: unknown block {preset.block!r}")


def build_model(name: str | ModelPreset, **overrides: object) -> nn.Module:
    """Build a freshly initialised ``StackedHourglass`` from a preset name (or preset object)."""
    preset = name if isinstance(name, ModelPreset) else get_preset(name, **overrides)
    return StackedHourglass(
        num_stacks=preset.num_stacks,
        channels=preset.channels,
        block=block_factory(preset),
        num_joints=preset.num_joints,
        depth=preset.depth,
    )
