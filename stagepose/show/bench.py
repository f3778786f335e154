"""`stagepose bench pipeline`: what the show pipeline costs per frame besides the model.

Runs the real pipeline (source decode, crop, inference, heatmap decode, tracking + smoothing + stage
mapping, OSC send, record write) over a video, lossless and as fast as possible, and reports each
stage per frame, so the model's share and the pipeline's own overhead are visible. OSC goes to a
loopback port nobody listens on (UDP does not care); the record goes to a temporary folder.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from stagepose.errors import ConfigError
from stagepose.show.config import ShowConfig
from stagepose.show.live import open_show_backend
from stagepose.show.osc import OscDestinationConfig, OscSink, PerformerFrame
from stagepose.show.pipeline import PosePipeline
from stagepose.show.record import KeypointRecorder
from stagepose.show.telemetry import latency_summary

MODEL_STAGES = ("infer",)


def bench_pipeline(show: ShowConfig, video: Path, max_frames: int = 300) -> dict[str, Any]:
    """Per-frame milliseconds of every stage over ``video`` (at most ``max_frames`` frames)."""
    from stagepose.show.sources import open_source
    from stagepose.show.sources.uri import FileSpec

    camera = replace(show.active_cameras[0], uri=str(video))
    times: dict[str, list[float]] = {"source": [], "osc": [], "record": []}
    with open_show_backend(show) as backend, tempfile.TemporaryDirectory() as tmp:
        pipeline = PosePipeline(show, backend, [camera])
        probe = OscDestinationConfig(name="bench", host="127.0.0.1", port=9, per_joint_messages=True)
        spec = FileSpec(path=video.resolve(), loop=False, pacing="fast")
        with open_source(spec, camera.id, lossless=True) as source, OscSink([probe]) as sink, KeypointRecorder(
            Path(tmp) / "bench.jsonl"
        ) as recorder:
            size = None
            while len(times["source"]) < max_frames:
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
                times["source"].append((t1 - t0) * 1e3)
                times["osc"].append((t3 - t2) * 1e3)
                times["record"].append((t4 - t3) * 1e3)
        stages = {**pipeline.times.ms, **times}
        desc = backend.describe()
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
    }
