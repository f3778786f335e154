"""Calibration library: lens intrinsics, calibration files, stage homography and the runtime mapper.

Ground truth comes from synthetic views of a known camera (stagepose.calibration.synthetic) and from
the real pose2sim calibration photos (../shared/data, skipped when absent).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from calibration_synthetic import SyntheticCamera, random_board_poses, standing_person

from stagepose.calibration.files import (
    CameraCalibration,
    Intrinsics,
    load_calibration,
    matrix3,
    save_calibration,
)
from stagepose.calibration.geometry import look_at_pose
from stagepose.calibration.intrinsics import Board, calibrate_intrinsics, list_images, read_images
from stagepose.calibration.mapper import StageMapper
from stagepose.calibration.stage import fit_stage, load_points
from stagepose.errors import ConfigError, DataError
from stagepose.skeleton import NUM_JOINTS, Joint

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "calibration_pose2sim" / "intrinsics"
needs_pose2sim = pytest.mark.skipif(not DATA.is_dir(), reason=f"pose2sim calibration photos not found at {DATA}")

TOL_CM = 1.0
BOARD = Board(7, 5, 0.03)
TRUE_K = np.array([[820.0, 0.0, 405.0], [0.0, 818.0, 296.0], [0.0, 0.0, 1.0]])
TRUE_DIST = np.array([-0.25, 0.09, 0.0012, -0.0008])


@pytest.fixture(scope="module")
def board_images() -> list[tuple[str, np.ndarray]]:
    """12 rendered chessboard views of the true camera (800x600, strong barrel distortion)."""
    camera = SyntheticCamera(TRUE_K, TRUE_DIST, (800, 600))
    rng = np.random.default_rng(7)
    poses = random_board_poses(camera, (BOARD.cols, BOARD.rows), BOARD.square_m, 12, rng)
    return [(f"view{i:02d}.png", camera.render_board((7, 5), 0.03, r, t, rng)) for i, (r, t) in enumerate(poses)]


# --- intrinsics ----------------------------------------------------------------------------------


def test_synthetic_board_recovers_known_intrinsics(board_images) -> None:
    result = calibrate_intrinsics(board_images, BOARD, progress=False)
    assert result.image_size == (800, 600)
    assert len(result.views) == 12 and not result.rejected
    assert result.K[0, 0] == pytest.approx(TRUE_K[0, 0], rel=0.01)
    assert result.K[1, 1] == pytest.approx(TRUE_K[1, 1], rel=0.01)
    assert result.K[0, 2] == pytest.approx(TRUE_K[0, 2], abs=4.0)
    assert result.K[1, 2] == pytest.approx(TRUE_K[1, 2], abs=4.0)
    assert result.dist[0] == pytest.approx(TRUE_DIST[0], abs=0.02)
    assert result.rms_px < 0.3
    assert not result.outliers


def test_board_not_found_is_named_and_a_torn_view_is_an_outlier(board_images) -> None:
    camera = SyntheticCamera(TRUE_K, TRUE_DIST, (800, 600))
    rng = np.random.default_rng(3)
    rvec, tvec = random_board_poses(camera, (7, 5), 0.03, 1, rng)[0]
    odd = camera.render_board((7, 5), 0.03, rvec, tvec, rng)
    # a board moved during a rolling-shutter exposure: its lower half lands 8 px to the right
    rows = np.where((odd < 100).any(axis=1))[0]
    mid = (rows.min() + rows.max()) // 2
    odd[mid:] = np.roll(odd[mid:], 8, axis=1)
    blank = np.full((600, 800), 128, np.uint8)
    frames = [*board_images, ("moving.png", odd), ("empty_wall.png", blank)]
    result = calibrate_intrinsics(frames, BOARD, progress=False)
    assert result.rejected == [("empty_wall.png", "board not found")]
    assert [name for name, _ in result.outliers] == ["moving.png"]
    text = " ".join(result.warnings())
    assert "empty_wall.png (board not found)" in text and "moving.png" in text

    cleaned = calibrate_intrinsics(frames, BOARD, progress=False, drop_outliers=True)
    assert [name for name, _ in cleaned.dropped] == ["moving.png"]
    assert "moving.png" not in cleaned.views
    assert cleaned.rms_px < result.rms_px
    assert cleaned.K[0, 0] == pytest.approx(TRUE_K[0, 0], rel=0.01)


def test_too_few_boards_is_a_clear_error() -> None:
    blank = np.full((600, 800), 128, np.uint8)
    with pytest.raises(DataError, match="INNER corners"):
        calibrate_intrinsics([("a.png", blank), ("b.png", None)], BOARD, progress=False)


def test_board_spec_parsing() -> None:
    assert Board.parse("4x7", 0.06) == Board(4, 7, 0.06)
    with pytest.raises(ConfigError, match="COLSxROWS"):
        Board.parse("4-7", 0.06)
    with pytest.raises(ConfigError, match="metres"):
        Board.parse("4x7", 60)


@needs_pose2sim
@pytest.mark.parametrize("camera", ["cam01", "cam02"])
def test_real_pose2sim_photos_calibrate_below_one_pixel(camera: str) -> None:
    files = list_images(DATA / f"int_{camera}_img")
    result = calibrate_intrinsics(read_images(files), Board(4, 7, 0.06), total=len(files), progress=False)
    assert result.image_size == (1088, 1920)
    assert result.rms_px < 1.0
    assert (result.view_errors_px < 1.0).all()
    # the four pose2sim cameras are the same model: about 1674 px focal length at this resolution
    assert result.K[0, 0] == pytest.approx(1674, rel=0.02)
    if camera == "cam02":  # cam02_06 shows the board edge-on: no corners to find
        assert [name for name, _ in result.rejected] == ["cam02_06_int.jpg"]
        assert "cam02_06_int.jpg" in result.warnings()[0]


# --- calibration files ---------------------------------------------------------------------------


def _calibration(stage=None, size=(800, 600)) -> CameraCalibration:
    lens = Intrinsics(camera_matrix=matrix3(TRUE_K), distortion=tuple(TRUE_DIST), rms_px=0.1, views=12)
    return CameraCalibration(version=1, image_size=size, intrinsics=lens, camera="cam", stage=stage)


def test_calibration_file_round_trip(tmp_path) -> None:
    path = save_calibration(tmp_path / "cam.yaml", _calibration())
    loaded = load_calibration(path)
    assert loaded == _calibration()
    np.testing.assert_allclose(loaded.intrinsics.K, TRUE_K)
    assert path.read_text().splitlines()[3] == "version: 1"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace("version: 1", "version: 2"), r"cam.yaml:4: calibration format version 2 is not supported"),
        (lambda t: t.replace("version: 1\n", ""), r"'version' is missing"),
        (
            lambda t: t.replace("  rms_px: 0.1\n", ""),
            r"cam.yaml:\d+: field 'intrinsics.rms_px': required field is missing",
        ),
        (
            lambda t: t.replace("rms_px: 0.1", "rms_px: low"),
            r"cam.yaml:\d+: field 'intrinsics.rms_px': expected a number",
        ),
        (
            lambda t: t.replace("image_size: [800, 600]", "image_size: [800]"),
            r"field 'image_size': expected a list of 2",
        ),
        (lambda t: t.replace("distortion: [", "distortion: [0.0, "), r"distortion has 5 coefficients|cam.yaml"),
        (lambda t: t.replace("distortion: [-0.25, ", "distortion: ["), r"distortion has 3 coefficients"),
    ],
)
def test_bad_calibration_files_name_file_and_field(tmp_path, edit, message) -> None:
    path = save_calibration(tmp_path / "cam.yaml", _calibration())
    text = path.read_text()
    edited = edit(text)
    assert edited != text
    path.write_text(edited)
    if "5 coefficients" in message:  # five coefficients are valid (k3 added): it must load
        assert len(load_calibration(path).intrinsics.distortion) == 5
        return
    with pytest.raises(ConfigError, match=message):
        load_calibration(path)


# --- stage homography ----------------------------------------------------------------------------

STAGE_K = np.array([[1400.0, 0.0, 962.0], [0.0, 1400.0, 538.0], [0.0, 0.0, 1.0]])
STAGE_DIST = np.array([-0.12, 0.05, 0.0, 0.0])
STAGE_SIZE = (1920, 1080)
MARKS = np.array([[-4.0, 0.0], [0.0, 0.0], [4.0, 0.0], [-3.0, 3.0], [3.0, 3.0], [-4.0, 6.0], [0.0, 6.0], [4.0, 6.0]])


def _stage_mapper(left_handed: bool = False, noise_px: float = 0.2) -> tuple[StageMapper, object]:
    """Fit a homography to marks projected by a known camera 5 m up, 9 m downstage of centre."""
    pose = look_at_pose((0.5, -9.0, 5.0), (0.0, 3.0), roll_deg=2.0, left_handed=left_handed)
    pixels = pose.project(STAGE_K, STAGE_DIST, np.column_stack([MARKS, np.zeros(len(MARKS))]))
    pixels += np.random.default_rng(1).normal(0.0, noise_px, pixels.shape)
    fit = fit_stage([f"m{i}" for i in range(len(MARKS))], MARKS, pixels, STAGE_K, STAGE_DIST)
    lens = Intrinsics(camera_matrix=matrix3(STAGE_K), distortion=tuple(STAGE_DIST), rms_px=0.2)
    calibration = CameraCalibration(
        version=1, image_size=STAGE_SIZE, intrinsics=lens, camera="syn", stage=fit.calibration()
    )
    return StageMapper(calibration, STAGE_SIZE), pose


@pytest.mark.parametrize("left_handed", [False, True])
def test_stage_homography_maps_test_points_within_a_centimetre(left_handed: bool) -> None:
    mapper, pose = _stage_mapper(left_handed)
    test_xy = np.random.default_rng(2).uniform([-4.5, -0.5], [4.5, 6.5], size=(40, 2))
    pixels = pose.project(STAGE_K, STAGE_DIST, np.column_stack([test_xy, np.zeros(len(test_xy))]))
    errors_cm = np.linalg.norm(mapper.to_stage(pixels) - test_xy, axis=1) * 100
    assert errors_cm.max() < TOL_CM, errors_cm.max()
    assert mapper.calibration.stage.rms_cm < TOL_CM
    np.testing.assert_allclose(mapper.camera_position, [0.5, -9.0, 5.0], atol=0.05)


def test_to_stage_gives_nan_above_the_horizon_and_for_unknown_points() -> None:
    mapper, pose = _stage_mapper()
    horizon_up = pose.project(STAGE_K, None, np.array([[0.0, 1000.0, 0.0]]))[0] - [0.0, 50.0]
    out = mapper.to_stage(np.array([horizon_up, [np.nan, np.nan], [960.0, 900.0]]))
    assert np.isnan(out[0]).all() and np.isnan(out[1]).all() and np.isfinite(out[2]).all()


def test_degenerate_or_inconsistent_points() -> None:
    line = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [3.0, 0.01], [4.0, 0.0]])
    pixels = np.array([[100.0, 500.0], [200.0, 500.0], [300.0, 500.0], [400.0, 501.0], [500.0, 500.0]])
    with pytest.raises(ConfigError, match="on one line"):
        fit_stage(list("abcde"), line, pixels, STAGE_K, STAGE_DIST)
    pose = look_at_pose((0.0, -9.0, 5.0), (0.0, 3.0))
    pixels = pose.project(STAGE_K, STAGE_DIST, np.column_stack([MARKS, np.zeros(len(MARKS))]))
    noisy = pixels + np.random.default_rng(4).normal(0.0, 0.3, pixels.shape)
    assert not fit_stage([f"m{i}" for i in range(len(MARKS))], MARKS, noisy, STAGE_K, STAGE_DIST).suspects()
    typo = MARKS.copy()
    typo[4] = [3.0, 3.4]  # 40 cm off: a mis-typed tape measurement
    fit = fit_stage([f"m{i}" for i in range(len(MARKS))], typo, pixels, STAGE_K, STAGE_DIST)
    assert [name for name, _ in fit.suspects()] == ["m4"]


def test_points_file_errors_name_file_line_and_field(tmp_path) -> None:
    path = tmp_path / "points.yaml"
    path.write_text("points:\n  - {name: A, stage: [0, 0]}\n  - {name: B, stage: [1, x]}\n")
    with pytest.raises(ConfigError, match=r"points.yaml:3: field 'points\[1\].stage\[1\]': expected a number"):
        load_points(path)
    path.write_text("points:\n  - {name: A, stage: [0, 0], pxiel: [1, 2]}\n")
    with pytest.raises(ConfigError, match=r"points.yaml:2: field 'points\[0\].pxiel': unknown key"):
        load_points(path)
    path.write_text("points:\n  - {name: A, stage: [0, 0]}\n  - {name: A, stage: [1, 0]}\n")
    with pytest.raises(ConfigError, match="used twice"):
        load_points(path)


# --- runtime mapper ------------------------------------------------------------------------------


def test_mapper_refuses_a_resolution_mismatch(tmp_path) -> None:
    mapper, _ = _stage_mapper()
    path = save_calibration(tmp_path / "cam03.yaml", mapper.calibration)
    assert StageMapper.from_file(path, (1920, 1080)).has_stage
    with pytest.raises(ConfigError, match=r"cam03.yaml: calibrated at 1920x1080 but camera 'syn' delivers 1280x720"):
        StageMapper.from_file(path, (1280, 720))
    lens_only = save_calibration(tmp_path / "lens.yaml", _calibration(size=(1920, 1080)))
    with pytest.raises(ConfigError, match="no stage calibration"):
        StageMapper.from_file(lens_only, (1920, 1080))
    undistort_only = StageMapper.from_file(lens_only, (1920, 1080), require_stage=False)
    assert undistort_only.camera_position is None


def test_package_exports_the_runtime_api() -> None:
    import stagepose.calibration as calibration

    assert calibration.StageMapper is StageMapper
    assert calibration.load_calibration is load_calibration
    with pytest.raises(AttributeError):
        calibration.no_such_name  # noqa: B018


def test_undistort_points_inverts_the_lens_and_keeps_nan() -> None:
    mapper, pose = _stage_mapper()
    xyz = np.array([[1.0, 2.0, 0.0], [-3.0, 5.0, 1.0]])
    raw = pose.project(STAGE_K, STAGE_DIST, xyz)
    ideal = pose.project(STAGE_K, None, xyz)
    out = mapper.undistort_points(np.vstack([raw, [np.nan, 3.0]]))
    np.testing.assert_allclose(out[:2], ideal, atol=1e-3)
    assert np.isnan(out[2]).all()


def _person_pixels(pose, x: float, y: float, stature: float) -> np.ndarray:
    return pose.project(STAGE_K, STAGE_DIST, standing_person(x, y, stature))


def test_floor_position_from_ankles_pelvis_and_fallbacks() -> None:
    mapper, pose = _stage_mapper(noise_px=0.0)
    joints = _person_pixels(pose, 1.2, 3.5, 1.80)
    conf = np.ones(NUM_JOINTS)

    found = mapper.locate_floor(joints, conf)
    assert found.method == "ankles"
    assert np.hypot(found.x - 1.2, found.y - 3.5) < 0.03
    assert mapper.floor_position(joints, conf) == (found.x, found.y)

    feet_hidden = conf.copy()
    feet_hidden[[Joint.r_ankle, Joint.l_ankle]] = 0.05
    found = mapper.locate_floor(joints, feet_hidden)
    assert found.method == "pelvis_proportions"
    assert np.hypot(found.x - 1.2, found.y - 3.5) < 0.05
    assert found.stature_m == pytest.approx(1.80, abs=0.05)

    unknown_head = joints.copy()
    unknown_head[[Joint.head_top, Joint.upper_neck, Joint.thorax]] = np.nan
    found = mapper.locate_floor(unknown_head, feet_hidden)
    assert found.method == "pelvis_height"
    assert np.hypot(found.x - 1.2, found.y - 3.5) < 0.25

    no_pelvis = feet_hidden.copy()
    no_pelvis[Joint.pelvis] = 0.0  # hips alone stand in for the pelvis
    assert mapper.locate_floor(joints, no_pelvis).method == "pelvis_proportions"
    no_pelvis[[Joint.r_hip, Joint.l_hip]] = 0.0
    assert mapper.floor_position(joints, no_pelvis) is None
    assert mapper.floor_position(np.full((NUM_JOINTS, 2), np.nan), conf) is None


def test_body_proportions_beat_a_fixed_pelvis_height_for_a_short_performer() -> None:
    mapper, pose = _stage_mapper(noise_px=0.0)
    joints = _person_pixels(pose, -2.0, 5.0, 1.45)
    conf = np.ones(NUM_JOINTS)
    conf[[Joint.r_ankle, Joint.l_ankle]] = 0.0
    proportions = mapper.locate_floor(joints, conf)
    conf[[Joint.head_top, Joint.upper_neck, Joint.thorax]] = 0.0
    fixed = mapper.locate_floor(joints, conf)
    err_p = np.hypot(proportions.x + 2.0, proportions.y - 5.0)
    err_f = np.hypot(fixed.x + 2.0, fixed.y - 5.0)
    assert (proportions.method, fixed.method) == ("pelvis_proportions", "pelvis_height")
    assert err_p < 0.05 < err_f


def test_floor_position_rejects_wrong_shapes() -> None:
    mapper, _ = _stage_mapper()
    with pytest.raises(ValueError, match="16 joints"):
        mapper.floor_position(np.zeros((14, 2)), np.ones(14))
