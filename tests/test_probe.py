"""`stagepose probe`: size, fps and codec of a real source, and the still with pixel grid, zone and stage grid."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from rtsp_support import RtspServer, free_port
from show_support import DEMO_CLIP, REPO, write_show

from stagepose.calibration.aid import STAGE_GRID
from stagepose.calibration.files import load_calibration, save_calibration
from stagepose.cli import main
from stagepose.show.probe import ZONE_COLOUR

DEMO_SHOW = REPO / "show_configs" / "demo.yaml"
DEMO_ZONE = [(0, 250), (1080, 250), (1080, 1500), (0, 1500)]  # show_configs/demo.yaml
SHIPPED_ONNX = REPO / "engines" / "lshm2_campaign_lspet_128.onnx"


def _near(image: np.ndarray, colour: tuple[int, int, int], tol: int = 40) -> np.ndarray:
    return np.all(np.abs(image.astype(int) - np.array(colour)) <= tol, axis=-1)


def _probe(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, str], str]:
    code = main(["probe", *args])
    captured = capsys.readouterr()
    facts = {line[:12].strip(): line[13:] for line in captured.out.splitlines() if len(line) > 13}
    return code, facts, captured.err


def test_probe_of_the_demo_camera_reports_the_clip_and_draws_its_zone(tmp_path: Path, capsys) -> None:
    out = tmp_path / "still.png"
    code, facts, _ = _probe(capsys, "--show", str(DEMO_SHOW), "--out", str(out))
    assert code == 0
    assert facts["size"] == "1080x1920"
    assert facts["fps"].startswith("declared 60.00, measured ")
    assert 20 < float(facts["fps"].split("measured ")[1].split()[0]) < 80  # realtime pacing, like a camera
    assert facts["codec"] == "h264 (High), yuv420p"
    assert facts["duration"] == "1.67 s, 100 frames"
    assert facts["zone"] == "4 corners, inside the 1080x1920 frame"
    assert facts["still"] == str(out)

    still = cv2.imread(str(out))
    assert still.shape[0] == 1920 and still.shape[1] > 1080  # the frame, then the report panel
    frame = still[:, :1080]
    on_zone = _near(frame, ZONE_COLOUR)
    assert on_zone[250, 400:700].any() and on_zone[1500, 400:700].any()  # the zone's top and bottom edges
    assert not on_zone[100, 400:700].any() and not on_zone[1700, 400:700].any()  # nothing outside it


def test_calibration_that_fits_draws_the_stage_grid_and_one_that_does_not_fails(tmp_path: Path, capsys) -> None:
    cam01 = load_calibration(REPO / "calibration" / "cam01.yaml")  # made at 1088x1920; the clip is 1080x1920
    fitted = save_calibration(tmp_path / "cam01_1080.yaml", replace(cam01, image_size=(1080, 1920)))
    plain, gridded = tmp_path / "plain.png", tmp_path / "grid.png"
    assert _probe(capsys, str(DEMO_CLIP), "--out", str(plain))[0] == 0
    code, facts, _ = _probe(capsys, str(DEMO_CLIP), "--calibration", str(fitted), "--out", str(gridded))
    assert code == 0 and facts["calibration"].endswith("fits; stage floor grid drawn")
    cyan = [_near(cv2.imread(str(p))[:, :1080], STAGE_GRID, tol=30).sum() for p in (plain, gridded)]
    assert cyan[1] > cyan[0] + 2000  # the floor grid's lines

    code, facts, _ = _probe(capsys, str(DEMO_CLIP), "--calibration", str(REPO / "calibration" / "cam01.yaml"),
                            "--out", str(tmp_path / "misfit.png"))  # fmt: skip
    assert code == 1
    assert "calibrated at 1088x1920 but this source delivers 1080x1920" in facts["calibration"]


def test_zone_from_the_command_line_and_corners_outside_the_frame(tmp_path: Path, capsys) -> None:
    zone = ["0,0", "1200,0", "1200,900"]
    code, facts, _ = _probe(capsys, str(DEMO_CLIP), "--zone", *zone, "--out", str(tmp_path / "z.jpg"))
    assert code == 0
    assert facts["zone"] == "3 corners; 2 outside the 1080x1920 frame: (1200, 0), (1200, 900)"


def test_show_with_several_cameras_needs_camera(tmp_path: Path, capsys) -> None:
    cams = [{"id": f"cam{i}", "uri": str(DEMO_CLIP), "performer": f"p{i}", "zone": [list(p) for p in DEMO_ZONE]}
            for i in (1, 2)]  # fmt: skip
    show = write_show(tmp_path, {"show": "two", "cameras": cams, "model": {"path": str(SHIPPED_ONNX)}})
    code, _, err = _probe(capsys, "--show", str(show))
    assert code == 2 and "has 2 cameras: pick one with --camera (cam1, cam2)" in err
    code, _, err = _probe(capsys, "--show", str(show), "--camera", "cam9")
    assert code == 2 and "has no camera 'cam9'" in err
    code, facts, _ = _probe(capsys, "--show", str(show), "--camera", "cam2", "--out", str(tmp_path / "c2.jpg"))
    assert code == 0 and facts["size"] == "1080x1920" and (tmp_path / "c2.jpg").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["foo://bar"], "unknown scheme 'foo:'"),
        (["missing.mp4"], "video file not found"),
        ([str(DEMO_CLIP), "--zone", "1,2", "3;4", "5,6"], "'3;4' is not a point X,Y"),
        ([str(DEMO_CLIP), "--zone", "1,2", "3,4"], "--zone needs at least 3 points"),
        (["--camera", "cam1"], "--camera needs --show"),
        ([], "give a source URI"),
    ],
)
def test_bad_input_is_one_line(args: list[str], message: str, capsys) -> None:
    code, _, err = _probe(capsys, *args)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("stagepose probe: error: ") and message in err


def test_unreachable_camera_is_one_line_after_the_timeout() -> None:
    """In a fresh process, as a technician runs it: exit 2 and one line (the log lines are above it)."""
    url = f"rtsp://127.0.0.1:{free_port()}/stream"  # nothing listens there
    done = subprocess.run(
        [sys.executable, "-m", "stagepose.cli", "probe", url, "--timeout", "1"],
        capture_output=True, text=True, timeout=60, check=False, cwd=REPO,
    )  # fmt: skip
    assert done.returncode == 2 and done.stdout == ""
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"stagepose probe: error: no frame from {url} within 1 s: cannot open")


def test_probe_of_a_real_rtsp_camera(rtsp_server: RtspServer, tmp_path: Path, capsys) -> None:
    out = tmp_path / "rtsp.jpg"
    code, facts, _ = _probe(capsys, rtsp_server.url, "--out", str(out), "--zone", "10,10", "300,10", "300,200")
    assert code == 0
    assert facts["source"] == f"{rtsp_server.url} (rtsp)"
    assert facts["size"] == "320x240"
    assert float(facts["fps"].split("measured ")[1].split()[0]) > 10  # the server sends 30 fps
    assert facts["codec"].startswith("mjpeg")
    assert cv2.imread(str(out)).shape[0] == 240
