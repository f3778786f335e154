"""`stagepose bench pipeline`: what the show pipeline costs per frame besides the model.

Runs the real pipeline (source decode, crop, inference, heatmap decode, tracking + smoothing + stage
mapping, OSC send, record write) over a video, lossless and as fast as possible, and reports each
stage per frame, so the model's share and the pipeline's own overhead are visible. OSC goes to a
loopback port nobody listens on (UDP does not care); the record goes to a temporary folder. With
``monitor_wait_s`` the monitor page is served too (the show's ``monitor`` section) and the timed frames
start once a browser has opened it; blocks of ``MONITOR_BLOCK_FRAMES`` frames with the page updating
(pictures drawn, encoded, sent and shown) and paused alternate, and the report gives the frame time of
each and the difference: what a watched show costs, measured in one run.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stagepose.errors import ConfigError
from stagepose.show.config import ShowConfig
from stagepose.show.live import open_show_backend
from stagepose.show.osc import OscDestinationConfig, OscSink, PerformerFrame
from stagepose.show.pipeline import PosePipeline
from stagepose.show.record import KeypointRecorder
from stagepose.show.result import PerformerResult
from stagepose.show.telemetry import latency_summary

if TYPE_CHECKING:
    from stagepose.show.monitor.server import MonitorServer
    from stagepose.show.monitor.snapshot import ShowStatus

MODEL_STAGES = ("infer",)
MONITOR_SETTLE_S = 3.0  # with --monitor, timing starts this long after the page opened
MONITOR_BLOCK_FRAMES = 20  # with --monitor, the page updates for this many frames, then pauses for as many


def bench_pipeline(
    show: ShowConfig,
    video: Path,
    max_frames: int = 300,
    monitor_wait_s: float | None = None,
    loop: bool = False,
    monitor_client: bool = False,
) -> dict[str, Any]:
    """Per-frame milliseconds of every stage over ``video`` (at most ``max_frames`` frames).

    Args:
        monitor_wait_s: serve the monitor page and wait up to this long for a browser to open it before
            timing (None: no monitor).
        loop: play the clip again from its start until ``max_frames`` are timed (a longer, steadier run).
        monitor_client: with ``monitor_wait_s``, open the page with `stagepose.show.monitor.client` in a
            process of its own (what a browser on another machine asks of the show) instead of waiting for one.

    Raises:
        ConfigError: the clip does not fit the show, or no browser opened the monitor in time.
    """
    from stagepose.show.sources import open_source
    from stagepose.show.sources.uri import FileSpec

    camera = replace(show.active_cameras[0], uri=str(video))
    times: dict[str, list[float]] = {"source": [], "osc": [], "record": []}
    monitor_stats: dict[str, Any] | None = None
    with open_show_backend(show) as backend, tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as watch:
        server = None
        if monitor_wait_s is not None:
            server = watch.enter_context(_watched(show, camera.id, monitor_wait_s, monitor_client))
        if server is not None:
            times["monitor"] = []
        pipeline = PosePipeline(show, backend, [camera])
        probe = OscDestinationConfig(name="bench", host="127.0.0.1", port=9, per_joint_messages=True)
        spec = FileSpec(path=video.resolve(), loop=loop, pacing="fast")
        with open_source(spec, camera.id, lossless=True) as source, OscSink([probe]) as sink, KeypointRecorder(
            Path(tmp) / "bench.jsonl"
        ) as recorder:
            size = None
            frame_ms: dict[bool, list[float]] = {True: [], False: []}  # --monitor: page updating, page paused
            while len(times["source"]) < max_frames:
                # --monitor: blocks of frames with the page updating and paused alternate, so whatever else
                # the machine does at the time weighs on both alike
                watched = (len(times["source"]) // MONITOR_BLOCK_FRAMES) % 2 == 0
                if server is not None:
                    server.feed.paused = not watched
                t0 = time.perf_counter()
                frame = source.latest(timeout=None)
                t1 = time.perf_counter()
                if frame is None:
                    break
                size = (frame.width, frame.height)
                result = pipeline.process([frame], t_send=time.time)[0]
                if result.refused:  # the clip changed resolution mid-way and no longer fits
                    raise ConfigError(f"{video}: frame {frame.seq}: {result.reason}")
                t2 = time.perf_counter()
                sink.send_performer(PerformerFrame.from_result(result, show.tracking.min_confidence))
                t3 = time.perf_counter()
                recorder.write_result(result, None)
                t4 = time.perf_counter()
                if server is not None:  # what the live loop does for the page: a hand-over, status twice a second
                    server.feed.publish(frame, [result], (time.time() - frame.t_capture) * 1e3)
                    if server.feed.status_due(time.monotonic()):
                        server.feed.publish_status(_bench_status(show, camera.id, result, sink))
                    times["monitor"].append((time.perf_counter() - t4) * 1e3)
                    frame_ms[watched].append((time.perf_counter() - t0) * 1e3)
                times["source"].append((t1 - t0) * 1e3)
                times["osc"].append((t3 - t2) * 1e3)
                times["record"].append((t4 - t3) * 1e3)
        stages = {**pipeline.times.ms, **times}
        desc = backend.describe()
        if server is not None:
            on, off = (latency_summary(frame_ms[k]) for k in (True, False))
            monitor_stats = {
                "url": server.url, **server.stats(), "block_frames": MONITOR_BLOCK_FRAMES,
                "frame_ms_page_updating": on, "frame_ms_page_paused": off,
                "growth_mean_ms": round(on["mean_ms"] - off["mean_ms"], 3) if on["count"] and off["count"] else None,
                "growth_p50_ms": round(on["p50_ms"] - off["p50_ms"], 3) if on["count"] and off["count"] else None,
            }  # fmt: skip
    per_stage = {name: latency_summary(values) for name, values in stages.items()}
    mean = {name: s.get("mean_ms", 0.0) for name, s in per_stage.items()}
    model_ms = sum(mean[s] for s in MODEL_STAGES)
    overhead_ms = sum(v for k, v in mean.items() if k not in MODEL_STAGES)
    return {
        "video": str(video),
        "frame_size": list(size) if size else None,
        "frames": len(times["source"]),
        "backend": desc,
        "stages_ms": per_stage,
        "model_mean_ms": round(model_ms, 3),
        "overhead_mean_ms": round(overhead_ms, 3),
        "model_share": round(model_ms / (model_ms + overhead_ms), 3) if model_ms + overhead_ms else None,
        "frame_mean_ms": round(model_ms + overhead_ms, 3),
        "monitor": monitor_stats,
    }


@contextlib.contextmanager
def _watched(show: ShowConfig, camera_id: str, wait_s: float, client: bool) -> Iterator[MonitorServer]:
    """The monitor page of ``show``, once a browser (or with ``client``, our stand-in) has it open."""
    from stagepose.show.monitor.server import MonitorServer
    from stagepose.show.monitor.snapshot import MonitorFeed

    with contextlib.ExitStack() as stack:
        server = stack.enter_context(MonitorServer(show, show.monitor, MonitorFeed(), camera_ids=[camera_id]))
        if client:
            command = [sys.executable, "-m", "stagepose.show.monitor.client", server.url, "--seconds", "86400"]
            process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
            stack.callback(process.wait, 10)
            stack.callback(process.terminate)
        else:
            print(f"bench pipeline: open {server.url} in a browser (waiting up to {wait_s:g} s)", file=sys.stderr)
        deadline = time.monotonic() + wait_s
        while not server.feed.watching:
            if time.monotonic() > deadline:
                raise ConfigError(f"--monitor: no browser opened {server.url} within {wait_s:g} s")
            time.sleep(0.05)
        time.sleep(MONITOR_SETTLE_S)  # the browser's own start-up is not what a watched show costs
        yield server


def _bench_status(show: ShowConfig, camera_id: str, result: PerformerResult, sink: OscSink) -> ShowStatus:
    from stagepose.show.monitor.snapshot import ShowStatus
    from stagepose.show.status import CameraStatus

    board = CameraStatus(camera_id=camera_id, performer=result.performer, source_state="live", fps=0.0,
                         latency_p50_ms=float("nan"), latency_p95_ms=float("nan"), dropped=0, reconnects=0,
                         tracked=result.tracked)  # fmt: skip
    return ShowStatus(show=show.show, mode="live", elapsed_s=0.0, backend="bench", cameras=[board],
                      tracked={(camera_id, result.performer): result.tracked}, osc=sink.stats())  # fmt: skip
