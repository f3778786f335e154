"""Recursive hourglass and the stacked network with intermediate supervision.

The hourglass (Newell et al. 2016; the paper's LHM in fig. 4 when built with inverted residuals) keeps a
branch at each scale and a max-pooled branch below it, then fuses the scales by nearest-neighbour
upsampling and addition. The stacked network returns the heatmaps of every stack so the loss can
supervise each one; it owns no loss, normalisation or decoding, so export and
reuse need no model changes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

BlockFactory = Callable[[int, int], nn.Module]


class Hourglass(nn.Module):
    """Order-``depth`` hourglass: ``(N, C, H, W) -> (N, C, H, W)``; H and W divisible by 2**depth."""

    def __init__(self, depth: int, channels: int, block: BlockFactory) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"hourglass depth must be >= 1, got {depth}")
        self.depth = depth
        # kept branch at this scale
        self.up = block(channels, channels)
        # down branch: max-pool, block, then the next order (or a block at the bottom), block
        self.pool = nn.MaxPool2d(2, 2)
        self.low_in = block(channels, channels)
        self.inner: nn.Module = (
            Hourglass(depth - 1, channels, block) if depth > 1 else block(channels, channels)
        )
        self.low_out = block(channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        low = self.low_out(self.inner(self.low_in(self.pool(x))))
        # multi-scale fusion: nearest upsampling of the coarser scale, added to the kept branch
        return self.up(x) + nn.functional.interpolate(low, scale_factor=2.0, mode="nearest")


class StackedHourglass(nn.Module):
    """Stem + ``num_stacks`` hourglasses with a heatmap head on each (intermediate supervision).

    Input ``(N, 3, H, W)`` normalised RGB, H and W divisible by 4 * 2**depth; output
    ``(N, num_stacks, num_joints, H/4, W/4)`` heatmaps, last stack last.
    """

    def __init__(
        self,
        *,
        num_stacks: int,
        channels: int,
        block: BlockFactory,
        num_joints: int = 16,
        depth: int = 4,
        stem_channels: int = 64,
    ) -> None:
        super().__init__()
        if num_stacks < 1:
            raise ValueError(f"num_stacks must be >= 1, got {num_stacks}")
        self.num_stacks = num_stacks
        self.num_joints = num_joints
        mid = max(stem_channels * 2, channels // 2)
        # stem: 7x7/2 conv, block, max-pool, blocks: H x W -> H/4 x W/4 features at `channels`
        self.stem = nn.Sequential(
            nn.Conv2d(3, stem_channels, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(stem_channels),
            nn.ReLU(inplace=True),
            block(stem_channels, mid),
            nn.MaxPool2d(2, 2),
            block(mid, mid),
            block(mid, channels),
        )
        self.hourglasses = nn.ModuleList(Hourglass(depth, channels, block) for _ in range(num_stacks))
        self.features = nn.ModuleList(
            nn.Sequential(
                block(channels, channels),
                nn.Conv2d(channels, channels, 1, bias=False),
                nn.BatchNorm2d(channels),
                nn.ReLU(inplace=True),
            )
            for _ in range(num_stacks)
        )
        self.heads = nn.ModuleList(nn.Conv2d(channels, num_joints, 1) for _ in range(num_stacks))
        # 1x1 re-injection of features and heatmaps into the next stack's input
        self.merge_features = nn.ModuleList(
            nn.Conv2d(channels, channels, 1) for _ in range(num_stacks - 1)
        )
        self.merge_heatmaps = nn.ModuleList(
            nn.Conv2d(num_joints, channels, 1) for _ in range(num_stacks - 1)
        )

    def forward_features(self, x: Tensor) -> list[Tensor]:
        """Per-stack features ``(N, C, H/4, W/4)`` before each heatmap head, first stack first."""
        return self._run(x)[0]

    def forward(self, x: Tensor) -> Tensor:
        return torch.stack(self._run(x)[1], dim=1)

    def _run(self, x: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        x = self.stem(x)
        features: list[Tensor] = []
        heatmaps: list[Tensor] = []
        for i in range(self.num_stacks):
            feat = self.features[i](self.hourglasses[i](x))
            heat = self.heads[i](feat)
            features.append(feat)
            heatmaps.append(heat)
            if i < self.num_stacks - 1:
                x = x + self.merge_features[i](feat) + self.merge_heatmaps[i](heat)
        return features, heatmaps
