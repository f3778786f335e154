"""FP16 ONNX conversion for strongly typed TensorRT builds: checked with ONNX Runtime on the CPU.

The converted model must keep float32 input and output, hold its weights in FP16, and give heatmaps and
decoded joints close to the FP32 model on real LSPET crops (synthetic crops when the data is absent).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from stagepose.codec import HeatmapCodec
from stagepose.models import build_model
from stagepose.models.checkpoint import save_weights
from stagepose.runtime.export import export_onnx
from stagepose.runtime.fp16 import convert_to_fp16
from stagepose.runtime.parity import compare_heatmaps
from stagepose.transforms import CROP_MARGIN, box_with_aspect, crop_affine, to_model_input, warp_crop

SIZE = 128
LSPET = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "lspet"


def lspet_crops(count: int, size: int) -> np.ndarray:
    """(count, 3, size, size) normalised crops around the labelled people of the first LSPET images."""
    import scipy.io

    joints = scipy.io.loadmat(str(LSPET / "joints.mat"))["joints"]  # (14, 3, N): x, y, visible
    crops = []
    for i in range(count):
        xy = joints[:, :2, i][joints[:, 2, i] > 0]
        image = cv2.imread(str(LSPET / "images" / f"im{i + 1:05d}.jpg"))
        lo, hi = xy.min(axis=0), xy.max(axis=0)
        width, height = (hi - lo) * CROP_MARGIN + 1.0
        box = box_with_aspect(width, height, 1.0)
        affine = crop_affine((lo + hi) / 2, box, (size, size))
        crops.append(warp_crop(image, affine, (size, size)))
    return to_model_input(np.stack(crops))


def crops(count: int, size: int) -> tuple[np.ndarray, str]:
    if (LSPET / "joints.mat").is_file():
        return lspet_crops(count, size), "LSPET"
    rng = np.random.default_rng(0)  # no data here: smooth random images instead
    images = rng.integers(0, 256, (count, size // 8, size // 8, 3), dtype=np.uint8)
    images = np.stack([cv2.resize(im, (size, size), interpolation=cv2.INTER_CUBIC) for im in images])
    return to_model_input(images), "synthetic"


@pytest.fixture(scope="module")
def onnx_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("fp16")
    torch.manual_seed(0)
    weights = save_weights(folder / "lshm2.safetensors", build_model("lshm-2"), "lshm-2")
    fp32 = export_onnx(weights, folder / "lshm2.onnx", input_size=(SIZE, SIZE)).onnx_path
    return fp32, convert_to_fp16(fp32, folder / "lshm2.fp16.onnx")


def test_converted_graph_is_fp16_inside_with_fp32_io(onnx_pair: tuple[Path, Path]) -> None:
    _, fp16 = onnx_pair
    model = onnx.load(str(fp16))
    onnx.checker.check_model(model, full_check=True)
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    conv_weights = {n.input[1] for n in model.graph.node if n.op_type == "Conv"}
    types = {i.name: i.data_type for i in model.graph.initializer if i.name in conv_weights}
    assert len(types) == len(conv_weights) > 50
    assert set(types.values()) == {onnx.TensorProto.FLOAT16}
    assert fp16.stat().st_size < 0.6 * onnx_pair[0].stat().st_size


def test_fp16_heatmaps_and_joints_match_fp32(onnx_pair: tuple[Path, Path]) -> None:
    fp32, fp16 = onnx_pair
    batch, source = crops(24, SIZE)
    outputs = []
    for path in (fp32, fp16):
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        outputs.append(session.run(["heatmaps"], {"input": batch})[0])
    assert outputs[1].dtype == np.float32 and outputs[1].shape == (24, 16, SIZE // 4, SIZE // 4)
    codec = HeatmapCodec(input_size=(SIZE, SIZE), heatmap_size=(SIZE // 4, SIZE // 4))
    parity = compare_heatmaps(outputs[0], outputs[1], codec)
    print(f"\nFP16 ONNX vs FP32 on {len(batch)} {source} crops at {SIZE}x{SIZE}: {parity.to_json()}")
    assert parity.max_abs_diff <= 5e-3 * parity.reference_peak
    # joints whose peak stands clear decode to the same place (heatmap px; 0.25 px = 1 input px here)
    assert parity.clear_joints >= 0.5 * parity.joints
    assert parity.clear_max_diff_px <= 0.25
    assert parity.within_tol >= 0.9
