"""The show must not stop: a failing record, cameras that never deliver, and the exit code that says so.

Real parts only: `stagepose live` in a subprocess under a real file-size limit, OSC received on a real UDP
socket, a real RTSP address nobody listens on, the shipped calibration on a clip (refused at start-up) and
on a real RTSP feed (refused at its first frame) of another resolution.
"""

from __future__ import annotations

import io
import json
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from rtsp_support import free_port
from show_support import DEMO_CLIP, REPO, UdpCollector, base_show, write_show

from stagepose.cli import main
from stagepose.show.config import load_show
from stagepose.show.live import LOST_STATUS_INTERVAL_S, run_live
from stagepose.show.record import read_record

CALIBRATION_1088 = REPO / "calibration" / "cam01.yaml"  # made for 1088x1920 frames; the clip is 1080x1920
EXIT_SHOW_FAILED = 3


@pytest.fixture
def collector():
    c = UdpCollector()
    yield c
    c.close()


def _statuses(collector: UdpCollector, performer: str) -> list[list[float]]:
    return [m.params for _, m in collector.messages() if m.address == f"/stagepose/{performer}/status"]


def _poses(collector: UdpCollector, performer: str) -> list[list[float]]:
    return [m.params for _, m in collector.messages() if m.address == f"/stagepose/{performer}/pose"]


def _limit_file_size(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))


def test_a_record_that_cannot_be_written_never_stops_the_show(tmp_path: Path, small_onnx: Path, collector) -> None:
    config = base_show(small_onnx, f"{DEMO_CLIP}?loop=true&pacing=realtime", collector.port)
    show = write_show(tmp_path, config)
    run = subprocess.run(
        [sys.executable, "-m", "stagepose.cli", "live", "--show", str(show), "--duration", "5"],
        capture_output=True, text=True, timeout=180, cwd=tmp_path,
        preexec_fn=lambda: _limit_file_size(30_000),  # `ulimit -f`: the disk is full after ~25 frames
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    record = tmp_path / "record.jsonl"
    text = record.read_text()
    assert text.endswith("\n") and len(text) <= 30_000
    lines = [json.loads(line) for line in text.splitlines()]  # whole JSON lines only, no torn one
    frames = [r for r in lines if r["type"] == "frame"]
    assert lines[0]["type"] == "header" and frames
    poses = _poses(collector, "p1")
    assert len(poses) > len(frames) + 50  # OSC went on long after the record stopped
    record_status = [m.params for _, m in collector.messages() if m.address == "/stagepose/record"]
    assert record_status and record_status[-1][0] == 0.0 and record_status[-1][1] > 50  # failing, lines lost
    assert "write failed" in run.stderr and "File too large" in run.stderr  # the log says why
    assert "RECORD NOT WRITING" in run.stderr  # and so does the status board


def _two_camera_show(tmp_path: Path, model: Path, port: int, second: dict) -> Path:
    config = base_show(model, f"{DEMO_CLIP}?loop=true&pacing=realtime", port)
    config["cameras"].append({"id": "cam2", "performer": "p2", **second})
    config["run"] = {"stop_when_sources_end": False, "max_duration_s": 5.0}
    return write_show(tmp_path, config)


@pytest.mark.parametrize(
    "second",
    [
        pytest.param({"uri": "never-connects", "stall_timeout_s": 1.0}, id="rtsp-never-connects"),
        pytest.param({"uri": "rtsp-server", "calibration": str(CALIBRATION_1088)}, id="calibration-misfit"),
    ],
)
def test_a_camera_that_never_delivers_sends_lost_status_and_is_recorded(
    tmp_path: Path, small_onnx: Path, collector, second: dict, request: pytest.FixtureRequest
) -> None:
    if second["uri"] == "never-connects":
        second = {**second, "uri": f"rtsp://127.0.0.1:{free_port()}/none"}  # nothing listens there
    else:  # a live feed whose size is only known at its first frame: refused then, not at start-up
        second = {**second, "uri": request.getfixturevalue("rtsp_server").url}
    show = load_show(_two_camera_show(tmp_path, small_onnx, collector.port, second))
    summary = run_live(show, status_stream=io.StringIO())
    assert summary.frames["cam1"] > 0 and summary.frames["cam2"] == 0
    lost = _statuses(collector, "p2")
    # /status 0 at the lost rate (1 per LOST_STATUS_INTERVAL_S) for the whole 5 s, all joints at conf 0
    assert len(lost) >= 5 / LOST_STATUS_INTERVAL_S - 1 and all(s == [0.0, 0.0] for s in lost)
    assert all(p[2::3] == [0.0] * 16 for p in _poses(collector, "p2"))
    events = [r for r in read_record(tmp_path / "record.jsonl") if r["type"] in ("camera_lost", "camera_failed")]
    assert [e["camera"] for e in events] == ["cam2"]  # once, not every second
    reason = events[0]["reason"]
    if "calibration" in second:
        assert events[0]["state"] == "refused" and "1088" in reason
    else:
        assert events[0]["state"] == "connecting" and "never connected" in reason and "refused" in reason
    assert "cam2" in summary.cameras_without_frames and not summary.show_failed


@pytest.mark.parametrize("refused", [False, True], ids=["no-camera-connects", "every-frame-refused"])
def test_live_exits_3_when_no_camera_ever_delivered(
    tmp_path: Path, small_onnx: Path, collector, refused, capsys, request: pytest.FixtureRequest
) -> None:  # noqa: E501
    if refused:
        url = request.getfixturevalue("rtsp_server").url
        config = base_show(small_onnx, url, collector.port, calibration=str(CALIBRATION_1088))
    else:
        config = base_show(small_onnx, f"rtsp://127.0.0.1:{free_port()}/none", collector.port)
    show = write_show(tmp_path, config)
    assert main(["live", "--show", str(show), "--duration", "2.5"]) == EXIT_SHOW_FAILED
    err = capsys.readouterr().err
    assert "show failed" in err and "cam1" in err
    config["cameras"][0] = {"id": "cam1", "uri": f"{DEMO_CLIP}?pacing=realtime", "performer": "p1"}
    assert main(["live", "--show", str(write_show(tmp_path, config)), "--duration", "2.5"]) == 0  # a finished show


def test_a_calibration_that_does_not_fit_a_clip_stops_the_show_at_start_up(
    tmp_path: Path, small_onnx: Path, collector, capsys
) -> None:
    config = base_show(small_onnx, f"{DEMO_CLIP}?loop=true", collector.port, calibration=str(CALIBRATION_1088))
    assert main(["live", "--show", str(write_show(tmp_path, config)), "--duration", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "camera 'cam1'" in err[0] and "cam01.yaml" in err[0] and "1088x1920" in err[0], err
    assert "Traceback" not in "\n".join(err) and not collector.datagrams  # nothing was sent: the show never began
