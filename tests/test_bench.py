"""`stagepose bench model`: JSON fields, the per-frame path on the CPU, the histogram, and statistics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from stagepose.cli import main
from stagepose.runtime.bench import BenchSpec, latency_stats, time_calls


def test_latency_stats_percentiles() -> None:
    stats = latency_stats(np.arange(1, 101, dtype=np.float64))
    assert stats["p50"] == pytest.approx(50.5) and stats["p95"] == pytest.approx(95.05)
    assert stats["p99"] == pytest.approx(99.01) and (stats["min"], stats["max"], stats["mean"]) == (1.0, 100.0, 50.5)


def test_time_calls_counts_and_synchronises() -> None:
    calls, syncs = [], []
    samples = time_calls(lambda: calls.append(1), lambda: syncs.append(1), runs=7, warmup=3)
    assert len(samples) == 7 and len(calls) == 10 and len(syncs) == 8  # once after warm-up, then per run
    assert (samples >= 0).all()


def test_spec_validation() -> None:
    with pytest.raises(ValueError, match="at least one preset"):
        BenchSpec()
    with pytest.raises(ValueError, match="unknown backend"):
        BenchSpec(presets=("lshm-2",), backends=("openvino",))


def test_bench_json_on_cpu(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plot = tmp_path / "latency.png"
    rc = main([
        "bench", "model", "--backend", "onnxruntime,torch", "--preset", "lshm-2", "--input-size", "64",
        "--batch", "1,2", "--runs", "5", "--warmup", "1", "--pipeline-runs", "3", "--device", "cpu",
        "--plot", str(plot),
    ])  # fmt: skip
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) == {"machine", "settings", "notes", "results", "pipeline", "errors"}
    assert report["machine"]["onnxruntime"] and report["machine"]["torch"]
    assert any("randomly initialised weights" in n for n in report["notes"])
    assert any("only 5 timed runs" in n for n in report["notes"])
    cases = {(r["backend"], r["batch"]) for r in report["results"]}
    assert cases == {("onnxruntime", 1), ("onnxruntime", 2), ("torch", 1), ("torch", 2)}
    for r in report["results"]:
        assert r["preset"] == "lshm-2" and r["input_size"] == [64, 64] and r["device"] == "cpu"
        assert r["runs"] == 5 and r["weights"].startswith("random-init")
        lat = r["latency_ms"]
        assert 0 < lat["min"] <= lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"]
        assert r["images_per_s"] == pytest.approx(r["batch"] * 1e3 / lat["mean"], rel=1e-2, abs=5e-3)  # 2 decimals
    assert len(report["pipeline"]) == 4
    for p in report["pipeline"]:
        assert p["frame"] == [1920, 1080]
        stages = p["stages_ms"]
        assert set(stages) == {"preprocess", "infer", "decode", "total"}
        assert stages["total"]["p50"] >= stages["infer"]["p50"] > 0
        assert 0 < p["model_share_p50"] <= 1
    assert report["errors"] == []
    assert plot.stat().st_size > 10_000 and plot.read_bytes()[:4] == b"\x89PNG"


def test_bench_reports_backends_that_cannot_run(capsys: pytest.CaptureFixture[str]) -> None:
    from stagepose.runtime.engines import tensorrt_version

    if tensorrt_version() is not None:
        pytest.skip("TensorRT is installed here")
    rc = main(["bench", "model", "--backend", "tensorrt", "--preset", "lshm-2", "--input-size", "64", "--runs",
               "2", "--warmup", "0"])  # fmt: skip
    assert rc == 1  # nothing could be timed
    report = json.loads(capsys.readouterr().out)
    assert report["results"] == [] and report["errors"][0]["backend"] == "tensorrt"
    assert "GPU" in report["errors"][0]["error"] or "TensorRT" in report["errors"][0]["error"]
