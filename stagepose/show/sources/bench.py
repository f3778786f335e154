"""What one video frame costs to decode through the file source (``stagepose bench sources``).

Milliseconds per frame for (1) PyAV decode on one thread, (2) decode plus the BGR conversion on one
thread (the CPU cost of a frame) and (3) the whole `FileSource` path in lossless fast mode with FFmpeg's
own threading and a consumer that does nothing (the wall time per frame, thread hand-off included), each
the best of ``repeat`` runs. Timings depend on the machine and its load.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

from stagepose.errors import ConfigError


def _single_thread(path: Path, convert: bool, max_frames: int | None) -> tuple[float, int, str]:
    """(ms/frame, frames, 'WxH codec') decoding on one thread: the CPU cost of a frame."""
    import av
    import numpy as np

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_type = "NONE"
        stream.codec_context.thread_count = 1
        frames = 0
        t0 = time.perf_counter()
        for frame in itertools.islice(container.decode(stream), max_frames):
            if convert:
                np.ascontiguousarray(frame.to_ndarray(format="bgr24"))
            frames += 1
        elapsed = time.perf_counter() - t0
        desc = f"{stream.width}x{stream.height} {stream.codec_context.name}"
    return 1000 * elapsed / max(frames, 1), frames, desc


def _through_source(path: Path, max_frames: int | None) -> float:
    """ms/frame through FileSource (fast, lossless), from open to the last frame taken."""
    from stagepose.show.sources.factory import open_source
    from stagepose.show.sources.uri import FileSpec

    t0 = time.perf_counter()
    with open_source(FileSpec(path=path, pacing="fast"), "bench", lossless=True) as source:
        frames = sum(1 for _ in itertools.islice(source, max_frames))
    return 1000 * (time.perf_counter() - t0) / max(frames, 1)


def bench_sources(video: Path, *, repeat: int = 3, max_frames: int | None = None) -> dict[str, Any]:
    """Decode cost of ``video`` per frame, three ways, each the best of ``repeat`` runs.

    Args:
        video: a local video file.
        repeat: runs per measurement (the best counts).
        max_frames: decode at most this many frames per run (None: the whole clip).

    Returns:
        ``{video, frame_size, codec, frames, repeat, decode_ms, decode_bgr_ms, file_source_ms}`` (ms per frame).

    Raises:
        ConfigError: the file does not exist, or ``repeat`` / ``max_frames`` is below 1.
    """
    if not video.is_file():
        raise ConfigError(f"video file not found: {video}")
    if repeat < 1 or (max_frames is not None and max_frames < 1):
        raise ConfigError(f"repeat ({repeat}) and frames ({max_frames}) must be >= 1")
    decode = min(_single_thread(video, False, max_frames)[0] for _ in range(repeat))
    runs = [_single_thread(video, True, max_frames) for _ in range(repeat)]
    source = min(_through_source(video, max_frames) for _ in range(repeat))
    _, frames, desc = runs[0]
    size, codec = desc.split(" ", 1)
    return {
        "video": str(video),
        "frame_size": [int(v) for v in size.split("x")],
        "codec": codec,
        "frames": frames,
        "repeat": repeat,
        "decode_ms": round(decode, 3),  # one thread, no conversion
        "decode_bgr_ms": round(min(r[0] for r in runs), 3),  # one thread: the CPU cost of a frame
        "file_source_ms": round(source, 3),  # FileSource, fast + lossless: wall time, hand-off included
    }
