"""TensorRT engine files: GPU detection, keys, the manifest, selection and `stagepose engine list`.

TensorRT itself cannot be installed on CPU machines; everything around it is tested here on real files
(the key derivation, manifest, selection among engines built for other machines, error messages, and
nvidia-smi parsing through a real executable on PATH). The build itself runs in the tensorrt-marked
tests at the end, which skip without TensorRT and a GPU.
"""

from __future__ import annotations

import dataclasses
import json
import os
import stat
from pathlib import Path

import pytest

from stagepose.cli import main
from stagepose.errors import EngineError
from stagepose.hashing import sha256_file
from stagepose.runtime.engines import (
    EngineKey,
    EngineRecord,
    GpuInfo,
    Manifest,
    add_to_manifest,
    build_command,
    detect_gpu,
    gpu_slug,
    list_engines,
    load_manifest,
    parse_nvidia_smi,
    save_manifest,
    select_engine,
    tensorrt_version,
)

RTX4090 = GpuInfo("NVIDIA GeForce RTX 4090", "8.9")
A4000 = GpuInfo("NVIDIA RTX A4000", "8.6")
TRT = "10.13.0.35"


def _record(key: EngineKey, gpu: GpuInfo, onnx_sha: str, **changes: object) -> EngineRecord:
    record = EngineRecord(
        file=key.filename, onnx="model.onnx", onnx_sha256=onnx_sha, trt_version=key.trt_version,
        gpu_name=gpu.name, compute_capability=gpu.compute_capability, precision=key.precision,
        input_size=key.input_size, min_batch=1, opt_batch=3, max_batch=8, workspace_mb=1024,
        fp16_method="builder-flag" if key.precision == "fp16" else "none",
        timing_cache="t.timing.cache", built_at="2026-01-01T00:00:00+00:00", build_seconds=42.0,
        engine_sha256="0" * 64, engine_bytes=1234, stagepose_version="0.1.0",
    )  # fmt: skip
    return dataclasses.replace(record, **changes)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------- GPU info


def test_gpu_slug_and_sm() -> None:
    assert gpu_slug("NVIDIA GeForce RTX 4090") == "nvidia-geforce-rtx-4090"
    assert gpu_slug("NVIDIA H100 80GB HBM3") == "nvidia-h100-80gb-hbm3"
    assert gpu_slug("Tesla T4 (MIG 1g.5gb)") == "tesla-t4-mig-1g-5gb"
    assert RTX4090.sm == "89" and GpuInfo("NVIDIA B200", "10.0").sm == "100"
    with pytest.raises(ValueError, match="compute capability"):
        GpuInfo("x", "sm_86")


def test_parse_nvidia_smi_lines() -> None:
    text = "NVIDIA GeForce RTX 4090, 8.9\nNVIDIA RTX A4000, 8.6\nTesla K80, [N/A]\n\n"
    gpus = parse_nvidia_smi(text)
    assert [(g.name, g.compute_capability, g.index) for g in gpus] == [
        ("NVIDIA GeForce RTX 4090", "8.9", 0), ("NVIDIA RTX A4000", "8.6", 1),
    ]  # fmt: skip


def _fake_nvidia_smi(folder: Path, body: str) -> None:
    script = folder / "nvidia-smi"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


def test_detect_gpu_runs_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_nvidia_smi(tmp_path, "printf 'NVIDIA GeForce RTX 4090, 8.9\\nNVIDIA RTX A4000, 8.6\\n'")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert detect_gpu() == GpuInfo("NVIDIA GeForce RTX 4090", "8.9", 0)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")  # CUDA device 0 is physical GPU 1
    assert detect_gpu() == GpuInfo("NVIDIA RTX A4000", "8.6", 0)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert detect_gpu() is None


def test_no_gpu_is_a_clean_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU that torch sees")
    _fake_nvidia_smi(tmp_path, "echo 'NVIDIA-SMI has failed because it could not communicate' >&2; exit 9")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert detect_gpu() is None


# --------------------------------------------------------------------------------------------- keys


def test_engine_key_file_name_and_round_trip() -> None:
    sha = "0123456789abcdef" * 4
    key = EngineKey.for_machine(sha, TRT, RTX4090, "fp16", (256, 192))
    assert key.filename == "0123456789ab_trt10.13.0.35_sm89_nvidia-geforce-rtx-4090_fp16_256x192.engine"
    assert EngineKey.parse(key.filename) == key
    assert EngineKey.parse("/some/dir/" + key.filename) == key
    for bad in ("model.engine", key.filename.replace("fp16", "int8"), key.filename + ".bak"):
        assert EngineKey.parse(bad) is None
    with pytest.raises(EngineError, match="precision"):
        EngineKey.for_machine(sha, TRT, RTX4090, "int8", (256, 256))  # type: ignore[arg-type]


