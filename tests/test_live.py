"""`stagepose live` end to end on a real clip: OSC over a real UDP socket, the record, the status board."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from show_support import DEMO_CLIP, UdpCollector, base_show, write_show

from stagepose.show.config import load_show
from stagepose.show.live import run_live
from stagepose.show.record import read_record


@pytest.fixture
def collector():
    c = UdpCollector()
    yield c
    c.close()


def test_live_on_a_real_clip_sends_osc_records_and_reports(tmp_path: Path, small_onnx: Path, collector) -> None:
    config = base_show(small_onnx, f"{DEMO_CLIP}?pacing=realtime", collector.port)
    show = load_show(write_show(tmp_path, config))
    status = io.StringIO()
    started = time.time()
    summary = run_live(show, status_stream=status)
    time.sleep(0.2)
    assert summary.stopped_by == "sources ended"
    processed = summary.frames["cam1"]
    assert 5 <= processed <= 100  # 100 frames at 60 fps, newest-frame-only: a busy machine drops more

    messages = collector.messages()
    poses = [(tt, m) for tt, m in messages if m.address == "/stagepose/p1/pose"]
    # one bundle per processed frame, plus /status 0 once a second while the camera was still connecting
    assert processed <= len(poses) <= processed + 3
    for timetag, message in poses[:5]:
        assert len(message.params) == 48 and all(isinstance(v, float) for v in message.params)
        assert started - 1 < timetag < time.time()  # the capture time, on the wall clock
    assert any(m.address == "/stagepose/heartbeat" for _, m in messages)
    assert max(len(d) for d in collector.datagrams) <= 1472

    record = read_record(tmp_path / "record.jsonl")
    frames = [r for r in record if r["type"] == "frame"]
    assert record[0]["type"] == "header" and len(frames) == processed
    assert len(frames[0]["raw"]) == 16 and len(frames[0]["smoothed"]) == 16
    times = [f["t"] for f in frames]
    assert all(b > a for a, b in zip(times, times[1:]))
    # raw joints are image pixels of the 1080x1920 clip
    raw = np.array([f["raw"] for f in frames], dtype=float)
    assert np.nanmax(raw[..., 0]) < 1080 * 1.5 and np.nanmax(raw[..., 1]) < 1920 * 1.5

    text = status.getvalue()
    assert "cam1" in text and "fps" in text and "lat p50/p95" in text and "[onnxruntime cpu fp32]" in text


def test_live_stops_on_request_and_on_duration(tmp_path: Path, small_onnx: Path, collector) -> None:
    config = base_show(small_onnx, f"{DEMO_CLIP}?loop=true&pacing=realtime", collector.port)
    config["run"] = {"max_duration_s": 1.5}
    show = load_show(write_show(tmp_path, config))
    begun = time.monotonic()
    summary = run_live(show, status_stream=io.StringIO())
    assert summary.stopped_by == "max_duration_s reached" and time.monotonic() - begun < 10
    stop = threading.Event()
    config["run"] = {"max_duration_s": None}
    show = load_show(write_show(tmp_path, config))
    threading.Timer(1.0, stop.set).start()
    summary = run_live(show, status_stream=io.StringIO(), stop=stop)
    assert summary.stopped_by == "stop requested" and summary.frames["cam1"] > 0


def test_stage_timings_keep_a_window_not_every_frame(tmp_path: Path, small_onnx: Path, collector) -> None:
    from stagepose.show.pipeline import StageTimes

    times = StageTimes(window=50)
    for _ in range(1000):
        times.add("infer", 0.001)
    assert {len(v) for v in times.ms.values()} <= {0, 50}
    config = base_show(small_onnx, f"{DEMO_CLIP}?pacing=fast&loop=true", collector.port)
    config["telemetry"]["window_frames"] = 20
    config["run"] = {"max_duration_s": 2.0}
    summary = run_live(load_show(write_show(tmp_path, config)), status_stream=io.StringIO())
    assert summary.frames["cam1"] > 40  # a long show in miniature: many more batches than the window
    assert {s["count"] for s in summary.stage_ms.values()} == {20}
