"""Backends behind one interface: ONNX Runtime and torch on the CPU, `auto`, and input checks.

GPU tests (torch CUDA FP16 and CUDA graphs) are marked and skip without CUDA.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from stagepose.errors import EngineError, ModelError
from stagepose.models import build_model
from stagepose.models.checkpoint import save_weights
from stagepose.runtime import BackendConfig, open_auto, open_backend
from stagepose.runtime.engines import detect_gpu
from stagepose.runtime.export import export_onnx
from stagepose.sizes import ImageSize

SIZE = 64


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """engines-like folder: lshm2.onnx + lshm2.json + lshm2.safetensors (the checkpoint it came from)."""
    folder = tmp_path_factory.mktemp("engines")
    torch.manual_seed(0)
    weights = save_weights(folder / "lshm2.safetensors", build_model("lshm-2"), "lshm-2")
    export_onnx(weights, folder / "lshm2.onnx", input_size=(SIZE, SIZE))
    return folder


def _batch(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3, SIZE, SIZE)).astype(np.float32)


def test_onnxruntime_and_torch_agree_on_cpu(model_dir: Path) -> None:
    onnx = model_dir / "lshm2.onnx"
    with open_backend(BackendConfig(onnx, backend="onnxruntime", device="cpu", threads=1)) as ort_b, \
            open_backend(BackendConfig(onnx, backend="torch", device="cpu")) as torch_b:  # fmt: skip
        assert (ort_b.name, ort_b.device, torch_b.name, torch_b.device) == ("onnxruntime", "cpu", "torch", "cpu")
        for backend in (ort_b, torch_b):
            assert backend.input_size == (SIZE, SIZE) and backend.heatmap_size == (SIZE // 4, SIZE // 4)
            assert backend.sidecar is not None and backend.sidecar.preset == "lshm-2"
        assert ort_b.describe()["threads"] == 1
        for n in (1, 3):
            batch = _batch(n, seed=n)
            a, b = ort_b.infer(batch), torch_b.infer(batch)
            assert a.shape == b.shape == (n, 16, SIZE // 4, SIZE // 4)
            assert a.dtype == b.dtype == np.float32
            assert np.abs(a - b).max() <= 1e-4
        assert ort_b.warmup((1, 2), runs=2) > 0


def test_torch_backend_loads_weights_directly(model_dir: Path, tmp_path: Path) -> None:
    weights = tmp_path / "only-weights.safetensors"
    shutil.copy(model_dir / "lshm2.safetensors", weights)
    with open_backend(BackendConfig(weights, backend="torch", device="cpu", input_size=ImageSize(64, 128))) as b:
        assert b.input_size == ImageSize(64, 128)  # (width, height)
        out = b.infer(np.zeros((2, 3, 128, 64), dtype=np.float32))
        assert out.shape == (2, 16, 32, 16)


def test_closed_backend_and_bad_batches_raise(model_dir: Path) -> None:
    backend = open_backend(BackendConfig(model_dir / "lshm2.onnx", backend="onnxruntime", device="cpu"))
    with pytest.raises(ModelError, match=r"expects a batch of shape \(N, 3, 64, 64\), got \(1, 3, 128, 128\)"):
        backend.infer(np.zeros((1, 3, 128, 128), dtype=np.float32))
    with pytest.raises(ModelError, match="must be float32"):
        backend.infer(np.zeros((1, 3, SIZE, SIZE), dtype=np.float64))
    with pytest.raises(ModelError, match="expects a batch"):
        backend.infer(np.zeros((3, SIZE, SIZE), dtype=np.float32))
    # a non-contiguous view is accepted (copied) and gives the same result as its copy
    wide = _batch(2)[:, :, :, ::-1]
    assert np.array_equal(backend.infer(wide), backend.infer(np.ascontiguousarray(wide)))
    backend.close()
    with pytest.raises(EngineError, match="closed"):
        backend.infer(_batch(1))


def test_auto_picks_onnxruntime_on_a_cpu_machine(model_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    if detect_gpu() is not None:
        pytest.skip("this machine has a GPU: auto would pick a GPU backend")
    with caplog.at_level(logging.INFO, logger="stagepose.runtime.backends.select"):
        backend, attempts = open_auto(BackendConfig(model_dir / "lshm2.onnx"))
    with backend:
        assert (backend.name, backend.device) == ("onnxruntime", "cpu")
        assert backend.infer(_batch(1)).shape == (1, 16, SIZE // 4, SIZE // 4)
    tried = [(a.backend, a.device) for a in attempts]
    assert tried == [("tensorrt", "cuda:0"), ("onnxruntime", "cuda:0"), ("torch", "cuda:0"), ("onnxruntime", "cpu")]
    assert all(a.skipped for a in attempts[:3]) and attempts[3].skipped is None
    # each skipped option was logged with its reason
    assert caplog.text.count("backend auto: skipping") == 3 and "using onnxruntime on cpu" in caplog.text


def test_auto_with_only_weights_falls_back_to_torch_cpu(model_dir: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("torch sees a GPU here")
    backend, attempts = open_auto(BackendConfig(model_dir / "lshm2.safetensors", device="cpu", input_size=(SIZE, SIZE)))
    with backend:
        assert (backend.name, backend.device) == ("torch", "cpu")
    assert attempts[-1].skipped is None and "needs an .onnx model" in (attempts[-2].skipped or "")


def test_stale_model_is_a_model_error_even_in_auto(model_dir: Path, tmp_path: Path) -> None:
    onnx = tmp_path / "lshm2.onnx"
    onnx.write_bytes(model_dir.joinpath("lshm2.onnx").read_bytes() + b"\0")
    shutil.copy(model_dir / "lshm2.json", tmp_path / "lshm2.json")
    with pytest.raises(ModelError, match="does not match"):
        open_backend(BackendConfig(onnx))


def test_missing_pieces_name_what_to_do(model_dir: Path, tmp_path: Path) -> None:
    onnx = tmp_path / "m.onnx"
    shutil.copy(model_dir / "lshm2.onnx", onnx)
    shutil.copy(model_dir / "lshm2.json", tmp_path / "m.json")
    with pytest.raises(EngineError, match=r"torch backend loads weights, not ONNX; put the .*lshm2\.safetensors"):
        open_backend(BackendConfig(onnx, backend="torch", device="cpu"))
    if detect_gpu() is None:
        with pytest.raises(EngineError, match="need a CUDA GPU and none was found"):
            open_backend(BackendConfig(onnx, backend="tensorrt"))
    with pytest.raises(EngineError, match="runs .onnx models"):
        open_backend(BackendConfig(model_dir / "lshm2.safetensors", backend="onnxruntime", device="cpu"))
    with pytest.raises(ModelError, match="sidecar not found"):
        (tmp_path / "m.json").unlink()
        open_backend(BackendConfig(onnx, backend="onnxruntime", device="cpu"))


def test_backend_config_validation() -> None:
    with pytest.raises(ValueError, match="backend must be"):
        BackendConfig(Path("m.onnx"), backend="openvino")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="device must be"):
        BackendConfig(Path("m.onnx"), device="gpu")
    cfg = BackendConfig("engines/m.onnx", device="cuda:1")  # type: ignore[arg-type]
    assert cfg.model == Path("engines/m.onnx") and cfg.cuda_index == 1 and cfg.resolved_engines_dir() == Path("engines")


# ----------------------------------------------------------------------------------------------- GPU

LSPET = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "lspet"
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def lspet_crops(count: int, size: int) -> np.ndarray:
    """(count, 3, size, size) normalised crops around the labelled people of the first LSPET images."""
    import cv2
    import scipy.io

    from stagepose.transforms import CROP_MARGIN, box_with_aspect, crop_affine, to_model_input, warp_crop

    joints = scipy.io.loadmat(str(LSPET / "joints.mat"))["joints"]  # (14, 3, N): x, y, visible
    out = []
    for i in range(count):
        xy = joints[:, :2, i][joints[:, 2, i] > 0]
        lo, hi = xy.min(axis=0), xy.max(axis=0)
        width, height = (hi - lo) * CROP_MARGIN + 1.0
        affine = crop_affine((lo + hi) / 2, box_with_aspect(width, height, 1.0), (size, size))
        out.append(warp_crop(cv2.imread(str(LSPET / "images" / f"im{i + 1:05d}.jpg")), affine, (size, size)))
    return to_model_input(np.stack(out))


@pytest.mark.gpu
@needs_cuda
def test_torch_cuda_fp16_joints_within_half_pixel_on_lspet(model_dir: Path) -> None:
    from stagepose.runtime.parity import compare_heatmaps

    if not (LSPET / "joints.mat").is_file():
        pytest.skip(f"LSPET not found at {LSPET}")
    batch = lspet_crops(32, SIZE)
    weights = model_dir / "lshm2.safetensors"
    with open_backend(BackendConfig(weights, backend="torch", device="cuda", input_size=(SIZE, SIZE))) as fp32, \
            open_backend(BackendConfig(weights, backend="torch", device="cuda", fp16=True,
                                       input_size=(SIZE, SIZE))) as fp16:  # fmt: skip
        assert fp16.precision == "fp16"
        parity = compare_heatmaps(fp32.infer(batch), fp16.infer(batch), sigma=fp32.heatmap_sigma)
    print(f"\ntorch CUDA FP16 vs FP32 on 32 LSPET crops at {SIZE}x{SIZE}: {parity.to_json()}")
    assert parity.clear_joints >= 0.5 * parity.joints
    # 0.5 input px = 0.125 heatmap px
    assert parity.clear_max_diff_px * 4 <= 0.5
    assert parity.within_tol >= 0.9


@pytest.mark.gpu
@needs_cuda
def test_torch_cuda_graph_replay_matches_eager(model_dir: Path) -> None:
    onnx = model_dir / "lshm2.onnx"
    with open_backend(BackendConfig(onnx, backend="torch", device="cuda")) as eager, \
            open_backend(BackendConfig(onnx, backend="torch", device="cuda", cuda_graph=True)) as graphed:  # fmt: skip
        for n in (1, 3, 1):
            batch = _batch(n, seed=n)
            assert np.abs(eager.infer(batch) - graphed.infer(batch)).max() <= 1e-5
        assert graphed.describe()["cuda_graph"] is True
