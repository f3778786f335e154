"""A live show through a camera that drops off the network and comes back (real RTSP server on loopback)."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

from show_support import DEMO_CLIP, UdpCollector, base_show, write_show

from stagepose.show.config import load_show
from stagepose.show.live import run_live
from stagepose.show.record import read_record


def _statuses(collector: UdpCollector, performer: str = "p1") -> list[float]:
    return [m.params[0] for _, m in collector.messages() if m.address == f"/stagepose/{performer}/status"]


def _wait(predicate, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_camera_drop_reports_lost_then_tracked_again(tmp_path: Path, small_onnx: Path, rtsp_server) -> None:
    collector = UdpCollector()
    config = base_show(small_onnx, rtsp_server.url, collector.port, stall_timeout_s=1.0)
    # a second camera (a looping clip) must keep going while the first one is away
    config["cameras"].append({"id": "cam2", "uri": f"{DEMO_CLIP}?loop=true&pacing=realtime", "performer": "p2"})
    config["run"] = {"stop_when_sources_end": False, "max_duration_s": 60}
    show = load_show(write_show(tmp_path, config))
    stop = threading.Event()
    status = io.StringIO()
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["summary"] = run_live(show, stop=stop, status_stream=status)
        except BaseException as exc:  # noqa: BLE001 - the test reports any escape
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    try:
        assert _wait(lambda: 1.0 in _statuses(collector), 20), "never tracked while the camera was up"
        rtsp_server.kill()  # the camera drops off the network
        seen = len(_statuses(collector))
        assert _wait(lambda: 0.0 in _statuses(collector)[seen:], 15), "no 'lost' status after the drop"
        assert thread.is_alive()
        other = len(_statuses(collector, "p2"))
        assert _wait(lambda: len(_statuses(collector, "p2")) > other + 10, 10), "cam2 stopped with cam1"
        rtsp_server.start()  # the camera comes back on the same address
        after = len(_statuses(collector))
        assert _wait(lambda: 1.0 in _statuses(collector)[after:], 30), "not tracked again after reconnect"
    finally:
        stop.set()
        thread.join(20)
        collector.close()
    assert "error" not in outcome, outcome.get("error")
    summary = outcome["summary"]
    assert summary.stopped_by == "stop requested" and summary.frames["cam1"] > 0 and summary.frames["cam2"] > 0
    events = [r["type"] for r in read_record(tmp_path / "record.jsonl")]
    assert "camera_lost" in events and "camera_resumed" in events
    assert "reconnecting" in status.getvalue() or "stalled" in status.getvalue()
