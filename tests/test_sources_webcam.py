"""Webcam sources through OpenCV: capture-clock timestamps, a missing device, a real one if present."""

from __future__ import annotations

import glob
import time

import numpy as np
import pytest

from stagepose.show.sources import Frame, SourceState, WebcamSpec, open_source
from stagepose.show.sources.webcam_source import WebcamSource, capture_time


def test_driver_timestamp_moves_to_the_wall_clock() -> None:
    # V4L2 stamped the frame 40 ms before grab() returned (monotonic 100.000 s vs 100.040 s).
    t = capture_time(pos_msec=100_000.0, grab_wall=1_700_000_000.040, grab_mono=100.040)
    assert t == pytest.approx(1_700_000_000.000)


@pytest.mark.parametrize(
    "pos_msec",
    [
        0.0,  # no timestamp from this backend
        250.0,  # a position in a file-like stream, not the monotonic clock
        200_000.0,  # "in the future" of the monotonic clock
    ],
)
def test_untrusted_driver_timestamp_falls_back_to_grab_time(pos_msec: float) -> None:
    assert capture_time(pos_msec=pos_msec, grab_wall=1_700_000_000.0, grab_mono=100.0) == 1_700_000_000.0


def test_missing_device_keeps_retrying_without_raising() -> None:
    with WebcamSource(WebcamSpec(index=57), "no-cam") as src:
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and src.health().attempts < 2:
            time.sleep(0.05)
        health = src.health()
        assert src.latest(timeout=0.05) is None
    assert health.state is SourceState.CONNECTING
    assert health.attempts >= 2 and health.reconnects == 0  # reopen attempts; no outage yet
    assert "cannot open webcam 57" in (health.last_error or "")


@pytest.mark.skipif(not glob.glob("/dev/video*"), reason="no capture device (/dev/video*) on this machine")
def test_real_webcam_delivers_timestamped_frames() -> None:
    with open_source("webcam:0", "webcam") as src:
        frames: list[Frame] = []
        deadline = time.monotonic() + 10.0
        while len(frames) < 5 and time.monotonic() < deadline:
            frame = src.latest(timeout=0.5)
            if frame is not None:
                frames.append(frame)
    assert len(frames) == 5, src.health()
    times = np.array([f.t_capture for f in frames])
    assert np.all(np.diff(times) > 0)
    assert times[-1] <= time.time()
    assert frames[0].image.ndim == 3 and frames[0].image.shape[2] == 3
