"""Heatmap codec: encode -> decode round trips and the affine back to the image."""

from __future__ import annotations

import numpy as np
import pytest

from stagepose.codec import HeatmapCodec
from stagepose.sizes import ImageSize
from stagepose.transforms import crop_affine, warp_crop

TOL_HEATMAP_PX = 0.25
TOL_IMAGE_PX = 1.0


@pytest.mark.parametrize("refine", ["dark", "quarter"])
def test_round_trip_within_quarter_heatmap_pixel(refine: str) -> None:
    codec = HeatmapCodec(refine=refine)
    rng = np.random.default_rng(1)
    keypoints = rng.uniform(16, 240, (16, 2))
    heatmaps, weights = codec.encode(keypoints, np.ones(16))
    assert heatmaps.shape == (16, 64, 64) and heatmaps.dtype == np.float32
    coords, confidence = codec.decode(heatmaps)
    error = np.abs(coords - keypoints / 4.0)
    assert error.max() <= TOL_HEATMAP_PX
    assert np.all(confidence > 0.9)


def test_unlabelled_and_far_outside_joints_get_zero_weight() -> None:
    codec = HeatmapCodec()
    keypoints = np.array([[100.0, 100.0], [np.nan, np.nan], [-100.0, 50.0], [50.0, 50.0]])
    heatmaps, weights = codec.encode(keypoints, np.array([1, 1, 1, 0]))
    assert weights.tolist() == [1, 0, 0, 0]
    assert heatmaps[1:].max() == 0 and heatmaps[0].max() == pytest.approx(1.0)


def test_decode_batch_and_confidence_is_peak() -> None:
    codec = HeatmapCodec()
    heatmaps = np.zeros((2, 16, 64, 64), dtype=np.float32)
    heatmaps[1, 3, 10, 20] = 0.7
    coords, conf = codec.decode(heatmaps)
    assert coords.shape == (2, 16, 2) and conf.shape == (2, 16)
    assert conf[1, 3] == pytest.approx(0.7) and tuple(coords[1, 3]) == (20.0, 10.0)


def test_affine_back_to_image_within_one_pixel() -> None:
    """A crop with scale and rotation: joints decoded from the crop land on the image joints."""
    codec = HeatmapCodec()
    rng = np.random.default_rng(2)
    image_joints = rng.uniform(300, 700, (16, 2))
    affine = crop_affine(center=(500, 480), box_size=(520, 520), output_size=(256, 256), rotation_deg=20)
    crop_joints = image_joints @ affine[:, :2].T + affine[:, 2]
    heatmaps, _ = codec.encode(crop_joints, np.ones(16))
    coords, _ = codec.decode(heatmaps)
    back = codec.heatmap_to_image(coords, affine)
    assert np.abs(back - image_joints).max() <= TOL_IMAGE_PX
    batch = codec.heatmap_to_image(coords[None], affine[None])
    assert np.allclose(batch[0], back)


def test_crop_affine_moves_pixels_where_it_says() -> None:
    image = np.zeros((400, 600, 3), dtype=np.uint8)
    image[195:206, 295:306] = 255  # a bright square at (300, 200)
    affine = crop_affine(center=(300, 200), box_size=(100, 100), output_size=(64, 64))
    crop = warp_crop(image, affine, (64, 64))
    ys, xs = np.nonzero(crop[..., 0] > 128)
    assert abs(xs.mean() - 31.5) < 1 and abs(ys.mean() - 31.5) < 1


def test_bad_codec_args() -> None:
    with pytest.raises(ValueError):
        HeatmapCodec(sigma=0)
    with pytest.raises(ValueError):
        HeatmapCodec().decode(np.zeros((64, 64)))


def _per_joint_dark_offsets(heatmaps: np.ndarray, coords: np.ndarray, sigma: float) -> np.ndarray:
    """The decoder's former DARK step, one joint at a time: the reference for the batched one."""
    import cv2

    n, k, h, w = heatmaps.shape
    kernel = int(2 * round(sigma) + 1) | 1
    offsets = np.zeros_like(coords)
    for i in range(n):
        for j in range(k):
            x, y = int(coords[i, j, 0]), int(coords[i, j, 1])
            if not (0 < x < w - 1 and 0 < y < h - 1) or heatmaps[i, j, y, x] <= 0:
                continue
            r = kernel // 2 + 2
            y0, y1, x0, x1 = max(y - r, 0), min(y + r + 1, h), max(x - r, 0), min(x + r + 1, w)
            window = cv2.GaussianBlur(heatmaps[i, j, y0:y1, x0:x1].astype(np.float64), (kernel, kernel), 0,
                                      borderType=cv2.BORDER_REPLICATE)  # fmt: skip
            patch = window[y - 1 - y0 : y + 2 - y0, x - 1 - x0 : x + 2 - x0]
            log = np.log(np.maximum(patch, 1e-10))
            c = log[1, 1]
            dx, dy = 0.5 * (log[1, 2] - log[1, 0]), 0.5 * (log[2, 1] - log[0, 1])
            dxx, dyy = log[1, 2] - 2 * c + log[1, 0], log[2, 1] - 2 * c + log[0, 1]
            dxy = 0.25 * (log[2, 2] - log[2, 0] - log[0, 2] + log[0, 0])
            det = dxx * dyy - dxy**2
            if dxx >= 0 or dyy >= 0 or det <= 1e-12:
                continue
            offsets[i, j] = np.clip([-(dyy * dx - dxy * dy) / det, -(dxx * dy - dxy * dx) / det], -0.5, 0.5)
    return offsets


@pytest.mark.parametrize("sigma", [1.0, 2.0, 3.0])
def test_batched_dark_decode_equals_per_joint_reference(sigma: float) -> None:
    """Random heatmaps (peaks anywhere, on the border too, some empty): same coordinates within 1e-4 px."""
    codec = HeatmapCodec((128, 96), (32, 24), sigma=sigma)
    rng = np.random.default_rng(7)
    keypoints = rng.uniform(-8, 136, (5, 16, 2))
    heatmaps = np.stack([codec.encode(kp, np.ones(16))[0] for kp in keypoints])
    heatmaps += rng.uniform(0, 0.3, heatmaps.shape).astype(np.float32)
    heatmaps[0, :4] = 0.0  # empty heatmaps keep the integer arg-max
    heatmaps[1, 5] = rng.uniform(0, 1, (24, 32))  # noise only
    coords, _ = HeatmapCodec((128, 96), (32, 24), sigma=sigma, refine="none").decode(heatmaps)
    expected = coords + _per_joint_dark_offsets(heatmaps, coords, sigma)
    got, _ = codec.decode(heatmaps)
    assert np.abs(got - expected).max() <= 1e-4
    assert np.any(got != coords)  # the step did move most peaks


def test_codec_for_input_uses_the_model_stride() -> None:
    codec = HeatmapCodec.for_input(ImageSize(192, 256), sigma=1.5)
    assert codec.input_size == (192, 256) and codec.heatmap_size == ImageSize(48, 64) and codec.sigma == 1.5
