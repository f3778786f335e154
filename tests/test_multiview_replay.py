"""`stagepose replay` of a multiview show (several synchronised cameras -> 3D), and the show file's rules.

The replay test runs the shipped show ``show_configs/pose2sim_single.yaml`` over the first frames of the four
``pose2sim_single`` clips (skipped without ``../shared`` or the shipped model). The config tests need
neither: a performer in two cameras without a ``multiview:`` section, and a multiview camera without
extrinsics, are refused with one line naming file, line and field; `stagepose check` accepts the section.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import av
import numpy as np
import pytest
import yaml
from show_support import DEMO_CLIP, REPO, SHARED_DATA, UdpCollector, write_show

from stagepose.cli import main
from stagepose.errors import ConfigError
from stagepose.show.config import load_show
from stagepose.show.record import read_record
from stagepose.skeleton import NUM_JOINTS, Joint

SINGLE = SHARED_DATA / "video" / "pose2sim_single"
CLIPS = [SINGLE / f"cam0{i}.mp4" for i in range(1, 5)]
SHOW = REPO / "show_configs" / "pose2sim_single.yaml"
MODEL = REPO / "engines" / "lshm2_campaign_lspet_128.onnx"
CALIBRATION = REPO / "calibration" / "pose2sim" / "single"
FRAMES = 10  # per clip: a fast test
TOL_FLOOR_M = 0.35  # the lower ankle's median height: an ankle joint sits 6-9 cm above the sole
missing = [str(p) for p in (*CLIPS, MODEL) if not p.is_file()]


def _show(model: Path, *, multiview: dict | None = None, calibrations: list[str | None] | None = None) -> dict:
    """Two cameras (the demo clip twice, 1080x1920, as cam01) following one performer."""
    calibrations = calibrations or [str(CALIBRATION / "cam01.yaml"), str(CALIBRATION / "cam02.yaml")]
    cameras = [{"id": f"cam0{i + 1}", "uri": str(DEMO_CLIP)} for i in range(2)]
    for camera, calibration in zip(cameras, calibrations):
        if calibration is not None:
            camera["calibration"] = calibration
    show = {
        "show": "mv",
        "cameras": cameras,
        "performers": [{"name": "alice", "cameras": {"cam01": "anywhere", "cam02": "anywhere"}}],
        "model": {"path": str(model), "backend": "onnxruntime", "device": "cpu"},
    }
    if multiview is not None:
        show["multiview"] = multiview
    return show


def raw_points(poses: list[dict]) -> np.ndarray:
    """(T, 16, 3) the record's triangulated joints before smoothing (``raw3d``), NaN where not triangulated."""
    return np.array([[[np.nan if v is None else v for v in j[:3]] for j in r["raw3d"]] for r in poses])


