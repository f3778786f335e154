"""Shared helpers for the show-runtime tests: a small exported model and show files written to tmp."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import yaml
from pythonosc.osc_bundle import OscBundle
from pythonosc.osc_message import OscMessage

from stagepose.show.sources import Frame, ThreadedSource

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
DEMO_CLIP = REPO / "media" / "pose2sim_cam01.mp4"


def export_small_model(folder: Path) -> Path:
    """A randomly initialised lshm-2 exported at 64x64 (the smallest input), with its sidecar."""
    from stagepose.models import build_model
    from stagepose.models.checkpoint import save_weights
    from stagepose.runtime.export import export_onnx

    weights = save_weights(folder / "small.safetensors", build_model("lshm-2"), "lshm-2")
    return Path(export_onnx(weights, folder / "small.onnx", input_size=(64, 64)).onnx_path)


def write_show(folder: Path, config: dict, name: str = "show.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def base_show(model: Path, uri: str, port: int, **camera: object) -> dict:
    """A one-camera show sending OSC to 127.0.0.1:port, tracking any pose (tests use a random model)."""
    return {
        "show": "test",
        "cameras": [{"id": "cam1", "uri": uri, "performer": "p1", **camera}],
        "model": {"path": str(model), "backend": "onnxruntime", "device": "cpu"},
        "tracking": {"min_confidence": 0.0, "min_joints": 1},
        "outputs": {
            "osc": [{"name": "probe", "host": "127.0.0.1", "port": port, "heartbeat_hz": 10.0}],
            "record": {"path": "record.jsonl"},
        },
        "telemetry": {"status_interval_s": 0.2},
    }


class UdpCollector:
    """Receives datagrams on 127.0.0.1 in a thread until closed."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.datagrams: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.datagrams.append(self.sock.recv(65536))
            except TimeoutError:
                continue

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()

    def messages(self) -> list[tuple[float | None, OscMessage]]:
        out = []
        for data in self.datagrams:
            if OscBundle.dgram_is_bundle(data):
                bundle = OscBundle(data)
                out.extend((bundle.timestamp, m) for m in bundle if isinstance(m, OscMessage))
            else:
                out.append((None, OscMessage(data)))
        return out


def collect_frames(source: ThreadedSource, count: int, timeout: float) -> list[Frame]:
    """Take ``count`` frames from a running source within ``timeout`` seconds (fails the test otherwise)."""
    frames: list[Frame] = []
    deadline = time.monotonic() + timeout
    while len(frames) < count and time.monotonic() < deadline:
        frame = source.latest(timeout=0.1)
        if frame is not None:
            frames.append(frame)
    assert len(frames) == count, f"got {len(frames)} of {count} frames in {timeout} s; {source.health()}"
    return frames
