"""`stagepose live` of a multiview show: four calibrated cameras -> one 3D skeleton per performer over OSC.

End to end on real footage (skipped without ``../shared`` or the shipped model): the four ``pose2sim_multi``
clips, made lighter for two CPU cores (half size, 30 fps; the calibrations scaled to match), play as
looping files at their own pace, i.e. four unsynchronised live feeds. The show sends to a real UDP socket,
which decodes the bundles: one per performer per fused step with ``/pose3d`` in TouchDesigner axes, the
keypoint record gets ``pose3d`` lines, and a camera that never connects leaves the other three
triangulating. `FrameSync` itself is checked on sources that deliver on set clocks.
"""

from __future__ import annotations

import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import yaml
from show_support import REPO, SHARED_DATA, UdpCollector, write_show

from stagepose.show.config import load_show
from stagepose.show.live import run_live
from stagepose.show.record import read_record
from stagepose.show.sources import Frame
from stagepose.show.sync import FrameSync
from stagepose.skeleton import Joint

MULTI = SHARED_DATA / "video" / "pose2sim_multi"
CLIPS = [MULTI / f"cam0{i}.mp4" for i in range(1, 5)]
SHOW = REPO / "show_configs" / "pose2sim_multi.yaml"
MODEL = REPO / "engines" / "lshm2_campaign_lspet_128.onnx"
SCALE = 0.5  # 1088x1920 -> 544x960
RUN_S = 12.0  # the show's length: the first seconds go to warming up four decoders on a busy machine
missing = [str(p) for p in (*CLIPS, MODEL) if not p.is_file()]


def _half_clip(src: Path, dst: Path) -> None:
    """``src`` at half size and every second frame (30 fps), H.264."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height = 544, 960
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, 30)
        for i, frame in enumerate(inp.decode(video=0)):
            if i % 2:
                continue
            image = cv2.resize(frame.to_ndarray(format="bgr24"), (544, 960), interpolation=cv2.INTER_AREA)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def _half_calibration(src: Path, dst: Path) -> None:
    """The calibration of a view scaled to half size: K and image size halved, the floor homography kept."""
    data = yaml.safe_load(src.read_text())
    data["image_size"] = [int(v * SCALE) for v in data["image_size"]]
    k = np.array(data["intrinsics"]["camera_matrix"], dtype=float)
    k[:2] *= SCALE
    data["intrinsics"]["camera_matrix"] = k.tolist()
    h = np.array(data["stage"]["homography"], dtype=float)
    data["stage"]["homography"] = (h @ np.diag([1 / SCALE, 1 / SCALE, 1.0])).tolist()
    dst.write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.fixture(scope="module")
def half_rig(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the four half-size clips and their calibrations."""
    folder = tmp_path_factory.mktemp("half_rig")
    for i, clip in enumerate(CLIPS, start=1):
        _half_clip(clip, folder / f"cam0{i}.mp4")
        _half_calibration(REPO / "calibration" / "pose2sim" / "multi" / f"cam0{i}.yaml", folder / f"cam0{i}.yaml")
    return folder


def _live_show(folder: Path, rig: Path, port: int, *, dead_camera: str | None = None) -> Path:
    """The shipped pose2sim_multi show on the half-size looping clips, OSC to ``port``, a record."""
    config = yaml.safe_load(SHOW.read_text())
    for camera in config["cameras"]:
        camera["uri"] = f"{rig / (camera['id'] + '.mp4')}?loop=true"
        camera["calibration"] = str(rig / f"{camera['id']}.yaml")
        if camera["id"] == dead_camera:
            camera["uri"] = "rtsp://127.0.0.1:9/nothing"  # nothing listens: never connects
            camera["stall_timeout_s"] = 1.0
    for performer in config["performers"]:
        performer["cameras"] = {cid: (np.array(zone) * SCALE).tolist() for cid, zone in performer["cameras"].items()}
    config["model"]["path"] = str(MODEL)
    config["outputs"] = {
        "osc": [{"name": "td", "host": "127.0.0.1", "port": port, "axes": "touchdesigner"}],
        "record": {"path": "record.jsonl"},
    }
    config["run"] = {"max_duration_s": RUN_S}
    return write_show(folder, config)


def _bundles(collector: UdpCollector, performer: str) -> list[dict[str, list[float]]]:
    """The performer's bundles, each as address -> arguments."""
    from pythonosc.osc_bundle import OscBundle

    out = []
    for data in collector.datagrams:
        if not OscBundle.dgram_is_bundle(data):
            continue
        messages = {m.address: list(m.params) for m in OscBundle(data)}
        if f"/stagepose/{performer}/status" in messages:
            out.append(messages)
    return out