def test_every_key_field_changes_the_file_name() -> None:
    sha = "a" * 64
    base = dict(onnx_sha256=sha, trt_version=TRT, gpu=RTX4090, precision="fp16", input_size=(256, 256))
    variants = [
        {}, {"onnx_sha256": "b" * 64}, {"trt_version": "11.4.0.106"}, {"gpu": A4000},
        {"gpu": GpuInfo("NVIDIA GeForce RTX 4080", "8.9")}, {"precision": "fp32"}, {"input_size": (128, 128)},
    ]  # fmt: skip
    names = {EngineKey.for_machine(**{**base, **v}).filename for v in variants}  # type: ignore[arg-type, dict-item]
    assert len(names) == len(variants)


def test_fits_machine() -> None:
    key = EngineKey.for_machine("c" * 64, TRT, RTX4090, "fp32", (256, 256))
    assert key.fits_machine(RTX4090, TRT)
    assert not key.fits_machine(A4000, TRT)
    assert not key.fits_machine(GpuInfo("NVIDIA GeForce RTX 4080", "8.9"), TRT)  # same sm, other GPU
    assert not key.fits_machine(RTX4090, "10.14.1.48")
    assert not key.fits_machine(None, TRT) and not key.fits_machine(RTX4090, None)


# ----------------------------------------------------------------------------------------- manifest


def test_manifest_round_trip_and_replace(tmp_path: Path) -> None:
    assert load_manifest(tmp_path) == Manifest()
    key = EngineKey.for_machine("d" * 64, TRT, RTX4090, "fp16", (256, 256))
    first = _record(key, RTX4090, "d" * 64)
    other = _record(EngineKey.for_machine("d" * 64, TRT, A4000, "fp16", (256, 256)), A4000, "d" * 64)
    add_to_manifest(tmp_path, first)
    add_to_manifest(tmp_path, other)
    rebuilt = dataclasses.replace(first, build_seconds=7.5, max_batch=4)
    add_to_manifest(tmp_path, rebuilt)
    manifest = load_manifest(tmp_path)
    assert [r.file for r in manifest.engines] == [other.file, first.file]
    assert manifest.find(first.file) == rebuilt
    assert manifest.find(first.file).key == key  # type: ignore[union-attr]
    data = json.loads((tmp_path / "manifest.json").read_text())
    assert data["format"] == 1 and data["engines"][1]["max_batch"] == 4


