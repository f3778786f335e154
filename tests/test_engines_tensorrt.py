"""TensorRT build and inference on a real GPU (skips without TensorRT, cuda-python and a CUDA GPU).

Run on a GPU machine with the `gpu` extra installed:
    .venv/bin/python -m pytest tests/test_engines_tensorrt.py -m "tensorrt" -s
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from stagepose.errors import EngineError, ModelError
from stagepose.models import build_model
from stagepose.models.checkpoint import save_weights
from stagepose.runtime import BackendConfig, open_auto, open_backend
from stagepose.runtime.engines import detect_gpu, list_engines, load_manifest, select_engine, tensorrt_version
from stagepose.runtime.export import export_onnx
from stagepose.runtime.parity import compare_heatmaps

SIZE = 128


def _why_not() -> str | None:
    if tensorrt_version() is None:
        return "TensorRT is not installed (the `gpu` extra from NVIDIA's index)"
    if importlib.util.find_spec("cuda") is None:
        return "cuda-python is not installed"
    if detect_gpu() is None:
        return "no CUDA GPU"
    return None


pytestmark = [pytest.mark.tensorrt, pytest.mark.gpu, pytest.mark.skipif(_why_not() is not None, reason=str(_why_not()))]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from stagepose.runtime.trt_build import build_engine

    folder = tmp_path_factory.mktemp("engines")
    torch.manual_seed(0)
    weights = save_weights(folder / "lshm2.safetensors", build_model("lshm-2"), "lshm-2")
    onnx = export_onnx(weights, folder / "lshm2.onnx", input_size=(SIZE, SIZE)).onnx_path
    for fp16 in (False, True):
        record = build_engine(onnx, fp16=fp16, max_batch=4, opt_batch=2, workspace_mb=512)
        print(f"\nbuilt {record.file} in {record.build_seconds} s ({record.fp16_method})")
    return onnx


def _reference(onnx: Path, batch: np.ndarray) -> np.ndarray:
    with open_backend(BackendConfig(onnx, backend="onnxruntime", device="cpu")) as ort_b:
        return ort_b.infer(batch)


def test_build_writes_engines_cache_and_manifest(built: Path) -> None:
    folder = built.parent
    manifest = load_manifest(folder)
    assert {r.precision for r in manifest.engines} == {"fp16", "fp32"}
    for record in manifest.engines:
        assert (folder / record.file).is_file() and (folder / record.timing_cache).is_file()
        assert (record.min_batch, record.opt_batch, record.max_batch) == (1, 2, 4)
        expected = "fp16-onnx" if int(record.trt_version.split(".")[0]) >= 11 else "builder-flag"
        assert record.fp16_method == (expected if record.precision == "fp16" else "none")
    gpu, trt = detect_gpu(), tensorrt_version()
    assert all(e.fits_this_machine for e in list_engines(folder, gpu, trt))
    assert select_engine(built, folder, gpu, trt, "fp16", (SIZE, SIZE)).is_file()


@pytest.mark.parametrize("cuda_graph", [False, True])
def test_engine_matches_onnxruntime(built: Path, cuda_graph: bool) -> None:
    rng = np.random.default_rng(0)
    for fp16 in (False, True):
        with open_backend(BackendConfig(built, backend="tensorrt", fp16=fp16, cuda_graph=cuda_graph)) as trt_b:
            assert trt_b.max_batch == 4
            for n in (1, 3, 4, 1):
                batch = rng.standard_normal((n, 3, SIZE, SIZE)).astype(np.float32)
                got, want = trt_b.infer(batch), _reference(built, batch)
                assert got.shape == want.shape
                parity = compare_heatmaps(want, got, sigma=trt_b.heatmap_sigma)
                print(f"\ntensorrt fp16={fp16} graph={cuda_graph} batch {n}: {parity.to_json()}")
                # fp32 engines may use TF32 on Ampere and newer: ~1e-3 relative
                assert parity.max_abs_diff <= (1e-2 if fp16 else 5e-3) * parity.reference_peak
                assert parity.clear_max_diff_px <= 0.25
            with pytest.raises(ModelError, match="exceeds this model's maximum of 4"):
                trt_b.infer(np.zeros((5, 3, SIZE, SIZE), dtype=np.float32))


def test_auto_picks_tensorrt(built: Path) -> None:
    backend, attempts = open_auto(BackendConfig(built, fp16=True))
    with backend:
        assert backend.name == "tensorrt" and attempts[0].skipped is None


def test_corrupt_engine_asks_for_a_rebuild(built: Path, tmp_path: Path) -> None:
    gpu, trt = detect_gpu(), tensorrt_version()
    engine = select_engine(built, built.parent, gpu, trt, "fp32", (SIZE, SIZE))
    original = engine.read_bytes()
    try:
        engine.write_bytes(original[: len(original) // 2])
        with pytest.raises(EngineError, match="cannot deserialise.*stagepose engine build --onnx"):
            open_backend(BackendConfig(built, backend="tensorrt"))
    finally:
        engine.write_bytes(original)
