"""Image sizes: one named (width, height) type, and the model's fixed heatmap stride.

Everything in stagepose passes sizes as `ImageSize` (width first, like OpenCV's ``dsize`` and the
checkpoint's "WxH" string). Tensors and the sidecar's JSON list are (H, W); `ImageSize.hw` and
`ImageSize.from_hw` are the only places that order is produced or read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

# Input pixels per heatmap pixel of every stagepose model (the hourglass stem downsamples by 4).
HEATMAP_STRIDE = 4


class ImageSize(NamedTuple):
    """A size in pixels, (width, height)."""

    width: int
    height: int

    @classmethod
    def of(cls, size: Sequence[int]) -> ImageSize:
        """An `ImageSize` from any (width, height) pair (tuple, list, ImageSize), as ints."""
        width, height = size
        return cls(int(width), int(height))

    @classmethod
    def square(cls, side: int) -> ImageSize:
        return cls(int(side), int(side))

    @classmethod
    def from_hw(cls, hw: Sequence[int]) -> ImageSize:
        """An `ImageSize` from an (H, W) pair, as tensor shapes and the sidecar JSON store it."""
        height, width = hw
        return cls(int(width), int(height))

    @classmethod
    def parse(cls, text: str) -> ImageSize:
        """Parse "WxH" (as checkpoints record it) or a bare side "N".

        Raises:
            ValueError: not that form, or a side <= 0.
        """
        parts = str(text).strip().lower().split("x")
        if len(parts) not in (1, 2) or not all(p.strip().isdigit() for p in parts):
            raise ValueError(f"size {text!r} is not WIDTHxHEIGHT (e.g. 256x256)")
        width, height = int(parts[0]), int(parts[-1])
        if width <= 0 or height <= 0:
            raise ValueError(f"size {text!r} must be positive")
        return cls(width, height)

    @property
    def hw(self) -> tuple[int, int]:
        """(H, W), for tensor shapes and the sidecar JSON."""
        return self.height, self.width

    @property
    def aspect(self) -> float:
        """width / height."""
        return self.width / self.height

    def text(self) -> str:
        """ "WxH", the form checkpoints record and messages show."""
        return f"{self.width}x{self.height}"

    def heatmap(self) -> ImageSize:
        """The heatmap size a model with this input size outputs (input / `HEATMAP_STRIDE`)."""
        return ImageSize(self.width // HEATMAP_STRIDE, self.height // HEATMAP_STRIDE)
