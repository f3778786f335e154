"""The Qualisys import on the real pose2sim calibration: conventions checked by reprojection.

Two black posts stand on the pose2sim treadmill, visible in all four views. Their rim centres were read
by hand (zoomed, to about +-3 px) off frame 0 of each ``pose2sim_single`` clip. Triangulated from the
imported calibration, each post must reproject within TOL_PX in every view, both tops must come out at
the same height above z = 0 (z up) and the cameras above the floor. A wrong convention (the rotation
transposed, the transform not inverted, millimetres left as metres) misses by hundreds of pixels.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from stagepose.calibration.files import load_calibration
from stagepose.calibration.mapper import StageMapper
from stagepose.calibration.qualisys import read_qca
from stagepose.cli import main
from stagepose.multiview.cameras import Rig
from stagepose.multiview.triangulate import TriangulationSettings, triangulate, triangulate_performers

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
QCA = SHARED / "calibration_pose2sim" / "Calib.qca.txt"
CLIPS = SHARED / "video" / "pose2sim_single"
SHIPPED = ROOT / "calibration" / "pose2sim"
CAMERAS = ("cam01", "cam02", "cam03", "cam04")
needs_qca = pytest.mark.skipif(not QCA.is_file(), reason=f"pose2sim calibration not found at {QCA}")

# Rim centres of the two posts (A: the one with the cable) in frame 0 of each pose2sim_single clip, pixels.
POSTS_PX = np.array(
    [
        [[665.0, 1522.0], [941.0, 1432.0]],  # cam01
        [[275.0, 1324.0], [639.0, 1345.0]],  # cam02
        [[263.0, 970.0], [62.0, 1059.0]],  # cam03
        [[828.0, 861.0], [608.0, 921.0]],  # cam04
    ]
)
FRAMES = 8  # the first frames of each clip, for the shipped model's test
TOL_PX = 15.0  # hand reading (+-3 px) plus the calibration's own residual on this recording
TOL_MODEL_PX = 15.0  # median over the views used of the model's joints, frames 0-7


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> Path:
    if not QCA.is_file():
        pytest.skip(f"pose2sim calibration not found at {QCA}")
    out = tmp_path_factory.mktemp("qualisys")
    sizes = ["--size", "cam01=1080x1920", "--size", "cam02=1080x1920"]
    assert main(["calibrate", "import-qualisys", str(QCA), "--out", str(out), *sizes]) == 0
    return out


def test_import_writes_one_file_per_camera(imported, capsys) -> None:
    assert sorted(p.name for p in imported.glob("*.yaml")) == [f"{c}.yaml" for c in CAMERAS]
    cal = load_calibration(imported / "cam01.yaml")
    assert cal.image_size == (1080, 1920)  # the clip's size: the calibrated 1088 wide, cropped at the right
    assert load_calibration(imported / "cam03.yaml").image_size == (1088, 1920)  # fov_video
    assert cal.intrinsics.K[0, 0] == pytest.approx(107599.671875 / 64)  # 1/64 pixel units
    assert cal.intrinsics.K[0, 2] == pytest.approx(34110.316406 / 64)
    assert cal.intrinsics.distortion[:2] == pytest.approx((-0.046183, 0.139983))  # as written, not / 64
    centre = cal.extrinsics.centre
    np.testing.assert_allclose(centre, [1.4602323709, -1.9091590482, 1.8965058524], atol=1e-9)  # mm -> m
    # the file's translation is the round number pose2sim wrote: t = -R @ position recovers it
    assert cal.extrinsics.translation_m == pytest.approx((0.32110489, 0.95633206, 2.89071305), abs=1e-9)


def same_to_rounding(a: object, b: object, path: str = "") -> None:
    """Assert two calibration records equal, numbers to 1e-12: the import's matrix arithmetic differs in the
    last digit between numpy/BLAS builds (seen on a fresh machine), and that is not a different calibration."""
    if dataclasses.is_dataclass(a) and dataclasses.is_dataclass(b):
        assert type(a) is type(b), path
        for field in dataclasses.fields(a):
            same_to_rounding(getattr(a, field.name), getattr(b, field.name), f"{path}.{field.name}")
    elif isinstance(a, tuple | list) and isinstance(b, tuple | list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            same_to_rounding(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert a == pytest.approx(b, rel=0, abs=1e-12), path
    else:
        assert a == b, path


@needs_qca
def test_shipped_files_are_the_import(imported) -> None:
    for camera in CAMERAS:
        ours = load_calibration(imported / f"{camera}.yaml")
        shipped = load_calibration(SHIPPED / "single" / f"{camera}.yaml")
        same_to_rounding(shipped.intrinsics, ours.intrinsics, f"{camera}.intrinsics")
        same_to_rounding(shipped.extrinsics, ours.extrinsics, f"{camera}.extrinsics")
        multi = load_calibration(SHIPPED / "multi" / f"{camera}.yaml")
        assert multi.image_size == (1088, 1920)
        same_to_rounding(multi.extrinsics, ours.extrinsics, f"{camera} multi.extrinsics")


def test_posts_reproject_in_all_four_views(imported) -> None:
    rig = Rig.load([imported / f"{c}.yaml" for c in CAMERAS])
    result = triangulate(rig, POSTS_PX, np.ones((4, 2)), TriangulationSettings(max_reprojection_px=1e6))
    assert result.ok.all() and (result.num_views == 4).all()
    assert np.nanmax(result.view_error_px) < TOL_PX, result.view_error_px
    a, b = result.points
    assert 0.1 < a[2] < 0.3 and abs(a[2] - b[2]) < 0.03  # both tops ~18 cm above z = 0: z is up
    assert 0.55 < np.linalg.norm(a - b) < 0.75
    for camera in rig.cameras:
        assert camera.centre[2] > 1.5  # every camera on a stand above the floor
        assert (camera.project(result.points)[:, 1] > 0).all()


def test_a_wrong_convention_misses_by_far(imported) -> None:
    rig = Rig.load([imported / f"{c}.yaml" for c in CAMERAS])
    transposed = Rig(tuple(
        type(c)(c.name, c.image_size, c.K, c.dist, np.diag([1.0, -1, -1]) @ (np.diag([1.0, -1, -1]) @ c.R).T,
                -(np.diag([1.0, -1, -1]) @ (np.diag([1.0, -1, -1]) @ c.R).T) @ c.centre)
        for c in rig.cameras
    ))  # fmt: skip
    result = triangulate(transposed, POSTS_PX, np.ones((4, 2)), TriangulationSettings(max_reprojection_px=1e6))
    assert np.nanmax(result.view_error_px) > 10 * TOL_PX


def test_floor_mapping_agrees_with_the_extrinsics(imported) -> None:
    rig = Rig.load([imported / f"{c}.yaml" for c in CAMERAS])
    floor = np.array([[0.5, 0.2, 0.0], [-0.6, -0.4, 0.0], [0.0, 0.9, 0.0]])
    for camera in rig.cameras:
        mapper = StageMapper.from_file(imported / f"{camera.name}.yaml", camera.image_size)
        np.testing.assert_allclose(mapper.to_stage(camera.project(floor)), floor[:, :2], atol=1e-4)


@pytest.mark.skipif(not CLIPS.is_dir(), reason=f"pose2sim clips not found at {CLIPS}")
def test_the_shipped_model_on_the_first_frames_triangulates_consistently(imported) -> None:
    from stagepose.multiview.measure import _open_backend, clip_poses

    model = ROOT / "engines" / "lshm2_campaign_lspet_128.onnx"
    rig = Rig.load([imported / f"{c}.yaml" for c in CAMERAS])
    with _open_backend(model) as backend:
        clips = [clip_poses(CLIPS / f"{c}.mp4", model, c, max_frames=FRAMES, backend=backend) for c in CAMERAS]
    counts, errors = [], []
    for k in range(FRAMES):
        joints = np.stack([c.joints[k] for c in clips])
        conf = np.stack([c.confidence[k] for c in clips])
        result = triangulate_performers(rig, {"performer": (joints, conf)})["performer"]
        counts.append(int(result.ok.sum()))
        errors.extend(result.view_error_px[result.views].tolist())
    # the model is modest and a frame's count varies (step 6,372: 5-11 joints a frame, median 9, over frames
    # 0-7; frame 0 is a whole-frame crop): the median frame triangulates at least 6 joints, consistently
    assert np.median(counts) >= 6, counts
    assert np.median(errors) < TOL_MODEL_PX


def _qca(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad.qca.txt"
    path.write_text(text)
    return path


def test_bad_qca_files_give_one_line_errors(tmp_path, capsys) -> None:
    if not QCA.is_file():
        pytest.skip(f"pose2sim calibration not found at {QCA}")
    good = QCA.read_text()
    r11, focal = 'r11="0.5536380477336265"', ' focalLengthU="107599.671875"'
    cases = {
        "missing": (good.replace(focal, "", 1), "camera 1 (cam01): attribute 'intrinsic.focalLengthU' is missing"),
        "not a number": (good.replace(r11, 'r11="abc"', 1), "'transform.r11' is 'abc', not a number"),
        "not a rotation": (good.replace(r11, 'r11="2.5"', 1), "transform r11..r33 is not a rotation"),
        "no transform": (good.replace("<transform ", "<transfrm ", 1), "camera 1 (cam01): no <transform> element"),
        "not xml": ("hello", "not a Qualisys calibration (invalid XML"),
        "other xml": ("<settings/>", "the root element is <settings>"),
        "no cameras": ("<calibration><cameras/></calibration>", "no <cameras><camera> elements"),
    }  # fmt: skip
    for name, (text, expected) in cases.items():
        path = _qca(tmp_path, text)
        assert main(["calibrate", "import-qualisys", str(path), "--out", str(tmp_path / "out")]) == 2, name
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and str(path) in err and expected in err, (name, err)
    assert not (tmp_path / "out").exists()
    assert (
        main(["calibrate", "import-qualisys", str(QCA), "--out", str(tmp_path / "o"), "--size", "cam01=1200x1920"]) == 2
    )
    assert "larger than the calibrated 1088x1920" in capsys.readouterr().err
    assert main(["calibrate", "import-qualisys", str(QCA), "--out", str(tmp_path / "o"), "--size", "cam09=10x10"]) == 2
    assert "names cameras ['cam09']" in capsys.readouterr().err
    assert main(["calibrate", "import-qualisys", str(QCA), "--out", str(tmp_path / "o"), "--size", "cam01"]) == 2
    assert "expected CAMERA=WIDTHxHEIGHT" in capsys.readouterr().err


@needs_qca
def test_read_qca_conventions() -> None:
    cameras = read_qca(QCA)
    assert [c.name for c in cameras] == list(CAMERAS)
    for camera in cameras:
        np.testing.assert_allclose(camera.R @ camera.R.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(camera.R) == pytest.approx(1.0)
        # the camera looks towards the middle of the room, downwards
        forward = camera.R[2]
        assert forward[2] < 0 and np.dot(forward, -camera.centre) > 0
