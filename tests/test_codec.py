"""Heatmap codec: encode -> decode round trips and the affine back to the image."""

from __future__ import annotations

import numpy as np
import pytest

from stagepose.codec import HeatmapCodec
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