def test_manifest_errors_name_the_problem(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text('{"engines": [\n  {"file": 3}\n')
    with pytest.raises(EngineError, match=r"manifest\.json:3: not valid JSON"):
        load_manifest(tmp_path)
    key = EngineKey.for_machine("e" * 64, TRT, RTX4090, "fp16", (256, 256))
    save_manifest(tmp_path, Manifest(engines=(_record(key, RTX4090, "e" * 64),)))
    data = json.loads((tmp_path / "manifest.json").read_text())
    data["engines"][0]["max_batch"] = "eight"
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(EngineError, match=r"field 'engines\[0\]\.max_batch': expected an integer"):
        load_manifest(tmp_path)
    with pytest.raises(ValueError, match="1 <= min <= opt <= max"):
        _record(key, RTX4090, "e" * 64, opt_batch=9)


# ---------------------------------------------------------------------------------------- selection


@pytest.fixture()
def engines_dir(tmp_path: Path) -> Path:
    """An engines folder with an ONNX and engines for several machines, precisions and sizes."""
    onnx = tmp_path / "lshm2-256.onnx"
    onnx.write_bytes(b"stand-in for an exported ONNX: selection only hashes it")
    sha = sha256_file(onnx)
    for gpu, trt, precision, size in [
        (A4000, TRT, "fp16", (256, 256)),  # other GPU
        (RTX4090, "10.8.0.43", "fp16", (256, 256)),  # other TensorRT
        (RTX4090, TRT, "fp32", (256, 256)),  # other precision
        (RTX4090, TRT, "fp16", (128, 128)),  # other input size
        (RTX4090, TRT, "fp16", (256, 256)),  # the right one
    ]:
        key = EngineKey.for_machine(sha, trt, gpu, precision, size)  # type: ignore[arg-type]
        (tmp_path / key.filename).write_bytes(b"engine")
        add_to_manifest(tmp_path, _record(key, gpu, sha))
    stranger = EngineKey.for_machine("f" * 64, TRT, RTX4090, "fp16", (256, 256))  # another ONNX
    (tmp_path / stranger.filename).write_bytes(b"engine")
    return tmp_path


def test_select_engine_picks_the_file_for_this_machine(engines_dir: Path) -> None:
    onnx = engines_dir / "lshm2-256.onnx"
    chosen = select_engine(onnx, engines_dir, RTX4090, TRT, "fp16", (256, 256))
    key = EngineKey.parse(chosen.name)
    assert key is not None and key.fits_machine(RTX4090, TRT)
    assert (key.precision, key.input_size, key.onnx_sha12) == ("fp16", (256, 256), sha256_file(onnx)[:12])
    assert select_engine(onnx, engines_dir, A4000, TRT, "fp16", (256, 256)).name.count("sm86") == 1
    assert "_fp32_" in select_engine(onnx, engines_dir, RTX4090, TRT, "fp32", (256, 256)).name
    assert "_128x128" in select_engine(onnx, engines_dir, RTX4090, TRT, "fp16", (128, 128)).name


def test_no_engine_for_this_gpu_names_the_build_command(engines_dir: Path) -> None:
    onnx = engines_dir / "lshm2-256.onnx"
    h100 = GpuInfo("NVIDIA H100 80GB HBM3", "9.0")
    with pytest.raises(EngineError) as info:
        select_engine(onnx, engines_dir, h100, TRT, "fp16", (256, 256))
    message = str(info.value)
    assert "no TensorRT engine for" in message and "NVIDIA H100 80GB HBM3 (sm90)" in message
    assert "_sm90_nvidia-h100-80gb-hbm3_fp16_256x256.engine" in message  # the file it looked for
    assert "sm86 nvidia-rtx-a4000" in message  # what exists elsewhere for this ONNX
    assert f"stagepose engine build --onnx {onnx} --fp16" in message
    # a changed ONNX no longer matches any engine: its hash is in the key
    onnx.write_bytes(b"re-exported model")
    with pytest.raises(EngineError, match="no TensorRT engine"):
        select_engine(onnx, engines_dir, RTX4090, TRT, "fp16", (256, 256))


def test_select_engine_without_gpu_or_tensorrt(engines_dir: Path) -> None:
    onnx = engines_dir / "lshm2-256.onnx"
    with pytest.raises(EngineError, match="need a CUDA GPU and none was found.*backend: onnxruntime"):
        select_engine(onnx, engines_dir, None, TRT, "fp16", (256, 256))
    with pytest.raises(EngineError, match="TensorRT is not installed.*`gpu` extra"):
        select_engine(onnx, engines_dir, RTX4090, None, "fp16", (256, 256))
    with pytest.raises(EngineError, match="ONNX model not found"):
        select_engine(engines_dir / "gone.onnx", engines_dir, RTX4090, TRT, "fp16", (256, 256))


def test_build_command_text(tmp_path: Path) -> None:
    onnx = Path("engines/lshm2-256.onnx")
    assert build_command(onnx, Path("engines"), "fp16") == "stagepose engine build --onnx engines/lshm2-256.onnx --fp16"
    assert build_command(onnx, Path("/srv/engines"), "fp32", 3) == (
        "stagepose engine build --onnx engines/lshm2-256.onnx --engines-dir /srv/engines --max-batch 3"
    )


def test_list_engines_marks_this_machine_and_missing_files(engines_dir: Path) -> None:
    onnx_sha = sha256_file(engines_dir / "lshm2-256.onnx")
    ghost = EngineKey.for_machine(onnx_sha, TRT, RTX4090, "fp32", (128, 128))
    add_to_manifest(engines_dir, _record(ghost, RTX4090, onnx_sha))  # listed, file deleted
    listings = {e.file: e for e in list_engines(engines_dir, RTX4090, TRT)}
    assert len(listings) == 7
    fitting = sorted(f for f, e in listings.items() if e.fits_this_machine)
    assert len(fitting) == 5 and all("_sm89_" in f and "trt10.13.0.35" in f for f in fitting)
    assert not listings[ghost.filename].exists
    stranger = [e for e in listings.values() if e.record is None]
    assert len(stranger) == 1 and stranger[0].key is not None and stranger[0].key.onnx_sha12 == "f" * 12


def test_engine_list_command(engines_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["engine", "list", "--engines-dir", str(engines_dir)]) == 0
    out = capsys.readouterr().out
    assert "this machine:" in out and "NVIDIA RTX A4000" in out and "(not in manifest)" in out
    assert main(["engine", "list", "--engines-dir", str(engines_dir), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["engines"]) == 6
    gpu, trt = detect_gpu(), tensorrt_version()
    assert data["this_machine"]["tensorrt"] == trt
    if gpu is None:
        assert not any(e["fits_this_machine"] for e in data["engines"])


def test_engine_build_without_tensorrt_says_how_to_install(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if tensorrt_version() is not None:
        pytest.skip("TensorRT is installed here")
    assert main(["engine", "build", "--onnx", str(tmp_path / "m.onnx"), "--fp16"]) == 2
    err = capsys.readouterr().err
    assert "TensorRT is not importable" in err and "NVIDIA's package index" in err
