"""RTSP sources against a real GStreamer RTSP server on loopback (tests/rtsp_server.py).

The server runs under the system ``/usr/bin/python3`` (Debian's python3-gi and
gir1.2-gst-rtsp-server-1.0, installed by .ci/run); killing it is a camera dropping off the network,
stopping it (SIGSTOP) is a camera that freezes with its connection still open.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

import numpy as np
import pytest
from rtsp_support import RtspServer, free_port
from show_support import collect_frames

from stagepose.show.sources import Frame, SourceState, open_source, parse_source_uri
from stagepose.show.sources.pyav_source import RtspSource
from stagepose.show.sources.uri import RtspSpec


def _wait_for(predicate: Callable[[], bool], timeout: float, poll: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(poll)
    return predicate()


def _check_stream_frames(frames: list[Frame]) -> None:
    times = np.array([f.t_capture for f in frames])
    assert all(f.image.shape == (240, 320, 3) and f.image.dtype == np.uint8 for f in frames)
    assert np.all(np.diff(times) > 0)
    assert np.all(np.diff([f.seq for f in frames]) > 0)
    # Capture times are on this machine's wall clock: not in the future, and recent.
    now = time.time()
    assert times[-1] <= now and now - times[-1] < 1.0


def test_rtsp_frames_then_server_restart_reconnects(rtsp_server: RtspServer) -> None:
    with open_source(rtsp_server.url, "cam-rtsp", stall_timeout_s=1.0) as src:
        before = collect_frames(src, 20, timeout=10.0)
        _check_stream_frames(before)
        # The server streams 30 fps (its RTP clock): PTS-based capture times are ~1/30 s apart.
        assert np.median(np.diff([f.t_capture for f in before])) == pytest.approx(1 / 30, abs=0.005)
        health = src.health()
        assert health.state is SourceState.LIVE and health.kind == "rtsp"
        assert health.fps > 15

        rtsp_server.kill()  # the camera drops off the network
        seen: set[SourceState] = set()

        def lost() -> bool:
            seen.add(src.health().state)
            return bool(seen & {SourceState.STALLED, SourceState.RECONNECTING})

        assert _wait_for(lost, timeout=5.0), f"states seen: {seen}"
        src.latest(timeout=0)  # discard a frame decoded before the loss

        rtsp_server.start()  # back on the same port
        after = collect_frames(src, 10, timeout=15.0)
        _check_stream_frames(after)
        assert after[0].seq > before[-1].seq
        assert after[0].t_capture > before[-1].t_capture
        health = src.health()
    assert health.state is SourceState.LIVE
    assert health.reconnects >= 1
    assert health.last_error  # why it reconnected is kept for telemetry
    assert health.decode_errors == 0


def test_rtsp_stall_watchdog_reopens_a_frozen_camera(rtsp_server: RtspServer) -> None:
    spec = parse_source_uri(rtsp_server.url)
    assert isinstance(spec, RtspSpec)
    with RtspSource(spec, "frozen", stall_timeout_s=1.0, open_timeout_s=1.0) as src:
        last = collect_frames(src, 5, timeout=10.0)[-1]
        rtsp_server.signal(signal.SIGSTOP)  # connection stays open, no data flows
        assert _wait_for(lambda: src.health().state is SourceState.STALLED, timeout=3.0)
        assert _wait_for(lambda: src.health().state is SourceState.RECONNECTING, timeout=4.0)
        assert src.health().last_error
        rtsp_server.signal(signal.SIGCONT)
        after = collect_frames(src, 5, timeout=15.0)
        assert after[0].seq > last.seq and after[0].t_capture > last.t_capture
        health = src.health()
    assert health.state is SourceState.LIVE
    assert health.reconnects >= 1


def test_rtsp_over_udp(rtsp_server: RtspServer) -> None:
    with open_source(f"{rtsp_server.url}?transport=udp", "cam-udp") as src:
        frames = collect_frames(src, 10, timeout=10.0)
        health = src.health()
    _check_stream_frames(frames)
    assert health.uri.endswith("?transport=udp")
    assert health.state is SourceState.LIVE


def test_camera_that_never_answers_keeps_trying_and_closes_promptly() -> None:
    src = open_source(f"rtsp://127.0.0.1:{free_port()}/nothing", "gone")  # nothing listens there
    assert _wait_for(lambda: src.health().attempts >= 2, timeout=5.0)
    health = src.health()
    assert health.state is SourceState.CONNECTING  # never came up: not "reconnecting"
    assert health.reconnects == 0  # no outage: it never delivered
    assert "Connection refused" in (health.last_error or "")
    t0 = time.monotonic()
    src.close()
    assert time.monotonic() - t0 < 2.0
    assert src.health().state is SourceState.ENDED
    assert src.latest(timeout=0) is None


def test_recovery_is_quick_once_the_server_is_back_and_each_outage_counts_once(rtsp_server: RtspServer) -> None:
    recoveries = []
    with open_source(rtsp_server.url, "cam", stall_timeout_s=1.0) as src:
        collect_frames(src, 5, timeout=10.0)
        for outage_s in (8.0, 3.0):  # long enough for the back-off to grow to seconds
            rtsp_server.kill()
            time.sleep(outage_s)
            src.latest(timeout=0)  # a frame decoded before the loss
            rtsp_server.start()  # returns once the server listens again
            back = time.monotonic()
            collect_frames(src, 1, timeout=15.0)
            recoveries.append(time.monotonic() - back)
        health = src.health()
    print(f"recovery after the server returned: {[round(r, 2) for r in recoveries]} s; {health.attempts} attempts")
    assert health.reconnects == 2  # two outages, however many reopen attempts they took
    assert health.attempts > health.reconnects
    assert max(recoveries) <= 2.0
