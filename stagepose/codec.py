"""Heatmap codec: Gaussian targets for training and sub-pixel decoding for the runtime.

One class serves both sides so their conventions cannot drift. Sizes are `ImageSize` (width, height). A keypoint at
input-crop pixel (x, y) sits at heatmap coordinate (x * W / w, y * H / h): heatmap pixel (i, j) is the
point (i, j), and a Gaussian target is centred at the exact sub-pixel position (no rounding bias).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import cv2
import numpy as np

from stagepose.sizes import ImageSize
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

    input_size: ImageSize = ImageSize(256, 256)
    heatmap_size: ImageSize = ImageSize(64, 64)
    sigma: float = DEFAULT_SIGMA
    refine: Refine = "dark"

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_size", ImageSize.of(self.input_size))
        object.__setattr__(self, "heatmap_size", ImageSize.of(self.heatmap_size))
        if self.sigma <= 0:
            raise ValueError(f"sigma must be > 0, got {self.sigma}")
        if min(self.input_size) <= 0 or min(self.heatmap_size) <= 0:
            raise ValueError(f"sizes must be positive: input {self.input_size}, heatmap {self.heatmap_size}")

    @classmethod
    def for_input(cls, input_size: ImageSize, sigma: float = DEFAULT_SIGMA, refine: Refine = "dark") -> HeatmapCodec:
        """The codec of a stagepose model with this input size (heatmaps at ``sizes.HEATMAP_STRIDE``)."""
        size = ImageSize.of(input_size)
        return cls(size, size.heatmap(), sigma=sigma, refine=refine)

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
            coords += self._dark_offsets(heatmaps, coords, confidence)
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
        # (N, K, 2) @ (N, 2, 2)^T + (N, 1, 2): every crop's joints in one call
        return inputs @ inverse[:, :, :2].transpose(0, 2, 1) + inverse[:, None, :, 2]

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

    def _dark_offsets(self, heatmaps: np.ndarray, coords: np.ndarray, peak: np.ndarray) -> np.ndarray:
        """DARK: blur (to make the peak Gaussian-like), then one Newton step on the log heatmap.

        Only the 3x3 blurred values around each peak enter the step, so they are computed directly
        from a gathered patch, for all N x K peaks at once: the same values as ``cv2.GaussianBlur``
        of the whole heatmap with ``BORDER_REPLICATE`` (the edge clamp below is that border).
        """
        n, k, h, w = heatmaps.shape
        band = _blur_band(int(2 * round(self.sigma) + 1) | 1)
        x = coords[..., 0].astype(np.intp)
        y = coords[..., 1].astype(np.intp)
        reach = np.arange(band.shape[1]) - band.shape[1] // 2  # the 3x3 around the peak plus the kernel's reach
        rows = np.clip(y[..., None] + reach, 0, h - 1)  # (N, K, 3 + 2r)
        cols = np.clip(x[..., None] + reach, 0, w - 1)
        start = (np.arange(n * k) * (h * w)).reshape(n, k, 1, 1)
        patch = heatmaps.reshape(-1)[start + rows[..., :, None] * w + cols[..., None, :]].astype(np.float64)
        blurred = band @ patch @ band.T  # separable blur, valid part only: (3 + 2r)^2 -> 3x3
        log = np.log(np.maximum(blurred, 1e-10))
        c = log[..., 1, 1]
        dx = 0.5 * (log[..., 1, 2] - log[..., 1, 0])
        dy = 0.5 * (log[..., 2, 1] - log[..., 0, 1])
        dxx = log[..., 1, 2] - 2 * c + log[..., 1, 0]
        dyy = log[..., 2, 1] - 2 * c + log[..., 0, 1]
        dxy = 0.25 * (log[..., 2, 2] - log[..., 2, 0] - log[..., 0, 2] + log[..., 0, 0])
        det = dxx * dyy - dxy**2
        # keep the integer peak at the border, on an empty heatmap and where it is not a proper maximum
        usable = (x > 0) & (x < w - 1) & (y > 0) & (y < h - 1) & (peak > 0) & (dxx < 0) & (dyy < 0) & (det > 1e-12)
        safe_det = np.where(usable, det, 1.0)
        step_x = -(dyy * dx - dxy * dy) / safe_det
        step_y = -(dxx * dy - dxy * dx) / safe_det
        offsets = np.clip(np.stack([step_x, step_y], axis=-1), -0.5, 0.5)
        return np.where(usable[..., None], offsets, 0.0)


@lru_cache(maxsize=8)
def _blur_band(kernel: int) -> np.ndarray:
    """(3, 3 + kernel - 1) matrix: ``band @ row`` is ``cv2.GaussianBlur``'s 1-D pass at the 3 centre samples.

    Uses the very kernel GaussianBlur builds for this size (``getGaussianKernel(kernel, 0)``).
    """
    weights = cv2.getGaussianKernel(kernel, 0, ktype=cv2.CV_64F)[:, 0]
    band = np.zeros((3, kernel + 2))
    for i in range(3):
        band[i, i : i + kernel] = weights
    band.setflags(write=False)
    return band
