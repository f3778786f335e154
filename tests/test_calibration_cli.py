"""`stagepose calibrate intrinsics|stage` end to end through `stagepose.cli.main`, into tmp_path.

Chessboard photos and a chessboard video are rendered from a known camera; the stage points are
projected by a known camera pose; the real pose2sim photos are used where present.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from calibration_synthetic import SyntheticCamera, random_board_poses

from stagepose.calibration.files import load_calibration
from stagepose.calibration.geometry import look_at_pose
from stagepose.calibration.mapper import StageMapper
from stagepose.cli import main

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "calibration_pose2sim"
needs_pose2sim = pytest.mark.skipif(not SHARED.is_dir(), reason=f"pose2sim calibration data not found at {SHARED}")

SIZE = (800, 600)
TRUE_K = np.array([[700.0, 0.0, 398.0], [0.0, 700.0, 305.0], [0.0, 0.0, 1.0]])
TRUE_DIST = np.array([-0.18, 0.05, 0.0, 0.0])
POSE = look_at_pose((0.3, -7.0, 4.0), (0.0, 2.5))
MARKS = {
    "DSL": (-3.0, 0.0), "DSC": (0.0, 0.0), "DSR": (3.0, 0.0), "CSL": (-2.0, 2.5),
    "CSR": (2.0, 2.5), "USL": (-3.0, 5.0), "USC": (0.0, 5.0), "USR": (3.0, 5.0),
}  # fmt: skip
TOL_CM = 1.0


@pytest.fixture(scope="module")
def camera() -> SyntheticCamera:
    return SyntheticCamera(TRUE_K, TRUE_DIST, SIZE)


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory, camera) -> Path:
    """10 chessboard photos of the known camera and one photo without a board."""
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(11)
    for i, (rvec, tvec) in enumerate(random_board_poses(camera, (6, 4), 0.04, 10, rng)):
        cv2.imwrite(str(folder / f"board_{i:02d}.png"), camera.render_board((6, 4), 0.04, rvec, tvec, rng))
    cv2.imwrite(str(folder / "lens_cap.png"), np.full((SIZE[1], SIZE[0]), 20, np.uint8))
    return folder


@pytest.fixture(scope="module")
def lens_file(tmp_path_factory, photo_dir) -> Path:
    out = tmp_path_factory.mktemp("cal") / "cam.yaml"
    argv = ["calibrate", "intrinsics", "--images", str(photo_dir), "--board", "6x4", "--square", "0.04"]
    assert main([*argv, "--out", str(out), "--no-progress"]) == 0
    return out


def _points_file(path: Path, with_pixels: bool, guess: bool = True) -> Path:
    xy = np.array(list(MARKS.values()))
    pixels = POSE.project(TRUE_K, TRUE_DIST, np.column_stack([xy, np.zeros(len(xy))]))
    points = []
    for (name, stage), px in zip(MARKS.items(), pixels):
        entry = {"name": name, "stage": list(stage)}
        if with_pixels:
            entry["pixel"] = [round(float(px[0]), 2), round(float(px[1]), 2)]
        points.append(entry)
    data = {"origin": "downstage centre; x to stage left, y upstage", "points": points}
    if guess:
        data["camera_guess"] = {"position": [0.0, -7.5, 4.0], "look_at": [0.0, 2.0]}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _frame(path: Path, size: tuple[int, int] = SIZE) -> Path:
    frame = np.full((size[1], size[0], 3), 90, np.uint8)
    cv2.rectangle(frame, (100, 350), (700, 560), (60, 60, 60), -1)  # something to draw over
    cv2.imwrite(str(path), frame)
    return path


def test_intrinsics_from_photos(lens_file: Path, capsys) -> None:
    calibration = load_calibration(lens_file)
    assert calibration.version == 1 and calibration.image_size == SIZE
    assert calibration.intrinsics.K[0, 0] == pytest.approx(TRUE_K[0, 0], rel=0.01)
    assert calibration.intrinsics.rms_px < 0.3
    assert calibration.intrinsics.views == 10


def test_intrinsics_output_names_the_rejected_photo(photo_dir, tmp_path, capsys) -> None:
    out = tmp_path / "cam.yaml"
    argv = ["calibrate", "intrinsics", "--images", str(photo_dir), "--board", "6x4", "--square", "0.04"]
    assert main([*argv, "--out", str(out), "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "RMS reprojection error" in captured.out and "board_09.png" in captured.out
    assert "warning: 1 of 11 images rejected: lens_cap.png (board not found)" in captured.err


def test_intrinsics_from_a_video(tmp_path, camera, capsys) -> None:
    import av

    video = tmp_path / "board.mp4"
    rng = np.random.default_rng(5)
    poses = random_board_poses(camera, (6, 4), 0.04, 12, rng)
    with av.open(str(video), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = SIZE[0], SIZE[1], "yuv420p"
        stream.options = {"crf": "12", "preset": "ultrafast"}
        for rvec, tvec in poses:
            image = cv2.cvtColor(camera.render_board((6, 4), 0.04, rvec, tvec, rng), cv2.COLOR_GRAY2BGR)
            for _ in range(3):  # each pose held for 3 frames: near-duplicates to skip
                for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                    container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    out = tmp_path / "cam.yaml"
    argv = ["calibrate", "intrinsics", "--video", str(video), "--board", "6x4", "--square", "0.04", "--every", "1"]
    assert main([*argv, "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "video frames too similar to a view already kept" in captured.out  # the held frames
    assert "finding the chessboard" in captured.err  # the progress bar
    calibration = load_calibration(out)
    assert 10 <= calibration.intrinsics.views <= 12
    assert calibration.intrinsics.K[0, 0] == pytest.approx(TRUE_K[0, 0], rel=0.01)


@needs_pose2sim
def test_intrinsics_on_the_real_pose2sim_photos(tmp_path, capsys) -> None:
    out = tmp_path / "cam02.yaml"
    folder = SHARED / "intrinsics" / "int_cam02_img"
    argv = ["calibrate", "intrinsics", "--images", str(folder), "--board", "4x7", "--square", "0.06"]
    assert main([*argv, "--out", str(out), "--no-progress"]) == 0
    assert load_calibration(out).intrinsics.rms_px < 1.0
    assert "cam02_06_int.jpg (board not found)" in capsys.readouterr().err


def test_intrinsics_usage_errors(tmp_path, photo_dir, capsys) -> None:
    def run(images: Path, board: str, square: str) -> int:
        argv = ["calibrate", "intrinsics", "--images", str(images), "--board", board, "--square", square]
        return main([*argv, "--out", str(tmp_path / "c.yaml"), "--no-progress"])

    assert run(photo_dir, "6x4", "40") == 2  # millimetres by mistake
    assert "give it in metres (60 mm is 0.06)" in capsys.readouterr().err
    assert run(photo_dir, "7x5", "0.04") == 2  # squares counted instead of inner corners
    assert "INNER corners" in capsys.readouterr().err
    assert run(tmp_path / "none", "6x4", "0.04") == 2
    assert "no such folder" in capsys.readouterr().err
    not_video = tmp_path / "notes.mp4"
    not_video.write_text("not a video")
    argv = ["calibrate", "intrinsics", "--video", str(not_video), "--board", "6x4", "--square", "0.04"]
    assert main([*argv, "--out", str(tmp_path / "c.yaml")]) == 2
    assert "cannot open as a video" in capsys.readouterr().err
    assert not (tmp_path / "c.yaml").exists()


def test_stage_end_to_end(lens_file: Path, tmp_path, capsys) -> None:
    out = tmp_path / "cam.yaml"
    out.write_text(lens_file.read_text())
    points = _points_file(tmp_path / "points.yaml", with_pixels=True)
    frame = _frame(tmp_path / "frame.png")
    assert main(["calibrate", "stage", "--image", str(frame), "--points", str(points), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "leave-one-out RMS" in captured.out and "check image" in captured.out
    check = cv2.imread(str(tmp_path / "cam_stage_check.png"))
    assert check.shape[0] == SIZE[1] and check.shape[1] > SIZE[0]

    calibration = load_calibration(out)
    assert calibration.stage.rms_cm < TOL_CM and len(calibration.stage.points) == len(MARKS)
    assert calibration.stage.origin.startswith("downstage centre")
    mapper = StageMapper.from_file(out, SIZE)
    test_xy = np.random.default_rng(8).uniform([-3.0, 0.0], [3.0, 5.0], size=(30, 2))
    pixels = POSE.project(TRUE_K, TRUE_DIST, np.column_stack([test_xy, np.zeros(len(test_xy))]))
    errors_cm = np.linalg.norm(mapper.to_stage(pixels) - test_xy, axis=1) * 100
    assert errors_cm.max() < TOL_CM, errors_cm.max()


def test_new_intrinsics_remove_the_stale_stage_calibration(lens_file, photo_dir, tmp_path, capsys) -> None:
    out = tmp_path / "cam.yaml"
    out.write_text(lens_file.read_text())
    points = _points_file(tmp_path / "points.yaml", with_pixels=True)
    assert (
        main(
            [
                "calibrate",
                "stage",
                "--image",
                str(_frame(tmp_path / "f.png")),
                "--points",
                str(points),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert load_calibration(out).stage is not None
    argv = ["calibrate", "intrinsics", "--images", str(photo_dir), "--board", "6x4", "--square", "0.04"]
    assert main([*argv, "--out", str(out), "--no-progress"]) == 0
    assert load_calibration(out).stage is None
    assert "had a stage calibration" in capsys.readouterr().err


def test_stage_without_pixels_draws_the_grid_aid(lens_file, tmp_path, capsys) -> None:
    points = _points_file(tmp_path / "points.yaml", with_pixels=False)
    frame = _frame(tmp_path / "frame.png")
    aid = tmp_path / "aid.png"
    argv = ["calibrate", "stage", "--image", str(frame), "--points", str(points), "--out", str(tmp_path / "new.yaml")]
    assert main([*argv, "--intrinsics", str(lens_file), "--aid-image", str(aid)]) == 1
    captured = capsys.readouterr()
    assert "not calibrated yet: 0 of 8 points" in captured.out
    image = cv2.imread(str(aid))
    assert image.shape[0] == SIZE[1] and image.shape[1] > SIZE[0]
    # the guess is drawn: magenta expected-place circles appear in the picture part
    magenta = (image[:, : SIZE[0], 0] > 200) & (image[:, : SIZE[0], 1] < 120) & (image[:, : SIZE[0], 2] > 200)
    assert magenta.sum() > 100
    assert not (tmp_path / "new.yaml").exists()


def test_stage_errors_are_specific(lens_file, tmp_path, capsys) -> None:
    out = tmp_path / "cam.yaml"
    out.write_text(lens_file.read_text())
    points = _points_file(tmp_path / "points.yaml", with_pixels=True)

    wrong_size = _frame(tmp_path / "hd.png", (1280, 720))
    assert main(["calibrate", "stage", "--image", str(wrong_size), "--points", str(points), "--out", str(out)]) == 2
    assert "measured at 800x600 but the frame is 1280x720" in capsys.readouterr().err

    frame = _frame(tmp_path / "frame.png")
    bad = tmp_path / "bad.yaml"
    bad.write_text(points.read_text().replace("stage:\n  - -3.0\n  - 0.0", "stage:\n  - -3.0\n  - zero", 1))
    assert main(["calibrate", "stage", "--image", str(frame), "--points", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml:" in err and "field 'points[0].stage[1]': expected a number" in err

    outside = tmp_path / "outside.yaml"
    outside.write_text(yaml.safe_dump({"points": [{"name": "A", "stage": [0, 0], "pixel": [5000, 10]}] * 1}))
    assert main(["calibrate", "stage", "--image", str(frame), "--points", str(outside), "--out", str(out)]) == 2
    assert "outside the 800x600 frame" in capsys.readouterr().err

    no_lens = tmp_path / "nolens.yaml"
    assert main(["calibrate", "stage", "--image", str(frame), "--points", str(points), "--out", str(no_lens)]) == 2
    assert "no lens calibration" in capsys.readouterr().err