@pytest.mark.skipif(bool(missing), reason=f"not present (../shared data or the shipped model): {missing}")
def test_live_four_cameras_send_one_3d_skeleton_per_performer(tmp_path: Path, half_rig: Path) -> None:
    collector = UdpCollector()
    try:
        show = load_show(_live_show(tmp_path, half_rig, collector.port))
        summary = run_live(show)
        time.sleep(0.2)
    finally:
        collector.close()
    mv = summary.multiview
    assert summary.stopped_by == "max_duration_s reached"
    assert mv["steps"] >= 10, mv
    # frames of one step were captured together (the files play in lockstep: one shared clock)
    assert mv["skew_ms"]["max_ms"] <= mv["sync_tolerance_ms"] + 0.5, mv
    assert 25.0 <= mv["frame_period_ms"] <= 40.0, mv
    assert mv["sync_wait_ms"]["max_ms"] <= 100.0 + 20.0  # never holds the show longer than the cap (+ scheduling)
    assert mv["tracked_share"]["lead"] >= 0.5 and mv["tracked_share"]["partner"] >= 0.5, mv

    for name in ("lead", "partner"):
        bundles = _bundles(collector, name)
        # one bundle per fused step (none per camera: the 2D stream is the primary camera's), plus /status 0
        # once a second while no camera had delivered yet (four decoders starting on a busy machine)
        assert 0 <= len(bundles) - mv["steps"] <= 3, (name, len(bundles), mv["steps"])
        tracked = [b for b in bundles if b[f"/stagepose/{name}/status"][0] == 1.0]
        assert len(tracked) >= 0.5 * len(bundles)
        pose3d = np.array([b[f"/stagepose/{name}/pose3d"] for b in tracked]).reshape(len(tracked), 16, 4)
        assert all(len(b[f"/stagepose/{name}/pose"]) == 48 for b in tracked)
        # TouchDesigner axes: metres, Y up. The head is above the ankles, a body's height above the floor.
        head, ankles = pose3d[:, Joint.head_top], pose3d[:, [Joint.r_ankle, Joint.l_ankle]]
        seen = ankles[:, :, 3] > 0  # the treadmill hides the lead's feet in some views
        both = (head[:, 3] > 0) & seen.any(axis=1)
        assert both.sum() >= 4, name
        height = head[both, 1] - np.where(seen, ankles[:, :, 1], np.inf)[both].min(axis=1)
        assert 1.0 <= float(np.median(height)) <= 2.2, (name, np.median(height))  # head-top joint to ankle joint
        # the floor point travels with it, whenever an ankle or the pelvis is triangulated (the treadmill hides
        # the lead's feet in some steps: then there is no /stage, never a made-up one)
        with_floor = [b[f"/stagepose/{name}/stage"] for b in tracked if f"/stagepose/{name}/stage" in b]
        assert len(with_floor) >= len(tracked) // 2 and all(len(v) == 2 for v in with_floor), name
    assert max(len(d) for d in collector.datagrams) <= 1472

    record = read_record(tmp_path / "record.jsonl")
    lines3d = [r for r in record if r["type"] == "pose3d"]
    assert len(lines3d) == 2 * mv["steps"]
    first = lines3d[0]
    assert {"t_capture", "performer", "joints3d", "latency_ms", "step_cameras"} <= set(first)
    assert len(first["joints3d"]) == 16 and all(len(j) == 4 for j in first["joints3d"])
    times = [r["t_capture"] for r in lines3d if r["performer"] == "lead"]
    assert all(b > a for a, b in zip(times, times[1:]))
    assert any(r["type"] == "frame" for r in record)  # each camera's 2D poses stay in the record


@pytest.mark.skipif(bool(missing), reason=f"not present (../shared data or the shipped model): {missing}")
def test_live_multiview_keeps_triangulating_without_one_camera(tmp_path: Path, half_rig: Path) -> None:
    collector = UdpCollector()
    try:
        show = load_show(_live_show(tmp_path, half_rig, collector.port, dead_camera="cam04"))
        summary = run_live(show)
    finally:
        collector.close()
    mv = summary.multiview
    assert summary.frames["cam04"] == 0 and "cam04" in summary.cameras_without_frames
    assert mv["steps"] >= 10 and mv["tracked_share"]["lead"] >= 0.3, mv
    record = read_record(tmp_path / "record.jsonl")
    used = {cam for r in record if r["type"] == "pose3d" for cam in r["views_used"]}
    assert used and "cam04" not in used
    assert any(r["type"] in ("camera_lost", "camera_failed") and r["camera"] == "cam04" for r in record)


