"""How far a reduced-precision or converted model's heatmaps and decoded joints are from the reference.

Used to judge FP16 conversions (ONNX, TensorRT, torch ``.half()``) against FP32. Decoded joints are
compared in heatmap pixels. A joint whose reference heatmap has two almost equal maxima (common with
untrained weights, whose heatmaps are flat) can legitimately decode to the other one under a tiny
perturbation, so besides all joints we report the joints whose peak stands clear (`clear_peak_mask`):
no perturbation as large as that joint's heatmap difference can move its arg-max, so any decoded
difference there is a real precision problem.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from stagepose.codec import DEFAULT_SIGMA, HeatmapCodec
from stagepose.sizes import HEATMAP_STRIDE, ImageSize


@dataclass(frozen=True)
class HeatmapParity:
    """Differences between reference and test heatmaps of shape (N, K, h, w).

    Attributes:
        max_abs_diff: max |reference - test| over all heatmap values.
        reference_peak: max |reference| (scale for ``max_abs_diff``).
        joints: number of decoded joints compared (N * K).
        joint_diff_px: p50 / p95 / max distance of decoded joints in heatmap pixels, all joints.
        within_tol: fraction of all joints decoded within ``tol_px``.
        clear_joints: joints whose reference peak stands clear (see module docstring).
        clear_max_diff_px: max decoded distance over the clear joints (0 when there are none).
        tol_px: the tolerance used for ``within_tol``.
    """

    max_abs_diff: float
    reference_peak: float
    joints: int
    joint_diff_px: dict[str, float]
    within_tol: float
    clear_joints: int
    clear_max_diff_px: float
    tol_px: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def clear_peak_mask(reference: np.ndarray, max_diff: np.ndarray, window: int = 3, factor: float = 4.0) -> np.ndarray:
    """(N, K) True where the reference peak is unambiguous for a perturbation of up to ``max_diff`` (N, K).

    Unambiguous means: positive (the decoder refines only positive peaks), higher than each of its 8
    neighbours by more than ``factor * max_diff`` (no near-tie that would shift the integer arg-max by
    one pixel), and higher than everything outside the (2*window+1)^2 box around it by the same margin
    (no second peak elsewhere to jump to).
    """
    n, k, h, w = reference.shape
    flat = reference.reshape(n, k, -1)
    index = flat.argmax(axis=-1)
    peak = np.take_along_axis(flat, index[..., None], axis=-1)[..., 0]
    ys, xs = np.divmod(index, w)
    dy = np.abs(np.arange(h)[None, None, :, None] - ys[..., None, None])
    dx = np.abs(np.arange(w)[None, None, None, :] - xs[..., None, None])
    outside = (dy > window) | (dx > window)
    neighbour = (dy <= 1) & (dx <= 1) & ((dy > 0) | (dx > 0))
    runner_up = np.where(outside, reference, -np.inf).reshape(n, k, -1).max(axis=-1)
    best_neighbour = np.where(neighbour, reference, -np.inf).reshape(n, k, -1).max(axis=-1)
    margin = factor * max_diff
    return (peak > 0) & (peak - runner_up > margin) & (peak - best_neighbour > margin)


def compare_heatmaps(
    reference: np.ndarray,
    test: np.ndarray,
    codec: HeatmapCodec | None = None,
    tol_px: float = 0.5,
    *,
    sigma: float = DEFAULT_SIGMA,
) -> HeatmapParity:
    """Compare heatmaps (N, K, h, w) of a test model against a reference model on the same inputs.

    Args:
        reference, test: (N, K, h, w) heatmaps of the same inputs.
        codec: decoder for both; default: one for these heatmaps with ``sigma``.
        tol_px: heatmap pixels within which a decoded joint counts as the same.
        sigma: the model's heatmap sigma (``Backend.heatmap_sigma``, from its sidecar or weights), used
            when no ``codec`` is given: DARK decoding depends on it.
    """
    reference = np.asarray(reference, dtype=np.float32)
    test = np.asarray(test, dtype=np.float32)
    if reference.shape != test.shape or reference.ndim != 4:
        raise ValueError(f"heatmaps must both be (N, K, h, w), got {reference.shape} and {test.shape}")
    n, k, h, w = reference.shape
    codec = codec or HeatmapCodec.for_input(ImageSize(w * HEATMAP_STRIDE, h * HEATMAP_STRIDE), sigma=sigma)
    diff = np.abs(reference - test)
    ref_xy, _ = codec.decode(reference)
    test_xy, _ = codec.decode(test)
    dist = np.linalg.norm(ref_xy - test_xy, axis=-1)
    clear = clear_peak_mask(reference, diff.reshape(n, k, -1).max(axis=-1))
    p50, p95 = np.percentile(dist, [50, 95])
    return HeatmapParity(
        max_abs_diff=float(diff.max()),
        reference_peak=float(np.abs(reference).max()),
        joints=int(dist.size),
        joint_diff_px={"p50": float(p50), "p95": float(p95), "max": float(dist.max())},
        within_tol=float((dist <= tol_px).mean()),
        clear_joints=int(clear.sum()),
        clear_max_diff_px=float(dist[clear].max()) if clear.any() else 0.0,
        tol_px=tol_px,
    )
