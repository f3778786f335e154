"""Residual building blocks of the hourglass networks (Huang et al. 2024, sec. 1.3, fig. 3, table 1).

Both blocks map ``(N, in_channels, H, W) -> (N, out_channels, H, W)`` and take their norm and activation
layers as arguments so a variant can change them without a new class.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

NormFactory = Callable[[int], nn.Module]
ActFactory = Callable[[], nn.Module]


def _projection(in_channels: int, out_channels: int, norm: NormFactory) -> nn.Module:
    """1x1 projection on the skip path when the channel count changes, identity otherwise."""
    if in_channels == out_channels:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False), norm(out_channels))


class BottleneckResidual(nn.Module):
    """The standard hourglass residual (eq. 5): 1x1 reduce, 3x3 conv, 1x1 restore, plus the skip.

    With 256 channels this is 256 -> 128 -> 128 -> 256, the teacher's block (Newell et al. 2016).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        reduction: int = 2,
        norm: NormFactory = nn.BatchNorm2d,
        act: ActFactory = lambda: nn.ReLU(inplace=True),
    ) -> None:
        super().__init__()
        if reduction < 1 or out_channels % reduction:
            raise ValueError(f"reduction {reduction} must divide out_channels {out_channels}")
        mid = out_channels // reduction
        # reduce: 1x1 pointwise conv to the narrow width
        self.reduce = nn.Sequential(nn.Conv2d(in_channels, mid, 1, bias=False), norm(mid), act())
        # spatial: standard 3x3 conv at the narrow width
        self.spatial = nn.Sequential(nn.Conv2d(mid, mid, 3, padding=1, bias=False), norm(mid), act())
        # restore: 1x1 back to the output width, no activation before the sum
        self.restore = nn.Sequential(nn.Conv2d(mid, out_channels, 1, bias=False), norm(out_channels))
        self.skip = _projection(in_channels, out_channels, norm)
        self.out_act = act()

    def forward(self, x: Tensor) -> Tensor:
        return self.out_act(self.restore(self.spatial(self.reduce(x))) + self.skip(x))


class InvertedResidual(nn.Module):
    """MobileNetV2's inverted residual (Sandler et al. 2018), the student's block (fig. 3b, table 1).

    1x1 expand by ``expand_ratio`` (t = 2 in the paper) + BN + ReLU6, 3x3 depthwise + BN + ReLU6, 1x1
    linear projection + BN (no activation: ReLU on the narrow tensor loses information), identity skip.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        expand_ratio: int = 2,
        norm: NormFactory = nn.BatchNorm2d,
        act: ActFactory = lambda: nn.ReLU6(inplace=True),
    ) -> None:
        super().__init__()
        if expand_ratio < 1:
            raise ValueError(f"expand_ratio must be >= 1, got {expand_ratio}")
        hidden = in_channels * expand_ratio
        # expand: 1x1 pointwise conv to the wide width
        self.expand = nn.Sequential(nn.Conv2d(in_channels, hidden, 1, bias=False), norm(hidden), act())
        # depthwise: one 3x3 filter per channel (groups == channels)
        self.depthwise = nn.Sequential(
            nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden, bias=False), norm(hidden), act()
        )
        # project: linear 1x1 back to the narrow width
        self.project = nn.Sequential(nn.Conv2d(hidden, out_channels, 1, bias=False), norm(out_channels))
        self.skip = _projection(in_channels, out_channels, norm)

    def forward(self, x: Tensor) -> Tensor:
        return self.project(self.depthwise(self.expand(x))) + self.skip(x)
