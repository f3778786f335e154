"""Heatmap codec: Gaussian targets for training and sub-pixel decoding for the runtime.

One class serves both sides so their conventions cannot drift. Sizes are (width, height). A keypoint at
input-crop pixel (x, y) sits at heatmap coordinate (x * W / w, y * H / h): heatmap pixel (i, j) is the
point (i, j), and a Gaussian target is centred at the exact sub-pixel position (no rounding bias).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from stagepose.transforms import apply_affine, invert_affine

Refine = Literal["quarter", "dark", "none"]

# Target sigma of every model trained before the sigma was recorded with the weights (and the default):
# a checkpoint or sidecar that records none was trained with this.
DEFAULT_SIGMA = 2.0


@dataclass(frozen=True)
class HeatmapCodec:
    """Encode keypoints to (K, H, W) Gaussian heatmaps and decode heatmaps back to keypoints.

    Attributes:
        input_size: model input (w, h) in pixels.
        heatmap_size: heatmap (W, H) in pixels.
        sigma: Gaussian standard deviation in heatmap pixels (2 at 64x64, as in the hourglass papers).
            DARK decoding assumes the heatmap has this width, so a decoder must use the sigma the model
            was trained with (recorded in its checkpoint and sidecar as ``heatmap_sigma``).
        refine: sub-pixel step of the decoder: "dark" (Taylor step on the log heatmap, Zhang et al.
            2020), "quarter" (0.25 px towards the higher neighbour) or "none" (integer arg-max).
    """

    input_size: tuple[int, int] = (256, 256)
    heatmap_size: tuple[int, int] = (64, 64)
    sigma: float = DEFAULT_SIGMA
    refine: Refine = "dark"

    def __post_init__(self) -> None:
        if self.sigma <= 0:
            raise ValueError(f"sigma must be > 0, got {self.sigma}")
        if min(self.input_size) <= 0 or min(self.heatmap_size) <= 0:
            raise ValueError(f"sizes must be positive: input {self.input_size}, heatmap {self.heatmap_size}")

    @property
    def stride(self) -> np.ndarray:
        """Input pixels per heatmap pixel, (sx, sy)."""
        return np.array(self.input_size, dtype=np.float64) / np.array(self.heatmap_size, dtype=np.float64)

    def encode(self, keypoints: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Gaussian targets for one sample.

        Args:
            keypoints: (K, 2) input-crop pixels (x, y); NaN for unknown.
            weights: (K,) label weights, 0 for unlabelled joints.

        Returns:
            heatmaps (K, H, W) float32 with peak 1 at each labelled joint, and target weights (K,)
            float32: 0 where unlabelled or where the Gaussian falls wholly outside the heatmap.
        """
        keypoints = np.asarray(keypoints, dtype=np.float64)
        weights = np.asarray(weights, dtype=np.float32).copy()
        width, height = self.heatmap_size
        xs = np.arange(width, dtype=np.float64)
        ys = np.arange(height, dtype=np.float64)
        centers = keypoints / self.stride
        heatmaps = np.zeros((len(keypoints), height, width), dtype=np.float32)
        reach = 3.0 * self.sigma
        for k, (u, v) in enumerate(centers):
            if weights[k] <= 0 or not np.isfinite(u) or not np.isfinite(v):
                weights[k] = 0.0
                continue
            if u < -reach or v < -reach or u > width - 1 + reach or v > height - 1 + reach:
                weights[k] = 0.0
                continue
            gx = np.exp(-((xs - u) ** 2) / (2 * self.sigma**2))
            gy = np.exp(-((ys - v) ** 2) / (2 * self.sigma**2))
            heatmaps[k] = np.outer(gy, gx).astype(np.float32)
        return heatmaps, weights

    def decode(self, heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints from heatmaps, in heatmap pixels.

        Args:
            heatmaps: (N, K, H, W) or (K, H, W) float heatmaps (not modified).

        Returns:
            coords (N, K, 2) heatmap (x, y) and confidence (N, K) = the peak value (leading N
            dropped when the input had none).
        """
        heatmaps = np.asarray(heatmaps, dtype=np.float32)
        single = heatmaps.ndim == 3
        if single:
            heatmaps = heatmaps[None]
        if heatmaps.ndim != 4:
            raise ValueError(f"heatmaps must be (N, K, H, W), got shape {heatmaps.shape}")
        n, k, h, w = heatmaps.shape
        flat = heatmaps.reshape(n, k, -1)
        index = flat.argmax(axis=-1)
        confidence = np.take_along_axis(flat, index[..., None], axis=-1)[..., 0]
        coords = np.stack([index % w, index // w], axis=-1).astype(np.float64)
        if self.refine == "quarter":
            coords += self._quarter_offsets(heatmaps, coords)
        elif self.refine == "dark":
            coords += self._dark_offsets(heatmaps, coords)
        if single:
            return coords[0], confidence[0]
        return coords, confidence

    def heatmap_to_input(self, coords: np.ndarray) -> np.ndarray:
        """Heatmap (x, y) -> model-input pixel (x, y), for any leading shape."""
        return np.asarray(coords, dtype=np.float64) * self.stride

    def heatmap_to_image(self, coords: np.ndarray, image_to_input: np.ndarray) -> np.ndarray:
        """Heatmap (..., K, 2) -> original image pixels, given the crop's image->input affine.

        Args:
            coords: (K, 2) or (N, K, 2) heatmap coordinates.
            image_to_input: (2, 3) or (N, 2, 3) affine used to cut the crop from the image.
        """
        inputs = self.heatmap_to_input(coords)
        inverse = invert_affine(image_to_input)
        if inverse.ndim == 2:
            return apply_affine(inputs, inverse)
        return np.stack([apply_affine(p, a) for p, a in zip(inputs, inverse)])

    @staticmethod
    def _quarter_offsets(heatmaps: np.ndarray, coords: np.ndarray) -> np.ndarray:
        n, k, h, w = heatmaps.shape
        x = coords[..., 0].astype(int)
        y = coords[..., 1].astype(int)
        ni, ki = np.meshgrid(np.arange(n), np.arange(k), indexing="ij")
        offsets = np.zeros_like(coords)
        inner_x = (x > 0) & (x < w - 1)
        inner_y = (y > 0) & (y < h - 1)
        dx = heatmaps[ni, ki, y, np.clip(x + 1, 0, w - 1)] - heatmaps[ni, ki, y, np.clip(x - 1, 0, w - 1)]
        dy = heatmaps[ni, ki, np.clip(y + 1, 0, h - 1), x] - heatmaps[ni, ki, np.clip(y - 1, 0, h - 1), x]
        offsets[..., 0] = np.where(inner_x, 0.25 * np.sign(dx), 0.0)
        offsets[..., 1] = np.where(inner_y, 0.25 * np.sign(dy), 0.0)
        return offsets

    def _dark_offsets(self, heatmaps: np.ndarray, coords: np.ndarray) -> np.ndarray:
        """DARK: blur (to make the peak Gaussian-like), then one Newton step on the log heatmap."""
        n, k, h, w = heatmaps.shape
        kernel = int(2 * round(self.sigma) + 1) | 1
        offsets = np.zeros_like(coords)
        for i in range(n):
            for j in range(k):
                x, y = int(coords[i, j, 0]), int(coords[i, j, 1])
                if not (0 < x < w - 1 and 0 < y < h - 1) or heatmaps[i, j, y, x] <= 0:
                    continue
                # blur a window around the peak (wide enough that the kernel sees no window edge)
                r = kernel // 2 + 2
                y0, y1, x0, x1 = max(y - r, 0), min(y + r + 1, h), max(x - r, 0), min(x + r + 1, w)
                window = cv2.GaussianBlur(
                    heatmaps[i, j, y0:y1, x0:x1].astype(np.float64), (kernel, kernel), 0,
                    borderType=cv2.BORDER_REPLICATE,
                )  # fmt: skip
                patch = np.zeros((5, 5))
                patch[:] = 1e-10
                py0, px0 = y - 2 - y0, x - 2 - x0
                for dy_ in range(5):
                    for dx_ in range(5):
                        yy, xx = py0 + dy_, px0 + dx_
                        if 0 <= yy < window.shape[0] and 0 <= xx < window.shape[1]:
                            patch[dy_, dx_] = window[yy, xx]
                log = np.log(np.maximum(patch, 1e-10))
                c = log[2, 2]
                dx = 0.5 * (log[2, 3] - log[2, 1])
                dy = 0.5 * (log[3, 2] - log[1, 2])
                dxx = log[2, 3] - 2 * c + log[2, 1]
                dyy = log[3, 2] - 2 * c + log[1, 2]
                dxy = 0.25 * (log[3, 3] - log[3, 1] - log[1, 3] + log[1, 1])
                det = dxx * dyy - dxy**2
                if dxx >= 0 or dyy >= 0 or det <= 1e-12:
                    continue  # not a proper maximum: keep the integer peak
                step_x = -(dyy * dx - dxy * dy) / det
                step_y = -(dxx * dy - dxy * dx) / det
                offsets[i, j] = np.clip([step_x, step_y], -0.5, 0.5)
        return offsets
