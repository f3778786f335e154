"""Sample frames from rehearsal videos for labelling.

Two ways to choose frames:

- ``every_s``: one frame every N seconds of video time (the first frame at or after 0, N, 2N ...);
- ``motion``: a frame whose difference to the LAST SAVED frame reaches ``motion`` grey levels (mean
  absolute difference, 0..255, of frames shrunk to 96 px wide, grey and slightly blurred), at least
  ``min_gap_s`` after it. Comparing with the last saved frame rather than the previous one collects
  distinct poses: at 60 fps even fast movement changes little between neighbouring frames, and a slow
  walk never would; a still stage yields nothing new.

JPEGs are named ``<video>_t<seconds>.jpg`` (video time, millisecond resolution, zero-padded so names sort
by time) and listed in ``manifest.json`` beside them (merged with an existing manifest). Decoding uses
PyAV; the time comes from each frame's presentation timestamp relative to the stream start.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from stagepose.errors import DataError
from stagepose.fileio import atomic_write_text

logger = logging.getLogger(__name__)

MOTION_WIDTH = 96  # px: frames are compared at this width (noise and compression artefacts average out)
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class ExtractedFrame:
    """One written frame, as listed in the manifest."""

    file: str
    video: str
    time_s: float
    frame_index: int
    width: int
    height: int
    motion: float | None = None


def _output_stems(videos: Sequence[Path]) -> list[str]:
    """File-name prefixes: the video stem, or ``<folder>_<stem>`` where two videos share a stem."""
    stems = [v.stem for v in videos]
    out = [f"{v.parent.name}_{v.stem}" if stems.count(v.stem) > 1 else v.stem for v in videos]
    dup = sorted({s for s in out if out.count(s) > 1})
    if dup:
        raise DataError(f"several videos would write frames named {dup}; rename them or extract them separately")
    return out


def _small_grey(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    size = (MOTION_WIDTH, max(1, round(h * MOTION_WIDTH / w)))
    grey = cv2.cvtColor(cv2.resize(image, size, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)
    return cv2.GaussianBlur(grey, (3, 3), 0).astype(np.float32)


def extract_frames(
    videos: Sequence[Path],
    out_dir: Path,
    *,
    every_s: float | None = None,
    motion: float | None = None,
    max_frames: int | None = None,
    min_gap_s: float = 0.5,
    jpeg_quality: int = 95,
    progress: bool = True,
) -> list[ExtractedFrame]:
    """Write sampled frames of each video to ``out_dir`` (see module docstring).

    Args:
        videos: video files (anything FFmpeg reads).
        out_dir: output folder (created).
        every_s: seconds between frames; exactly one of ``every_s`` and ``motion``.
        motion: mean absolute grey-level difference (0..255) to the last saved frame.
        max_frames: at most this many frames PER VIDEO.
        min_gap_s: with ``motion``, the least video time between saved frames.
        jpeg_quality: 1..100.
        progress: show a progress bar per video (stderr).

    Returns:
        The frames written in this run, in order.

    Raises:
        DataError: bad options, a missing or unreadable video, or a video without a video stream.
    """
    if (every_s is None) == (motion is None):
        raise DataError("choose one way to sample frames: --every SECONDS or --motion THRESHOLD")
    if every_s is not None and not every_s > 0:
        raise DataError(f"--every must be > 0 seconds, got {every_s}")
    if motion is not None and not 0 < motion <= 255:
        raise DataError(f"--motion is a mean grey-level difference in (0, 255], got {motion}")
    if max_frames is not None and max_frames < 1:
        raise DataError(f"--max must be >= 1, got {max_frames}")
    if not videos:
        raise DataError("no video given")
    videos = [Path(v) for v in videos]
    for video in videos:
        if not video.is_file():
            raise DataError(f"{video}: video file not found")
    stems = _output_stems(videos)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[ExtractedFrame] = []
    for video, stem in zip(videos, stems):
        frames = _extract_one(video, stem, out_dir, every_s, motion, max_frames, min_gap_s, jpeg_quality, progress)
        logger.info("%s: %d frames", video, len(frames))
        written.extend(frames)
    _write_manifest(out_dir, written)
    return written


def _extract_one(
    video: Path,
    stem: str,
    out_dir: Path,
    every_s: float | None,
    motion: float | None,
    max_frames: int | None,
    min_gap_s: float,
    quality: int,
    progress: bool,
) -> list[ExtractedFrame]:
    import av
    from tqdm import tqdm

    try:
        container = av.open(str(video))
    except (av.error.FFmpegError, OSError) as exc:
        raise DataError(f"{video}: cannot open as a video ({exc})") from None
    written: list[ExtractedFrame] = []
    with container:
        if not container.streams.video:
            raise DataError(f"{video}: has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        # Frame times: pts x time_base is in seconds; subtract the stream's first pts so time 0 is the
        # first frame whatever the container's offset. Without pts, count frames at the average rate.
        has_start = stream.start_time is not None and stream.time_base is not None
        start = float(stream.start_time * stream.time_base) if has_start else 0.0  # type: ignore[operator]
        rate = float(stream.average_rate) if stream.average_rate else 25.0
        next_time = 0.0
        last_grey: np.ndarray | None = None
        last_time = -np.inf
        bar = tqdm(total=stream.frames or None, desc=video.name, unit="frame", disable=not progress, leave=False)
        try:
            for index, frame in enumerate(container.decode(stream)):
                bar.update(1)
                t = float(frame.time) - start if frame.time is not None else index / rate
                image = None
                score = None
                if every_s is not None:
                    if t + 1e-6 < next_time:
                        continue
                    next_time = (np.floor(t / every_s + 1e-6) + 1) * every_s
                else:
                    image = frame.to_ndarray(format="bgr24")
                    grey = _small_grey(image)
                    if last_grey is not None:
                        score = float(np.abs(grey - last_grey).mean())
                        if score < motion or t - last_time < min_gap_s:  # type: ignore[operator]
                            continue
                    last_grey, last_time = grey, t
                if image is None:
                    image = frame.to_ndarray(format="bgr24")
                name = f"{stem}_t{t:010.3f}.jpg"
                if not cv2.imwrite(str(out_dir / name), image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)]):
                    raise DataError(f"{out_dir / name}: cannot write the frame (disk full or no permission?)")
                written.append(ExtractedFrame(name, str(video), round(t, 3), index, image.shape[1],
                                              image.shape[0], None if score is None else round(score, 2)))  # fmt: skip
                last_time = t
                if max_frames is not None and len(written) >= max_frames:
                    break
        except av.error.FFmpegError as exc:
            logger.warning("%s: decoding stopped at %.2f s (%s); keeping the %d frames written",
                           video, last_time, exc, len(written))  # fmt: skip
        finally:
            bar.close()
    return written


def _write_manifest(out_dir: Path, frames: list[ExtractedFrame]) -> Path:
    path = out_dir / MANIFEST
    entries: dict[str, dict[str, object]] = {}
    if path.is_file():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
            entries = {e["file"]: e for e in old.get("frames", []) if isinstance(e, dict) and "file" in e}
        except (OSError, ValueError, AttributeError):
            logger.warning("%s: unreadable; writing a new manifest", path)
    entries.update({f.file: asdict(f) for f in frames})
    frames_json = {"frames": sorted(entries.values(), key=lambda e: str(e["file"]))}
    return atomic_write_text(path, json.dumps(frames_json, indent=1))
