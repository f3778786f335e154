"""`stagepose replay` on a real clip: every frame processed, overlay video, records and latency summary."""

from __future__ import annotations

import json
from pathlib import Path

import av
import pytest
from show_support import DEMO_CLIP, base_show, write_show

from stagepose.cli import main
from stagepose.show.record import read_record


@pytest.fixture
def show_file(tmp_path: Path, small_onnx: Path) -> Path:
    return write_show(tmp_path, base_show(small_onnx, str(DEMO_CLIP), 9))


def test_replay_writes_overlay_record_and_latency(tmp_path: Path, show_file: Path, capsys) -> None:
    out = tmp_path / "out"
    assert main(["replay", "--show", str(show_file), "--input", str(DEMO_CLIP), "--out", str(out),
                 "--rts", "--no-progress"]) == 0  # fmt: skip
    summary = json.loads(capsys.readouterr().out)
    assert summary["frames"] == {"cam1": 100}  # lossless: every frame of the 100-frame clip
    with av.open(str(out / "overlay_cam1.mp4")) as video:
        stream = video.streams.video[0]
        frames = list(video.decode(stream))
    assert len(frames) == 100 and (frames[0].width, frames[0].height) == (1080, 1920)
    record = [r for r in read_record(out / "keypoints.jsonl") if r["type"] == "frame"]
    assert [r["seq"] for r in record] == list(range(100))
    rts = [r for r in read_record(out / "keypoints_rts_cam1.jsonl") if r["type"] == "frame"]
    assert len(rts) == 100 and rts[50]["smoothed"] != record[50]["smoothed"]
    latency = json.loads((out / "latency.json").read_text())
    for stage in ("crop", "infer", "decode", "filter", "total"):
        assert latency[stage]["count"] == 100 and latency[stage]["p95_ms"] >= latency[stage]["p50_ms"] > 0
    assert (out / "latency.png").stat().st_size > 10_000


def test_more_inputs_than_cameras_is_a_clear_error(tmp_path: Path, show_file: Path, capsys) -> None:
    code = main(["replay", "--show", str(show_file), "--input", str(DEMO_CLIP), str(DEMO_CLIP),
                 "--out", str(tmp_path / "o")])  # fmt: skip
    assert code == 2
    assert "2 input videos but the show has 1 active cameras" in capsys.readouterr().err
    assert main(["replay", "--show", str(show_file), "--input", "nope.mp4", "--out", str(tmp_path / "o")]) == 2
    assert "nope.mp4: video file not found" in capsys.readouterr().err
