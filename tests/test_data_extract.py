"""``stagepose data extract-frames`` on the real clips in ../shared/data/video."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from stagepose.cli import main
from stagepose.data.extract import extract_frames
from stagepose.data.registry import build_dataset
from stagepose.errors import DataError

VIDEO = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "video"
SPORTS = VIDEO / "sports2d_demo.mp4"  # VP9, 1768x994, 30 fps, 230 frames (7.67 s)
CAMS = [VIDEO / "pose2sim_single" / f"cam0{i}.mp4" for i in (1, 2)]  # H.264, 60 fps, 100 frames (1.67 s)
pytestmark = pytest.mark.skipif(not SPORTS.is_file(), reason="../shared/data/video is absent")


def test_every_two_seconds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["data", "extract-frames", "--video", str(SPORTS), "--out", str(tmp_path), "--every", "2", "--quiet"])
    assert rc == 0 and "wrote 4 frames" in capsys.readouterr().out
    names = sorted(p.name for p in tmp_path.glob("*.jpg"))
    assert names == [f"sports2d_demo_t{t:010.3f}.jpg" for t in (0.0, 2.0, 4.0, 6.0)]
    image = cv2.imread(str(tmp_path / names[1]))
    assert image.shape == (994, 1768, 3)
    manifest = json.loads((tmp_path / "manifest.json").read_text())["frames"]
    assert [m["frame_index"] for m in manifest] == [0, 60, 120, 180]  # 30 fps
    assert [m["time_s"] for m in manifest] == [0.0, 2.0, 4.0, 6.0] and manifest[0]["video"] == str(SPORTS)
    # the decoded frame 60 is what was written (JPEG quality 95: small differences only)
    import av

    with av.open(str(SPORTS)) as container:
        frame = next(f for i, f in enumerate(container.decode(video=0)) if i == 60).to_ndarray(format="bgr24")
    assert np.abs(frame.astype(int) - image.astype(int)).mean() < 3.0


def test_motion_threshold_and_max(tmp_path: Path) -> None:
    frames = extract_frames([SPORTS], tmp_path, motion=4.0, max_frames=5, min_gap_s=0.3, progress=False)
    assert 2 <= len(frames) <= 5
    assert frames[0].time_s == 0.0 and frames[0].motion is None  # the first frame is the reference
    assert all(f.motion is not None and f.motion >= 4.0 for f in frames[1:])
    times = [f.time_s for f in frames]
    assert all(b - a >= 0.3 - 1e-6 for a, b in zip(times, times[1:]))
    # a threshold no change reaches keeps only the reference frame
    still = extract_frames([SPORTS], tmp_path / "still", motion=250.0, progress=False)
    assert len(still) == 1


def test_several_videos_share_one_manifest_and_feed_the_frames_loader(tmp_path: Path) -> None:
    if not all(c.is_file() for c in CAMS):
        pytest.skip("pose2sim clips are absent")
    extract_frames(CAMS[:1], tmp_path, every_s=0.5, progress=False)
    extract_frames(CAMS[1:], tmp_path, every_s=0.5, progress=False)
    manifest = json.loads((tmp_path / "manifest.json").read_text())["frames"]
    assert len(manifest) == 8 and {Path(m["video"]).name for m in manifest} == {"cam01.mp4", "cam02.mp4"}
    assert [m["time_s"] for m in manifest if "cam01" in m["file"]] == [0.0, 0.5, 1.0, 1.5]
    dataset = build_dataset(f"frames:{tmp_path}", split="val", input_size=(128, 128))
    assert len(dataset) == 8 and dataset[0]["labelled"] is False and dataset[0]["image"].shape == (3, 128, 128)


def test_bad_requests(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        extract_frames([tmp_path / "missing.mp4"], tmp_path, every_s=1.0)
    (tmp_path / "fake.mp4").write_bytes(b"not a video at all")
    with pytest.raises(DataError, match="cannot open as a video"):
        extract_frames([tmp_path / "fake.mp4"], tmp_path, every_s=1.0)
    with pytest.raises(DataError, match="choose one way"):
        extract_frames([SPORTS], tmp_path, every_s=1.0, motion=5.0)
    with pytest.raises(DataError, match="would write frames named"):
        extract_frames([SPORTS, SPORTS], tmp_path, every_s=1.0)
