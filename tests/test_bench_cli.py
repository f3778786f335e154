"""`stagepose bench model | pipeline | sources | train | gpu`: parsing, and a small real run of each.

The runs check the JSON each subcommand prints, not the timings (they depend on the machine and its load).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stagepose.cli import build_parser, main

REPO = Path(__file__).resolve().parents[1]
CLIP = REPO / "media" / "pose2sim_cam01.mp4"
ONNX = REPO / "engines" / "lshm2_campaign_lspet_128.onnx"
DEMO = REPO / "show_configs" / "demo.yaml"


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict, str]:
    """(exit code, the JSON on stdout, stderr)."""
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, json.loads(out), err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["model", "--onnx", "a.onnx", "--onnx", "b.onnx", "--backend", "onnxruntime", "--batch", "1,4"],
         {"onnx": [Path("a.onnx"), Path("b.onnx")], "backend": ("onnxruntime",), "batch": (1, 4), "table": False}),
        (["model", "--preset", "lshm-2,lshm-4", "--input-size", "128,256", "--table"],
         {"preset": ("lshm-2", "lshm-4"), "input_size": (128, 256), "runs": 200, "table": True}),
        (["pipeline", "--show", "s.yaml", "--frames", "5"], {"show": Path("s.yaml"), "video": None, "frames": 5}),
        (["sources", "v.mp4", "--frames", "10"], {"video": Path("v.mp4"), "frames": 10, "repeat": 3}),
        (["train", "lshm-2", "lshm-4", "--teacher", "teacher-hg2", "--input-size", "128", "--batch-size", "16"],
         {"presets": ["lshm-2", "lshm-4"], "teacher": "teacher-hg2", "input_size": 128, "batch_size": 16}),
        (["gpu", "--preset", "lshm-2", "--checkpoint", "lshm-2=w.safetensors", "--batch", "1,8"],
         {"preset": ("lshm-2",), "checkpoint": [("lshm-2", Path("w.safetensors"))], "batch": (1, 8),
          "device": "cuda:0"}),
    ],
)  # fmt: skip
def test_subcommand_arguments(argv: list[str], expected: dict[str, object]) -> None:
    args = build_parser().parse_args(["bench", *argv])
    assert args.bench_command == argv[0] and callable(args.func)
    assert {key: getattr(args, key) for key in expected} == expected


@pytest.mark.parametrize(
    "argv",
    [
        ["bench", "model", "--batch", "0"],
        ["bench", "gpu", "--checkpoint", "lshm-2"],  # not PRESET=FILE
        ["bench", "train"],  # no preset
        ["bench", "--onnx", "a.onnx"],  # the subcommand is required: `bench model --onnx`
        ["bench-pipeline", "--show", "s.yaml"],  # replaced by `bench pipeline`
        ["bench-train", "lshm-2"],  # replaced by `bench train`
    ],
)
def test_bad_arguments_are_usage_errors(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    assert exc.value.code == 2


def test_bench_alone_lists_the_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench"]) == 2
    out = capsys.readouterr().out
    assert all(name in out for name in ("model", "pipeline", "sources", "train", "gpu"))


def test_model_on_the_shipped_onnx(capsys: pytest.CaptureFixture[str]) -> None:
    rc, report, _ = _run(["bench", "model", "--onnx", str(ONNX), "--backend", "onnxruntime", "--batch", "1",
                          "--runs", "3", "--warmup", "1", "--pipeline-runs", "2", "--device", "cpu",
                          "--threads", "1"], capsys)  # fmt: skip
    assert rc == 0 and report["errors"] == []
    [result] = report["results"]
    assert result["backend"] == "onnxruntime" and result["batch"] == 1 and result["runs"] == 3
    assert result["input_size"] == [128, 128] and result["latency_ms"]["p50"] > 0


def test_pipeline_on_the_demo_show(capsys: pytest.CaptureFixture[str]) -> None:
    rc, report, _ = _run(["bench", "pipeline", "--show", str(DEMO), "--frames", "5"], capsys)
    assert rc == 0 and report["frames"] == 5 and report["frame_size"] == [1080, 1920]
    assert Path(report["video"]).name == CLIP.name
    assert {"source", "infer", "osc", "record"} <= set(report["stages_ms"])
    assert report["model_mean_ms"] > 0 and 0 < report["model_share"] <= 1


def test_pipeline_without_the_video(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["bench", "pipeline", "--show", str(DEMO), "--video", str(tmp_path / "none.mp4")])
    assert rc == 2 and "none.mp4: file not found" in capsys.readouterr().err


def test_sources_on_the_clip(capsys: pytest.CaptureFixture[str]) -> None:
    rc, report, _ = _run(["bench", "sources", str(CLIP), "--frames", "5", "--repeat", "1"], capsys)
    assert rc == 0 and report["frames"] == 5 and report["repeat"] == 1
    assert report["frame_size"] == [1080, 1920] and report["codec"] == "h264"
    assert report["decode_ms"] > 0 and report["decode_bgr_ms"] > 0 and report["file_source_ms"] > 0


def test_sources_without_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "sources", str(tmp_path / "none.mp4")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "video file not found" in err


def test_train_tiny(capsys: pytest.CaptureFixture[str]) -> None:
    rc, report, err = _run(["bench", "train", "lshm-2", "--input-size", "64", "--batch-size", "2", "--steps", "1",
                            "--warmup", "0", "--device", "cpu"], capsys)  # fmt: skip
    assert rc == 0 and "lshm-2: " in err  # progress on stderr, JSON on stdout
    [result] = report["results"]
    assert result["preset"] == "lshm-2" and result["input_size"] == [64, 64] and result["batch_size"] == 2
    assert result["steps"] == 1 and result["device"] == "cpu" and result["img_s"] > 0


def test_gpu_without_cuda_says_so_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is visible here")
    assert main(["bench", "gpu", "--preset", "lshm-2", "--input-size", "64"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "sees no CUDA GPU" in err and "--device cpu" in err


def test_gpu_dry_run_on_the_cpu(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "gpu", "--device", "cpu", "--preset", "lshm-2", "--input-size", "64", "--batch", "1", "--runs",
            "2", "--warmup", "0", "--lspet", str(tmp_path)]  # fmt: skip
    rc, report, err = _run(argv, capsys)
    assert rc == 0 and "lshm-2" in err
    assert report["gpu"].startswith("none") and "FP16 accuracy not measured" in report["accuracy_data"]
    entry = report["presets"]["lshm-2"]
    assert entry["weights"] == "random-init" and "fp16_vs_fp32" not in entry
    assert set(entry["latency_ms"]) == {"fp32/eager/b1", "fp32/graph/b1", "fp16/eager/b1", "fp16/graph/b1"}


def test_live_on_the_demo_show(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    show = yaml.safe_load(DEMO.read_text())
    show["cameras"][0]["uri"] = f"{CLIP}?loop=true&pacing=realtime"
    show["model"]["path"] = str(ONNX)
    show["outputs"]["osc"][0]["port"] = 9  # the discard port
    show["outputs"]["record"]["path"] = str(tmp_path / "keypoints.jsonl")
    (tmp_path / "show.yaml").write_text(yaml.safe_dump(show))
    rc, report, _ = _run(["bench", "live", "--show", str(tmp_path / "show.yaml"), "--duration", "2"], capsys)
    assert rc == 0 and report["stopped_by"] == "max_duration_s reached" and report["spin_wait"] is False
    latency = report["capture_to_send_ms"]["cam1"]
    assert latency["count"] > 0 and 0 < latency["p50_ms"] <= latency["p95_ms"] and report["fps"]["cam1"] > 0
    assert {"crop", "infer", "decode", "filter"} <= set(report["stages_ms"])
    assert (tmp_path / "keypoints.jsonl").stat().st_size > 0  # the show ran whole: the record was written


def test_pipeline_on_a_replay_only_show_with_video(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    show = yaml.safe_load(DEMO.read_text())
    del show["cameras"][0]["uri"]  # like tests/shows/duet.yaml: the clip is given at the command line
    show["model"]["path"] = str(ONNX)
    show["outputs"]["record"]["path"] = str(tmp_path / "keypoints.jsonl")
    (tmp_path / "show.yaml").write_text(yaml.safe_dump(show))
    rc, report, _ = _run(["bench", "pipeline", "--show", str(tmp_path / "show.yaml"), "--video", str(CLIP),
                          "--frames", "3"], capsys)  # fmt: skip
    assert rc == 0 and report["frames"] == 3