# --- FrameSync on sources that deliver on set clocks ---------------------------------------------------------


class _ClockSource:
    """Delivers frames of a fixed period and phase on the wall clock, newest only, as a live source does."""

    def __init__(self, camera_id: str, period_s: float, phase_s: float, t0: float, offset_s: float = 0.0) -> None:
        self.camera_id, self.period_s, self.phase_s, self.t0 = camera_id, period_s, phase_s, t0
        self.offset_s = offset_s  # its clock's error: what it stamps minus when it delivers
        self.taken = -1
        self.image = np.zeros((4, 4, 3), np.uint8)

    def _newest(self, now: float) -> int:
        return int((now - self.t0 - self.phase_s) // self.period_s)

    def latest(self, timeout: float | None = 0.0) -> Frame | None:
        deadline = time.monotonic() + (timeout or 0.0)
        while True:
            n = self._newest(time.time())
            if n > self.taken and n >= 0:
                self.taken = n
                return Frame(self.image, self.t0 + self.phase_s + n * self.period_s + self.offset_s, self.camera_id, n)
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.0005)


def test_frame_sync_waits_for_a_late_camera_and_leaves_out_one_off_clock() -> None:
    t0 = time.time()
    period = 1 / 30
    sources = {
        "a": _ClockSource("a", period, 0.0, t0),
        "b": _ClockSource("b", period, 0.6 * period, t0),  # 20 ms after a: its newest is often a's previous
        "c": _ClockSource("c", period, 0.2 * period, t0, offset_s=-0.5),  # its clock is 0.5 s behind: never in step
    }
    sync = FrameSync(list(sources), tolerance_s=None, wait_s=None, max_wait_s=0.1)
    steps = []
    stop = time.monotonic() + 1.5
    while time.monotonic() < stop:
        synced = sync.take(sources, expected=["a", "b", "c"])
        if synced is not None:
            steps.append(synced)
        time.sleep(0.05)  # a slow model: the sources run ahead between takes
    assert len(steps) >= 10
    later = steps[3:]  # once the periods are measured
    assert all(abs(sync.period_s(cid) - period) < 0.002 for cid in "ab")
    assert all({"a", "b"} <= set(s.step) for s in later)  # the one behind is waited for, not left out
    assert any(s.waited_s > 0.005 for s in later)
    assert all("c" not in s.step for s in later)  # c's clock is off: it sits out, it is not forced in
    assert all(s.skew_s <= period / 2 + 1e-6 for s in later)
    assert all(s.waited_s <= 0.1 + 0.02 for s in steps)  # bounded even for c


def test_frame_sync_does_not_wait_for_cameras_not_expected() -> None:
    t0 = time.time()
    sources = {"a": _ClockSource("a", 1 / 30, 0.0, t0), "dead": _ClockSource("dead", 1 / 30, 0.0, t0 + 3600)}
    sync = FrameSync(list(sources), tolerance_s=0.010, wait_s=0.08, max_wait_s=0.1)
    time.sleep(0.05)
    started = time.monotonic()
    synced = sync.take(sources, expected=["a"])
    assert synced is not None and synced.step == ("a",)
    assert time.monotonic() - started < 0.03  # the dead camera is not waited for
    synced = sync.take(sources, expected=["a", "dead"])  # expected but silent: waits at most wait_s
    assert synced is None or synced.waited_s <= 0.08 + 0.02


def test_a_silent_rig_sends_every_performer_lost(tmp_path: Path) -> None:
    """Every camera down: /status 0 for each performer about once a second, never a 3D pose."""
    if missing:
        pytest.skip(f"not present: {missing}")
    collector = UdpCollector()
    config = yaml.safe_load(_live_show(tmp_path, tmp_path, collector.port).read_text())
    for camera in config["cameras"]:
        camera["uri"] = "rtsp://127.0.0.1:9/nothing"
        camera["calibration"] = str(REPO / "calibration" / "pose2sim" / "multi" / f"{camera['id']}.yaml")
    config["performers"] = yaml.safe_load(SHOW.read_text())["performers"]
    config["run"] = {"max_duration_s": 3.5}
    stop = threading.Event()
    try:
        summary = run_live(load_show(write_show(tmp_path, config, "silent.yaml")), stop=stop)
    finally:
        collector.close()
    assert summary.show_failed and summary.multiview["steps"] == 0
    lost = _bundles(collector, "lead")
    assert 2 <= len(lost) <= 5 and all(b["/stagepose/lead/status"][0] == 0.0 for b in lost)
    assert all(max(b["/stagepose/lead/pose3d"][3::4]) == 0.0 for b in lost)
