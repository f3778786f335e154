"""`stagepose calibrate extrinsics` and the extrinsics in the calibration file format.

The points are projected by a known camera (lens distortion included) with a little pixel noise; the
solved pose must recover it within TOL_M / TOL_DEG, through the library and end to end through the CLI.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from stagepose.calibration.extrinsics import fit_pose
from stagepose.calibration.files import (
    CameraCalibration,
    Extrinsics,
    Intrinsics,
    StageCalibration,
    load_calibration,
    matrix3,
    save_calibration,
)
from stagepose.cli import main
from stagepose.errors import ConfigError
from stagepose.multiview.synthetic import look_at

SIZE = (1280, 720)
K = np.array([[1000.0, 0.0, 641.0], [0.0, 1000.0, 358.0], [0.0, 0.0, 1.0]])
DIST = np.array([-0.12, 0.06, 0.0004, -0.0002])
CAMERA_AT = np.array([1.5, -7.0, 3.2])
R_TRUE, T_TRUE = look_at(CAMERA_AT, np.array([0.0, 2.0, 0.5]))
POINTS = {
    "DSL": (-3.0, 0.0), "DSC": (0.0, 0.0), "DSR": (3.0, 0.0), "CSL": (-2.0, 2.5), "CSR": (2.0, 2.5),
    "USL": (-3.0, 5.0), "USR": (3.0, 5.0), "riser": (1.0, 3.0, 0.6), "truss": (-1.0, 4.0, 2.5),
}  # fmt: skip
TOL_M = 0.03
TOL_DEG = 0.2


def _world(name: str) -> np.ndarray:
    p = POINTS[name]
    return np.array([p[0], p[1], p[2] if len(p) == 3 else 0.0])


def _pixels(names: list[str], noise: float = 0.3, seed: int = 0) -> np.ndarray:
    world = np.array([_world(n) for n in names])
    px, _ = cv2.projectPoints(world, cv2.Rodrigues(R_TRUE)[0], T_TRUE, K, DIST)
    return px.reshape(-1, 2) + np.random.default_rng(seed).normal(0, noise, (len(names), 2))


def _angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.degrees(np.linalg.norm(cv2.Rodrigues(a @ b.T)[0])))


def test_fit_pose_recovers_a_known_camera() -> None:
    names = list(POINTS)
    fit = fit_pose(names, np.array([_world(n) for n in names]), _pixels(names), K, DIST)
    assert np.linalg.norm(fit.centre - CAMERA_AT) < TOL_M
    assert _angle_deg(fit.R, R_TRUE) < TOL_DEG
    assert fit.rms_px < 1.0 and fit.errors_px.shape == (len(names),)


def test_floor_points_only_are_enough() -> None:
    names = [n for n in POINTS if len(POINTS[n]) == 2]
    fit = fit_pose(names, np.array([_world(n) for n in names]), _pixels(names, seed=1), K, DIST)
    assert np.linalg.norm(fit.centre - CAMERA_AT) < TOL_M and _angle_deg(fit.R, R_TRUE) < TOL_DEG


def test_fit_pose_refuses_what_it_cannot_solve() -> None:
    names = list(POINTS)[:5]
    with pytest.raises(ConfigError, match="at least 6 are needed"):
        fit_pose(names, np.array([_world(n) for n in names]), _pixels(names), K, DIST)
    line = [f"p{i}" for i in range(7)]
    world = np.array([[i * 0.5, 0.0, 0.0] for i in range(7)])
    with pytest.raises(ConfigError, match="on one line"):
        fit_pose(line, world, np.random.default_rng(0).uniform(0, 700, (7, 2)), K, DIST)
    # a left-handed venue (x to stage right, y upstage): the mirror image puts the camera under the floor
    floor = [n for n in POINTS if len(POINTS[n]) == 2]
    mirrored = np.array([_world(n) * [-1.0, 1.0, 1.0] for n in floor])
    with pytest.raises(ConfigError, match="BELOW the floor"):
        fit_pose(floor, mirrored, _pixels(floor), K, DIST)


def test_extrinsics_in_the_file_format(tmp_path) -> None:
    rvec = cv2.Rodrigues(R_TRUE)[0].ravel()
    as_matrix = Extrinsics(rotation=matrix3(R_TRUE, 15), translation_m=tuple(T_TRUE))
    as_rodrigues = Extrinsics(rodrigues=tuple(rvec), translation_m=tuple(T_TRUE))
    np.testing.assert_allclose(as_matrix.R, as_rodrigues.R, atol=1e-12)
    np.testing.assert_allclose(as_rodrigues.centre, CAMERA_AT, atol=1e-9)
    with pytest.raises(ValueError, match="give the rotation once"):
        Extrinsics(rotation=matrix3(R_TRUE), rodrigues=tuple(rvec), translation_m=(0.0, 0.0, 0.0))
    with pytest.raises(ValueError, match="not orthonormal"):
        Extrinsics(rotation=matrix3(R_TRUE * 1.01), translation_m=(0.0, 0.0, 0.0))
    with pytest.raises(ValueError, match="right-handed"):
        Extrinsics(rotation=matrix3(R_TRUE @ np.diag([1.0, 1.0, -1.0])), translation_m=(0.0, 0.0, 0.0))

    lens = Intrinsics(camera_matrix=matrix3(K), distortion=tuple(DIST), rms_px=0.2)
    path = save_calibration(tmp_path / "cam.yaml", CameraCalibration(1, SIZE, lens, "cam", extrinsics=as_rodrigues))
    loaded = load_calibration(path)
    assert loaded.extrinsics == as_rodrigues and "rodrigues:" in path.read_text()
    # an old file without extrinsics still loads (the shipped example is one)
    assert load_calibration(Path(__file__).resolve().parents[1] / "calibration" / "cam01.yaml").extrinsics is None
    text = path.read_text().replace("translation_m:", "translation_mm:")
    (tmp_path / "typo.yaml").write_text(text)
    with pytest.raises(ConfigError, match=r"typo.yaml:\d+: field 'extrinsics.translation_mm': unknown key"):
        load_calibration(tmp_path / "typo.yaml")


def _setup(tmp_path: Path, marked: list[str], stage: bool = False) -> tuple[Path, Path, Path]:
    lens = Intrinsics(camera_matrix=matrix3(K), distortion=tuple(DIST), rms_px=0.2, views=12)
    homography = StageCalibration(
        homography=((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)), rms_cm=1.0, max_cm=2.0
    )
    out = save_calibration(
        tmp_path / "cam07.yaml", CameraCalibration(1, SIZE, lens, "cam07", stage=homography if stage else None)
    )
    pixels = dict(zip(marked, _pixels(marked))) if marked else {}
    points = []
    for name, stage in POINTS.items():
        entry: dict[str, object] = {"name": name, "stage": list(stage)}
        if name in pixels:
            entry["pixel"] = [round(float(v), 2) for v in pixels[name]]
        points.append(entry)
    spec = {"origin": "downstage centre; x to stage left, y upstage, z up", "grid_step_m": 1.0, "points": points}
    (tmp_path / "points.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    frame = np.full((SIZE[1], SIZE[0], 3), 80, np.uint8)
    cv2.imwrite(str(tmp_path / "frame.png"), frame)
    return out, tmp_path / "points.yaml", tmp_path / "frame.png"


def test_cli_end_to_end_keeps_the_stage_section(tmp_path, capsys) -> None:
    out, points, frame = _setup(tmp_path, list(POINTS), stage=True)
    argv = ["calibrate", "extrinsics", "--image", str(frame), "--points", str(points), "--out", str(out)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "reprojection error RMS" in text and "m above the floor" in text
    found = re.search(r"camera at x (\S+) m, y (\S+) m, (\S+) m above the floor", text)
    assert found and np.allclose([float(v) for v in found.groups()], CAMERA_AT, atol=TOL_M), text
    calibration = load_calibration(out)
    ext = calibration.extrinsics
    assert np.linalg.norm(ext.centre - CAMERA_AT) < TOL_M and ext.rms_px < 1.0 and len(ext.points) == len(POINTS)
    assert ext.world.startswith("downstage centre") and ext.source.startswith("solvePnP from 9 points")
    assert calibration.stage is not None and calibration.stage.rms_cm == 1.0  # kept
    check = cv2.imread(str(tmp_path / "cam07_extrinsics_check.png"))
    assert check.shape[0] == SIZE[1] and check.shape[1] > SIZE[0]


def test_cli_with_too_few_points_draws_the_aid(tmp_path, capsys) -> None:
    out, points, frame = _setup(tmp_path, list(POINTS)[:4])
    assert main(["calibrate", "extrinsics", "--image", str(frame), "--points", str(points), "--out", str(out)]) == 1
    assert "4 of 9 points have pixel positions (at least 6 needed)" in capsys.readouterr().out
    assert (tmp_path / "cam07_extrinsics_aid.png").is_file() and load_calibration(out).extrinsics is None


def test_cli_errors_are_one_line(tmp_path, capsys) -> None:
    out, points, frame = _setup(tmp_path, list(POINTS))
    bad = tmp_path / "bad.yaml"
    spec = yaml.safe_load(points.read_text())
    spec["points"][7]["stage"] = [1.0, 3.0, 0.6, 9.0]
    bad.write_text(yaml.safe_dump(spec, sort_keys=False))
    assert main(["calibrate", "extrinsics", "--image", str(frame), "--points", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bad.yaml:" in err and "[x, y] (on the floor) or [x, y, height]" in err
    small = tmp_path / "small.png"
    cv2.imwrite(str(small), np.zeros((480, 640, 3), np.uint8))
    assert main(["calibrate", "extrinsics", "--image", str(small), "--points", str(points), "--out", str(out)]) == 2
    assert "measured at 1280x720 but the frame is 640x480" in capsys.readouterr().err
    nolens = tmp_path / "new.yaml"
    assert main(["calibrate", "extrinsics", "--image", str(frame), "--points", str(points), "--out", str(nolens)]) == 2
    assert "no lens calibration" in capsys.readouterr().err


def test_rig_refuses_a_file_without_extrinsics(tmp_path) -> None:
    from stagepose.multiview.cameras import Rig

    out, _, _ = _setup(tmp_path, [])
    pose = Extrinsics(rotation=matrix3(R_TRUE, 15), translation_m=tuple(T_TRUE))
    posed = replace(load_calibration(out), camera="cam08", extrinsics=pose)
    other = save_calibration(tmp_path / "cam08.yaml", posed)
    with pytest.raises(ConfigError, match="cam07.yaml: no 'extrinsics'"):
        Rig.load([other, out])
    with pytest.raises(ConfigError, match="at least 2 cameras"):
        Rig.load([other])


def test_a_new_stage_calibration_keeps_the_extrinsics(tmp_path, capsys) -> None:
    out, points, frame = _setup(tmp_path, list(POINTS))
    assert main(["calibrate", "extrinsics", "--image", str(frame), "--points", str(points), "--out", str(out)]) == 0
    before = load_calibration(out).extrinsics
    capsys.readouterr()
    # the same points file: the stage fit takes its floor points and says which it leaves out
    assert main(["calibrate", "stage", "--image", str(frame), "--points", str(points), "--out", str(out)]) == 0
    said = capsys.readouterr()
    assert "'truss' is 2.50 m above the floor: left out of the floor fit" in said.out + said.err
    after = load_calibration(out)
    assert after.stage is not None and after.extrinsics is not None
    assert np.allclose(after.extrinsics.centre, before.centre)