def _one_line_error(path: Path, key: str | None = None) -> str:
    """The one-line error loading ``path``; with ``key``, also that the line it names holds ``key:``."""
    with pytest.raises(ConfigError) as info:
        load_show(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{path}:")
    if key is not None:
        line = int(message[len(str(path)) + 1 :].split(":", 1)[0])
        assert f"{key}:" in path.read_text().splitlines()[line - 1], message
    return message


def test_performer_in_two_cameras_needs_multiview(tmp_path: Path, small_onnx: Path, capsys) -> None:
    path = write_show(tmp_path, _show(small_onnx))
    message = _one_line_error(path, "cameras")
    assert "field 'performers[0].cameras':" in message and "'multiview:' section" in message
    assert main(["check", "--show", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "performers[0].cameras" in err


def test_multiview_needs_extrinsics_and_a_calibration(tmp_path: Path, small_onnx: Path) -> None:
    calibration = yaml.safe_load((CALIBRATION / "cam02.yaml").read_text())
    del calibration["extrinsics"]
    bare = tmp_path / "cam02_no_extrinsics.yaml"
    bare.write_text(yaml.safe_dump(calibration, sort_keys=False))
    path = write_show(tmp_path, _show(small_onnx, multiview={}, calibrations=[str(CALIBRATION / "cam01.yaml"),
                                                                                str(bare)]))  # fmt: skip
    message = _one_line_error(path, "calibration")
    assert "field 'cameras[1].calibration'" in message and "no 'extrinsics'" in message
    path = write_show(tmp_path, _show(small_onnx, multiview={}, calibrations=[str(CALIBRATION / "cam01.yaml"), None]))
    message = _one_line_error(path)
    assert "field 'cameras[1]'" in message and "calibration" in message


@pytest.mark.parametrize(
    ("section", "field", "words"),
    [
        ({"min_views": 1}, "multiview.min_views", "min_views must be"),
        ({"max_reprojection_px": 0}, "multiview.max_reprojection_px", "must be a finite number > 0"),
        ({"min_confidence": 1.0}, "multiview.min_confidence", "below 1"),
        ({"association": "nearest"}, "multiview.association", "allowed: 'by_name', 'epipolar'"),
        ({"sync_wait_ms": 500}, "multiview.sync_wait_ms", "sync_wait_ms must be"),
        ({"sync_tolerance_ms": 0}, "multiview.sync_tolerance_ms", "sync_tolerance_ms must be"),
        ({"min_height_m": "floor"}, "multiview.min_height_m", "expected a number, got 'floor'"),
        ({"min_height_m": -500}, "multiview.min_height_m", "min_height_m must be"),
        ({"views": 2}, "multiview.views", "unknown key; allowed keys: enabled, min_views"),
    ],
)  # fmt: skip
def test_multiview_fields_are_checked(tmp_path: Path, small_onnx: Path, section: dict, field: str, words: str) -> None:
    message = _one_line_error(write_show(tmp_path, _show(small_onnx, multiview=section)), field.split(".")[-1])
    assert f"field '{field}'" in message and words in message


def test_check_accepts_a_multiview_show(tmp_path: Path, small_onnx: Path, capsys) -> None:
    path = write_show(tmp_path, _show(small_onnx, multiview={"min_views": 2, "max_reprojection_px": 20.0}))
    assert main(["check", "--show", str(path)]) == 0
    assert "ok: show 'mv', 2 active camera(s)" in capsys.readouterr().out
    show = load_show(path)
    assert show.fused and show.multiview is not None and show.multiview.max_reprojection_px == 20.0
    assert show.multiview.min_height_m == -0.5  # joints under the floor are dropped unless the show says otherwise
    unlimited = write_show(tmp_path, _show(small_onnx, multiview={"min_height_m": None}), "unlimited.yaml")
    assert load_show(unlimited).multiview.min_height_m is None
    disabled = write_show(tmp_path, _show(small_onnx, multiview={"enabled": False}), "off.yaml")
    assert "'multiview:' section" in _one_line_error(disabled)  # off: one camera per performer again


def test_shipped_multiview_shows_load() -> None:
    for name, cameras in (("pose2sim_single", 4), ("pose2sim_multi", 4)):
        path = REPO / "show_configs" / f"{name}.yaml"
        if not path.is_file():
            pytest.fail(f"{path} missing")
        if not MODEL.is_file():
            pytest.skip(f"{MODEL} not present")
        show = load_show(path, replay_inputs=cameras)
        assert show.fused and len(show.active_cameras) == cameras
    live = REPO / "show_configs" / "pose2sim_multi_live.yaml"  # the same show with the clips as its cameras' feeds
    if (SHARED_DATA / "video" / "pose2sim_multi").is_dir():
        show = load_show(live)
        assert show.fused and [c.uri.split("/")[-1] for c in show.active_cameras] == [
            f"cam0{i}.mp4?loop=true" for i in range(1, 5)
        ]


@pytest.mark.skipif(bool(missing), reason=f"not present (../shared data or the shipped model): {missing}")
def test_replay_writes_3d_record_overlays_and_summary(tmp_path: Path, capsys) -> None:
    out = tmp_path / "p2s"
    config = yaml.safe_load(SHOW.read_text())  # the shipped show, sending OSC (world axes) to a real socket
    for camera in config["cameras"]:
        camera["calibration"] = str((SHOW.parent / camera["calibration"]).resolve())
    config["model"]["path"] = str(MODEL)
    collector = UdpCollector()
    config["outputs"] = {"osc": [{"name": "rx", "host": "127.0.0.1", "port": collector.port, "axes": "world"}]}
    show = write_show(tmp_path, config)
    args = ["replay", "--show", str(show), "--input", *map(str, CLIPS), "--out", str(out), "--no-progress", "--osc"]
    try:
        assert main([*args, "--max-frames", str(FRAMES)]) == 0
        time.sleep(0.2)
    finally:
        collector.close()
    printed = capsys.readouterr().out
    assert "3D: 10 frames of 4 cameras" in printed and "performer: 3D pose in" in printed
    record = read_record(out / "keypoints.jsonl")
    frames2d = [r for r in record if r["type"] == "frame"]
    assert sorted({r["camera"] for r in frames2d}) == ["cam01", "cam02", "cam03", "cam04"]
    assert len(frames2d) == 4 * FRAMES  # the per-camera 2D lines, as in a one-camera replay
    poses = [r for r in record if r["type"] == "pose3d"]
    assert len(poses) == FRAMES and {r["performer"] for r in poses} == {"performer"}
    for r in poses:
        assert {"t_capture", "performer", "joints3d", "views_used", "reprojection_px", "views"} <= set(r)
        assert r["t_capture"] > 1.5e9  # Unix seconds
        assert len(r["joints3d"]) == NUM_JOINTS and all(len(j) == 4 for j in r["joints3d"])
    times = [r["t_capture"] for r in poses]
    assert np.allclose(np.diff(times), 1 / 60, atol=2e-3)  # the clips' 60 fps
    # --osc: one bundle per step with /pose3d = the record's smoothed joints (world axes, float32)
    sent = [(tt, m) for tt, m in collector.messages() if m.address == "/stagepose/performer/pose3d"]
    status = [m.params[0] for _, m in collector.messages() if m.address == "/stagepose/performer/status"]
    assert len(sent) == len(status) == FRAMES and sum(status) >= 3
    for (timetag, message), line, tracked in zip(sent, poses, status):
        assert abs(timetag - line["t_capture"]) < 1e-3
        values = np.array(message.params, dtype=float).reshape(NUM_JOINTS, 4)
        expected = np.array([[0.0 if v is None else v for v in j] for j in line["joints3d"]])
        expected[expected[:, 3] == 0, :3] = 0.0  # unknown joints go out at the origin with confidence 0
        triangulated = sum(j[0] is not None for j in line["raw3d"])
        assert tracked == float(triangulated >= 6)  # tracking.min_joints joints triangulated in the step
        assert np.allclose(values, expected if tracked else 0.0, atol=6e-4)  # the record rounds: 0.1 mm, conf 0.001
    raw = raw_points(poses)
    ok = np.isfinite(raw).all(axis=2)
    assert ok.sum() >= 30  # joints triangulated in 10 frames (the 2D model starts from the whole frame)
    errors = np.array([e for r in poses for e in r["reprojection_px"] if e is not None])
    assert len(errors) == ok.sum() and np.median(errors) < 15.0
    # inside the capture volume (the shipped 2D model puts a few early joints on the treadmill, which two
    # views can agree on: up to a metre under the floor in the first 40 frames; the slow test below checks
    # feet and height over the whole clip)
    assert np.all(np.abs(raw[ok][:, :2]) < 5.0) and np.all((raw[ok][:, 2] > -1.5) & (raw[ok][:, 2] < 2.5))
    summary = json.loads((out / "summary3d.json").read_text())
    assert summary["frames"] == FRAMES and summary["skew_ms"]["max_ms"] < 1.0  # files in lockstep
    performer = summary["performers"]["performer"]
    assert 0.0 < performer["share_with_3d_pose"] <= 1.0
    assert performer["reprojection_px"]["median_used"] < 15.0
    for camera, clip in zip(("cam01", "cam02", "cam03", "cam04"), CLIPS):
        with av.open(str(out / f"overlay_{camera}.mp4")) as video:
            decoded = list(video.decode(video.streams.video[0]))
        with av.open(str(clip)) as video:
            size = (video.streams.video[0].width, video.streams.video[0].height)  # 1080 or 1088 x 1920
        assert len(decoded) == FRAMES and (decoded[0].width, decoded[0].height) == size
    # plausible body: the head top above the thorax (by its median: the first, whole-frame crops are rough,
    # 0.06 m measured over these 10 frames; the slow test below asks 0.1-0.6 m over the whole clip)
    head, thorax = raw[:, Joint.head_top, 2], raw[:, Joint.thorax, 2]
    both = np.isfinite(head) & np.isfinite(thorax)
    assert both.sum() >= 5 and 0.0 < np.median(head[both] - thorax[both]) < 0.6


@pytest.mark.slow
@pytest.mark.skipif(bool(missing), reason=f"not present (../shared data or the shipped model): {missing}")
def test_replay_whole_single_clip_is_a_plausible_body(tmp_path: Path, capsys) -> None:
    """All 100 frames (about 90 s on 2 cores): the README's numbers, with the shipped 2D model's tolerances."""
    out = tmp_path / "p2s"
    assert main(["replay", "--show", str(SHOW), "--input", *map(str, CLIPS), "--out", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    performer = json.loads((out / "summary3d.json").read_text())["performers"]["performer"]
    # measured (the shipped model): 0.96 of the steps (0.68 before crops followed the body's reach), 5.8 px,
    # feet 0.13 m; the step-14,337 model of the campaign: 0.95, 5.9 px, 0.14 m (0.22 before)
    assert performer["share_with_3d_pose"] >= 0.85
    assert performer["reprojection_px"]["median_used"] < 10.0
    assert abs(performer["lower_ankle_height_m"]["p50"]) < TOL_FLOOR_M  # feet near z = 0
    assert 1.2 <= performer["body_height_m"]["p50"] <= 2.2  # head top above the lower ankle: 1.37 m measured
    record = read_record(out / "keypoints.jsonl")
    raw = raw_points([r for r in record if r["type"] == "pose3d"])
    above = raw[:, Joint.head_top, 2] - raw[:, Joint.thorax, 2]
    assert np.isfinite(above).sum() >= 50 and 0.1 < np.nanmedian(above) < 0.6  # 0.23 m in 81 frames measured


@pytest.mark.skipif(bool(missing), reason=f"not present (../shared data or the shipped model): {missing}")
def test_replay_refuses_wrong_number_of_inputs(tmp_path: Path, capsys) -> None:
    code = main(["replay", "--show", str(SHOW), "--input", *map(str, CLIPS[:3]), "--out", str(tmp_path / "o"),
                 "--no-progress"])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert "3 input videos but the multiview show has 4 active cameras" in err and err.count("\n") == 1
