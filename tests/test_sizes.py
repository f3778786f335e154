"""One size convention: ImageSize (width, height), the sidecar's [H, W] JSON, and the model's input format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from stagepose.runtime.sidecar import Sidecar
from stagepose.sizes import HEATMAP_STRIDE, ImageSize
from stagepose.transforms import InputFormat, crop_affine, to_model_input, warp_crop

REPO = Path(__file__).resolve().parents[1]


def test_image_size_orders_and_parses() -> None:
    size = ImageSize.from_hw((96, 128))
    assert size == ImageSize(width=128, height=96) and size.hw == (96, 128)
    assert ImageSize.parse("128x96") == size and size.text() == "128x96"
    assert size.heatmap() == ImageSize(128 // HEATMAP_STRIDE, 96 // HEATMAP_STRIDE)
    for bad in ("", "128x", "axb", "0x64", "1x2x3"):
        with pytest.raises(ValueError):
            ImageSize.parse(bad)


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "engines").glob("*.json") if "eval" not in p.name))
def test_shipped_sidecars_load_unchanged_and_round_trip(name: str) -> None:
    path = REPO / "engines" / name
    on_disk = json.loads(path.read_text(encoding="utf-8"))
    sidecar = Sidecar.read(path, check_hash=False)
    assert list(sidecar.input_size.hw) == on_disk["input_size"]  # the JSON stays [H, W]
    assert {k: v for k, v in sidecar.to_json().items() if k in on_disk} == on_disk  # older files lack sigma
    codec = sidecar.codec()
    assert codec.input_size == sidecar.input_size and codec.heatmap_size == sidecar.heatmap_size
    assert codec.sigma == sidecar.heatmap_sigma


def test_non_square_sidecar_json_is_height_first(tmp_path: Path) -> None:
    src = next(p for p in sorted((REPO / "engines").glob("*.json")) if "eval" not in p.name)
    data = json.loads(src.read_text(encoding="utf-8"))
    data.update(input_size=[128, 64], heatmap_size=[32, 16])  # [H, W]
    path = tmp_path / "m.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    sidecar = Sidecar.read(path, check_hash=False)
    assert sidecar.input_size == ImageSize(64, 128) and sidecar.heatmap_size == ImageSize(16, 32)
    assert sidecar.to_json()["input_size"] == [128, 64]


def test_sidecar_color_decides_the_channel_order() -> None:
    """A model that wants BGR gets the frame's channels as they come; an RGB one gets them swapped."""
    src = next(p for p in sorted((REPO / "engines").glob("*.json")) if "eval" not in p.name)
    rgb = Sidecar.read(src, check_hash=False)
    assert rgb.color == "RGB"  # shipped models were trained on RGB crops
    bgr = rgb.replace(color="BGR")
    crops = np.zeros((1, 8, 8, 3), dtype=np.uint8)
    crops[..., 0] = 255  # pure blue in BGR
    as_rgb, as_bgr = rgb.input_format.normalise(crops), bgr.input_format.normalise(crops)
    assert not np.allclose(as_rgb, as_bgr)
    assert as_rgb[0, 2].min() > as_rgb[0, 0].max()  # blue is the model's third channel
    assert as_bgr[0, 0].min() > as_bgr[0, 2].max()  # ... or its first
    # the RGB path is what training used (to_model_input's default)
    assert np.array_equal(as_rgb, to_model_input(crops, rgb.mean, rgb.std))
    with pytest.raises(ValueError, match="color"):
        rgb.replace(color="YUV")


def test_fast_normalise_equals_float_arithmetic() -> None:
    """The lookup-table path for uint8 crops gives the float32 values of the plain arithmetic."""
    rng = np.random.default_rng(3)
    crops = rng.integers(0, 256, (3, 24, 16, 3), dtype=np.uint8)
    for color in ("RGB", "BGR"):
        fast = to_model_input(crops, color=color)  # type: ignore[arg-type]
        slow = to_model_input(crops.astype(np.float32), color=color)  # type: ignore[arg-type]
        assert fast.shape == (3, 3, 24, 16) and fast.dtype == np.float32 and fast.flags.c_contiguous
        assert np.array_equal(fast, slow)


def test_crop_batch_equals_warp_then_normalise() -> None:
    rng = np.random.default_rng(4)
    frame = rng.integers(0, 256, (270, 480, 3), dtype=np.uint8)
    fmt = InputFormat(ImageSize(64, 96))
    affines = [crop_affine((200 + 40 * i, 130), (120, 180), fmt.size, rotation_deg=10 * i) for i in range(3)]
    expected = to_model_input(np.stack([warp_crop(frame, a, fmt.size) for a in affines]))
    assert np.array_equal(fmt.crop_batch([frame] * 3, affines), expected)
