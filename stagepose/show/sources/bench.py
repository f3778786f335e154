"""Micro-benchmark: what one video frame costs to decode through the file source.

    python -m stagepose.show.sources.bench VIDEO [--repeat 3]

Prints milliseconds per frame for (1) PyAV decode on one thread, (2) decode plus the BGR conversion on
one thread (the CPU cost of a frame) and (3) the whole `FileSource` path in lossless fast mode with
FFmpeg's own threading and a consumer that does nothing (the wall time per frame, thread hand-off
included), each the best of ``--repeat`` runs. Not a test: timings depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import av
import numpy as np

from stagepose.show.sources.factory import open_source
from stagepose.show.sources.uri import FileSpec


def _single_thread(path: Path, convert: bool) -> tuple[float, int, str]:
    """(ms/frame, frames, 'WxH codec') decoding on one thread: the CPU cost of a frame."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_type = "NONE"
        stream.codec_context.thread_count = 1
        frames = 0
        t0 = time.perf_counter()
        for frame in container.decode(stream):
            if convert:
                np.ascontiguousarray(frame.to_ndarray(format="bgr24"))
            frames += 1
        elapsed = time.perf_counter() - t0
        desc = f"{stream.width}x{stream.height} {stream.codec_context.name}"
    return 1000 * elapsed / max(frames, 1), frames, desc


def _through_source(path: Path) -> float:
    """ms/frame through FileSource (fast, lossless), from open to the last frame taken."""
    t0 = time.perf_counter()
    with open_source(FileSpec(path=path, pacing="fast"), "bench") as source:
        frames = sum(1 for _ in source)
    return 1000 * (time.perf_counter() - t0) / max(frames, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("video", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    if not args.video.is_file():
        print(f"bench: video file not found: {args.video}", file=sys.stderr)
        return 2
    decode = min(_single_thread(args.video, convert=False)[0] for _ in range(args.repeat))
    full, frames, desc = _single_thread(args.video, convert=True)
    full = min([full] + [_single_thread(args.video, convert=True)[0] for _ in range(args.repeat - 1)])
    source = min(_through_source(args.video) for _ in range(args.repeat))
    print(f"{args.video.name}: {desc}, {frames} frames, best of {args.repeat}")
    print(f"  decode, 1 thread              {decode:6.2f} ms/frame")
    print(f"  decode + BGR, 1 thread        {full:6.2f} ms/frame  (CPU cost of one frame)")
    print(f"  FileSource fast, threaded     {source:6.2f} ms/frame  (wall time per frame, thread hand-off included)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
