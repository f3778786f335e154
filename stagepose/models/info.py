"""Parameter and compute counts, measured on the built network.

Compute is counted by ``torch.utils.flop_counter.FlopCounterMode`` on a real forward pass. It counts
convolutions and matrix products (2 FLOPs per multiply-accumulate) and ignores batch norm, activations,
pooling, upsampling and additions (together a few percent). We report GFLOPs = 2 x GMACs; the paper's
Table 2 column "计算成本/GB" does not say which it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from stagepose.models.registry import ModelPreset, build_model


@dataclass(frozen=True)
class ModelStats:
    """Measured size of one preset at one input size."""

    preset: str
    input_size: tuple[int, int]
    params_m: float
    gflops: float

    @property
    def gmacs(self) -> float:
        return self.gflops / 2.0

    def to_json(self, preset: ModelPreset | None = None) -> dict[str, object]:
        out: dict[str, object] = {
            "params_m": round(self.params_m, 3),
            "gflops": round(self.gflops, 3),
            "gmacs": round(self.gmacs, 3),
            "input_size": list(self.input_size),
        }
        if preset is not None and preset.paper is not None:
            out["paper"] = {
                "label": preset.paper.label,
                "params_m": preset.paper.params_m,
                "compute_g": preset.paper.compute_g,
            }
        return out


def measure(preset: ModelPreset, input_size: tuple[int, int] = (256, 256)) -> ModelStats:
    """Count parameters and forward FLOPs of ``preset`` at batch 1, input (w, h)."""
    model = build_model(preset).eval()
    params = sum(p.numel() for p in model.parameters())
    x = torch.zeros(1, 3, input_size[1], input_size[0])
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(x)
    return ModelStats(preset.name, input_size, params / 1e6, counter.get_total_flops() / 1e9)
