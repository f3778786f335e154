"""File sources on real clips, damaged files, and the source machinery (slot, clock, back-off).

Clips come from ../shared/data/video (see its README): pose2sim cam01 is 1080x1920 H.264, 100 frames
at 60 fps; sports2d_demo is 1768x994 VP9, 230 frames at 30 fps.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest

from stagepose.show.sources import FileSpec, Frame, SourceHealth, SourceState, ThreadedSource, open_source
from stagepose.show.sources.clock import StreamClock
from stagepose.show.sources.health import Backoff, FpsMeter
from stagepose.show.sources.latest import LatestFrameSlot
from stagepose.show.sources.pyav_source import FileSource

VIDEO_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "video"
CAM01 = VIDEO_DIR / "pose2sim_single" / "cam01.mp4"
SPORTS2D = VIDEO_DIR / "sports2d_demo.mp4"
# Tolerance on the interval between consecutive capture times, in seconds: they come from PTS (exact
# fractions of the time base) and go through float64 arithmetic on a ~1.8e9 s wall-clock anchor.
TOL_S = 1e-5


def _need(path: Path) -> Path:
    if not path.is_file():
        pytest.skip(f"test clip not found: {path} (see /work/shared/data/README.md)")
    return path


def _collect(source: ThreadedSource, limit: int | None = None) -> list[tuple[int, float]]:
    """(seq, t_capture) of every frame until the source ends (images are not kept: 6 MB each)."""
    out: list[tuple[int, float]] = []
    for frame in source:
        out.append((frame.seq, frame.t_capture))
        if limit is not None and len(out) >= limit:
            break
    return out


# ---------------------------------------------------------------- real clips


def test_fast_mode_delivers_every_frame_with_pts_times() -> None:
    path = _need(CAM01)
    with open_source(f"{path}?pacing=fast", "cam01") as src:
        first = src.latest(timeout=10.0)
        assert first is not None
        assert first.image.shape == (1920, 1080, 3)
        assert first.image.dtype == np.uint8 and first.image.flags["C_CONTIGUOUS"]
        assert first.seq == 0 and first.camera_id == "cam01"
        rest = _collect(src)
        health = src.health()
    seqs = [first.seq] + [s for s, _ in rest]
    times = np.array([first.t_capture] + [t for _, t in rest])
    assert seqs == list(range(100))  # lossless: nothing dropped in fast mode
    assert np.all(np.abs(np.diff(times) - 1 / 60) < TOL_S)  # 60 fps PTS spacing
    assert health.state is SourceState.ENDED
    assert health.frames_received == 100
    assert health.frames_dropped == 0 and health.decode_errors == 0
    assert health.last_error is None


def test_vp9_clip_frame_count_and_times() -> None:
    path = _need(SPORTS2D)
    with open_source(f"file://{path}?pacing=fast", "sports") as src:
        got = _collect(src)
    assert [s for s, _ in got] == list(range(230))
    assert np.all(np.abs(np.diff([t for _, t in got]) - 1 / 30) < TOL_S)
    assert src.health().state is SourceState.ENDED


def test_loop_continues_times_across_the_end() -> None:
    path = _need(CAM01)
    with open_source(f"{path}?pacing=fast&loop=true", "loop") as src:
        frames: list[Frame] = []
        got: list[tuple[int, float]] = []
        for frame in src:
            got.append((frame.seq, frame.t_capture))
            if frame.seq in (0, 100):
                frames.append(frame)  # first frame of pass 1 and pass 2
            if len(got) == 250:
                break
        state = src.health().state
    assert [s for s, _ in got] == list(range(250))
    # One frame interval everywhere, including the jump from the last frame back to the first.
    assert np.all(np.abs(np.diff([t for _, t in got]) - 1 / 60) < TOL_S)
    assert np.array_equal(frames[0].image, frames[1].image)
    assert state is SourceState.LIVE  # a looping file never ends


def test_realtime_mode_is_paced_by_pts() -> None:
    path = _need(CAM01)
    arrivals: list[float] = []
    times: list[float] = []
    with open_source(str(path), "paced") as src:
        for frame in src:
            arrivals.append(time.time())
            times.append(frame.t_capture)
    span = arrivals[-1] - arrivals[0]
    # 100 frames at 60 fps: 99 intervals of 1/60 s = 1.65 s, not "as fast as possible".
    assert 1.5 < span < 3.0
    assert np.all(np.diff(times) > 0)
    # Capture times are on the wall clock: never in the future, and close to arrival.
    lag = np.array(arrivals) - np.array(times)
    assert lag.min() > -0.005 and np.median(lag) < 0.1


def test_slow_consumer_in_realtime_mode_drops_stale_frames() -> None:
    path = _need(CAM01)
    taken: list[int] = []
    with open_source(str(path), "slow") as src:
        while True:
            frame = src.latest(timeout=0.5)
            if frame is None:
                if src.health().state.finished:
                    break
                continue
            taken.append(frame.seq)
            time.sleep(0.05)  # 20 fps consumer on a 60 fps camera
        health = src.health()
    assert health.frames_received == 100
    assert health.frames_dropped > 30
    # Every frame was either taken or dropped, and the gaps in seq are exactly the drops.
    assert len(taken) + health.frames_dropped == 100
    assert taken == sorted(taken)
    gaps = sum(b - a - 1 for a, b in zip([-1, *taken], taken, strict=False)) + (99 - taken[-1])
    assert gaps == health.frames_dropped


def test_lossless_realtime_keeps_every_frame_for_a_slow_consumer() -> None:
    path = _need(CAM01)
    with open_source(str(path), "lossless", lossless=True) as src:
        seqs = []
        for frame in src:
            seqs.append(frame.seq)
            time.sleep(0.02)
        health = src.health()
    assert seqs == list(range(100))
    assert health.frames_dropped == 0


def test_dead_camera_never_blocks_a_live_one() -> None:
    path = _need(CAM01)
    # Nothing listens on port 9 of loopback ("discard"): the RTSP source keeps reconnecting.
    with open_source("rtsp://127.0.0.1:9/none", "dead") as dead, open_source(f"{path}?loop=1", "live") as live:
        t_end = time.monotonic() + 1.5
        live_frames = 0
        worst = 0.0
        while time.monotonic() < t_end:
            t0 = time.monotonic()
            assert dead.latest(timeout=0.01) is None
            worst = max(worst, time.monotonic() - t0)
            if live.latest(timeout=0.01) is not None:
                live_frames += 1
        dead_health = dead.health()
    assert worst < 0.1  # a poll with timeout 0.01 returns promptly
    assert live_frames > 40  # ~60 fps for 1.5 s, minus what the poll misses
    assert dead_health.state in (SourceState.CONNECTING, SourceState.RECONNECTING)
    assert dead_health.attempts >= 1 and dead_health.reconnects == 0  # attempts, not outages
    assert "cannot open rtsp://127.0.0.1:9/none" in (dead_health.last_error or "")


def test_health_reports_fps_and_age() -> None:
    path = _need(CAM01)
    with open_source(f"{path}?loop=true", "fps") as src:
        time.sleep(1.2)
        health = src.health()
    assert 45 < health.fps < 75
    assert health.last_frame_age_s is not None and health.last_frame_age_s < 0.2
    as_dict = health.to_dict()
    assert as_dict["state"] == "live" and as_dict["camera_id"] == "fps"


def test_latest_before_start_is_a_programming_error() -> None:
    path = _need(CAM01)
    source = FileSource(FileSpec(path=path), "unstarted")
    with pytest.raises(RuntimeError, match="not started"):
        source.latest()
    source.close()


# ---------------------------------------------------------------- damaged files


@pytest.fixture(scope="module")
def faststart_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """cam01 remuxed with the index (moov) first, as streaming encoders write it."""
    path = tmp_path_factory.mktemp("clips") / "faststart.mp4"
    with av.open(str(_need(CAM01))) as src, av.open(str(path), "w", options={"movflags": "faststart"}) as dst:
        in_stream = src.streams.video[0]
        out_stream = dst.add_stream_from_template(in_stream)
        for packet in src.demux(in_stream):
            if packet.dts is None:
                continue
            packet.stream = out_stream
            dst.mux(packet)
    return path


def _run_to_end(uri: str) -> tuple[int, SourceHealth]:
    with open_source(uri, "damaged") as src:
        count = sum(1 for _ in src)
        return count, src.health()


def test_truncated_file_without_index_fails_with_clear_message(tmp_path: Path) -> None:
    data = _need(CAM01).read_bytes()
    assert data.find(b"moov") > len(data) // 2  # the index is at the end of this file
    bad = tmp_path / "truncated.mp4"
    bad.write_bytes(data[: len(data) // 2])
    count, health = _run_to_end(f"{bad}?pacing=fast")
    assert count == 0
    assert health.state is SourceState.FAILED
    error = health.last_error or ""
    assert "cannot open video file" in error and "truncated.mp4" in error


def test_truncated_streaming_file_plays_what_it_has(faststart_clip: Path, tmp_path: Path) -> None:
    data = faststart_clip.read_bytes()
    bad = tmp_path / "cut.mp4"
    bad.write_bytes(data[: len(data) // 2])
    count, health = _run_to_end(f"{bad}?pacing=fast")
    assert 20 < count < 100
    assert health.state is SourceState.ENDED
    assert f"ended after {count} of 100 frames" in (health.last_error or "")


def test_corrupted_payload_frames_are_skipped_and_counted(tmp_path: Path) -> None:
    data = bytearray(_need(CAM01).read_bytes())
    rng = random.Random(0)
    start = data.find(b"mdat") + 1000
    for _ in range(200):  # scribble over the compressed frames, leave the container intact
        pos = rng.randrange(start, data.find(b"moov") - 8)
        data[pos : pos + 8] = bytes(rng.randrange(256) for _ in range(8))
    bad = tmp_path / "corrupt.mp4"
    bad.write_bytes(bytes(data))
    count, health = _run_to_end(f"{bad}?pacing=fast")
    assert health.decode_errors > 0
    assert count == health.frames_received
    assert count + health.decode_errors >= 100
    assert health.state is SourceState.ENDED


@pytest.mark.parametrize("content", [b"", b"this is not a video\n" * 100])
def test_not_a_video_fails_without_raising(tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(content)
    count, health = _run_to_end(str(bad))
    assert count == 0
    assert health.state is SourceState.FAILED
    assert "cannot open video file" in (health.last_error or "")


# ---------------------------------------------------------------- machinery


def _frame(seq: int) -> Frame:
    return Frame(image=np.zeros((2, 2, 3), np.uint8), t_capture=float(seq), camera_id="c", seq=seq)


def test_frame_rejects_wrong_images() -> None:
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        Frame(image=np.zeros((2, 2), np.uint8), t_capture=0.0, camera_id="c", seq=0)
    with pytest.raises(ValueError, match="float32"):
        Frame(image=np.zeros((2, 2, 3), np.float32), t_capture=0.0, camera_id="c", seq=0)
    with pytest.raises(ValueError, match="seq"):
        Frame(image=np.zeros((2, 2, 3), np.uint8), t_capture=0.0, camera_id="c", seq=-1)


def test_slot_keeps_newest_and_counts_drops() -> None:
    slot = LatestFrameSlot()
    assert slot.take(timeout=0) is None
    for i in range(3):
        assert slot.put(_frame(i))
    taken = slot.take(timeout=0)
    assert taken is not None and taken.seq == 2
    assert slot.dropped == 2
    assert slot.take(timeout=0.01) is None  # never hands the same frame twice
    slot.put(_frame(3))
    slot.close()
    last = slot.take()
    assert last is not None and last.seq == 3  # a frame put before close is still delivered
    assert slot.take(timeout=None) is None  # closed and empty: returns at once
    assert not slot.put(_frame(4))


def test_lossless_slot_blocks_producer_until_taken() -> None:
    slot = LatestFrameSlot(lossless=True)
    produced: list[int] = []

    def produce() -> None:
        for i in range(5):
            if slot.put(_frame(i)):
                produced.append(i)
        slot.close()

    thread = threading.Thread(target=produce)
    thread.start()
    time.sleep(0.1)
    assert produced == [0]  # the second put waits for the consumer
    got = []
    while (frame := slot.take(timeout=1.0)) is not None:
        got.append(frame.seq)
    thread.join(1.0)
    assert got == [0, 1, 2, 3, 4] and slot.dropped == 0


def test_abandon_releases_a_blocked_lossless_producer() -> None:
    slot = LatestFrameSlot(lossless=True)
    slot.put(_frame(0))
    results: list[bool] = []
    thread = threading.Thread(target=lambda: results.append(slot.put(_frame(1))))
    thread.start()
    time.sleep(0.05)
    slot.abandon()
    thread.join(1.0)
    assert results == [False] and not thread.is_alive()


def test_stream_clock_anchors_clamps_and_resyncs() -> None:
    clock = StreamClock(max_lag_s=1.0)
    # First frame: stream time 10.0 arrives at wall 1000.2 -> anchored there.
    assert clock.to_wall(10.0, 1000.2) == pytest.approx(1000.2)
    # Stream advanced 1/30 s, arrival a little later (latency jitter): stream spacing wins.
    assert clock.to_wall(10.0 + 1 / 30, 1000.25) == pytest.approx(1000.2 + 1 / 30)
    # A frame that arrives faster than the first did would map to the future: clamped to now.
    assert clock.to_wall(10.1, 1000.28) == pytest.approx(1000.28)
    # ... and the anchor moved: the next frame is relative to the new anchor.
    assert clock.to_wall(10.2, 1000.5) == pytest.approx(1000.38)
    # Falling more than max_lag behind (slow camera clock) re-anchors at now.
    assert clock.to_wall(10.3, 1002.0) == pytest.approx(1002.0)
    assert clock.resyncs == 1
    # Stream time going backwards (camera restarted) re-anchors too.
    assert clock.to_wall(0.0, 1003.0) == pytest.approx(1003.0)
    # No timestamp: the arrival time is the best estimate.
    assert clock.to_wall(None, 1004.0) == 1004.0


def test_stream_clock_trusts_a_synced_absolute_clock() -> None:
    clock = StreamClock(absolute_tolerance_s=1.0)
    assert clock.to_wall(999.9, 1000.0) == pytest.approx(999.9)  # within 1 s: sender's time kept
    other = StreamClock(absolute_tolerance_s=1.0)
    assert other.to_wall(500.0, 1000.0) == pytest.approx(1000.0)  # clocks disagree: anchored


def test_backoff_grows_to_its_bound_and_resets() -> None:
    backoff = Backoff(first_s=0.25, max_s=5.0, rng=random.Random(1))
    delays = [backoff.next_delay() for _ in range(10)]
    for i, delay in enumerate(delays):
        nominal = min(5.0, 0.25 * 2**i)
        assert 0.8 * nominal <= delay <= nominal
    assert max(delays) <= 5.0
    backoff.reset()
    assert backoff.next_delay() <= 0.25
    with pytest.raises(ValueError):
        Backoff(first_s=2.0, max_s=1.0)


def test_fps_meter_window() -> None:
    meter = FpsMeter(window_s=2.0)
    for i in range(61):
        meter.tick(100.0 + i / 30)
    assert meter.fps(102.0) == pytest.approx(30.0, rel=1e-6)
    assert meter.fps(110.0) == 0.0  # nothing for a whole window
