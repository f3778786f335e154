"""``stagepose probe``: what a camera source delivers, and a still to write its zone and check its calibration.

The source is opened exactly as a show opens it (`open_source`), the first frame is awaited with a
timeout, and the frame rate that actually arrives is measured for a moment. Files and RTSP streams are
also asked for what their container declares (codec, profile, pixel format, frame rate; PyAV). For
webcams and NDI, what is known is the size of the frames, the measured rate and, for a webcam, the mode
asked for.

The still is the first frame with the labelled pixel grid of the calibration aid (numbers on all four
edges: read a zone corner off the picture), the camera's zone polygon with its corners numbered, and, with
a calibration, the stage floor grid every metre (the same drawing as ``stagepose calibrate stage``'s check
image). A side panel to the right repeats the report; the frame's pixels keep their coordinates.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from stagepose.errors import ConfigError, DataError
from stagepose.show.sources import FileSpec, RtspSpec, SourceSpec, WebcamSpec, open_source, parse_source_uri

if TYPE_CHECKING:
    import numpy as np

    from stagepose.calibration.files import CameraCalibration

log = logging.getLogger(__name__)

PROBE_CAMERA_ID = "probe"
DEFAULT_TIMEOUT_S = 10.0
MEASURE_S = 1.0  # after the first frame, frames are counted this long to measure the rate that arrives
STAGE_STEP_M = 1.0
ZONE_COLOUR = (80, 230, 80)  # BGR


@dataclass(frozen=True)
class StreamInfo:
    """What a file or RTSP container declares about its video track (any field may be unknown)."""

    codec: str | None
    profile: str | None
    pixel_format: str | None
    fps: float | None
    width: int | None
    height: int | None
    duration_s: float | None = None
    frames: int | None = None


@dataclass(frozen=True)
class ProbeResult:
    """One probe of a source.

    Attributes:
        uri: the address (password redacted).
        kind: "rtsp", "file", "webcam" or "ndi".
        image: the first frame, (H, W, 3) uint8 BGR.
        first_frame_s: seconds from opening to the first frame.
        fps_measured: frames per second that arrived over ``measured_over_s`` after the first (0.0 if fewer
            than two came).
        measured_over_s: how long frames were counted.
        stream: what the container declares (files and RTSP), else None.
        requested: for a webcam, the mode asked for in the address ("1280x720 @ 30 fps"), else None.
    """

    uri: str
    kind: str
    image: np.ndarray
    first_frame_s: float
    fps_measured: float
    measured_over_s: float
    stream: StreamInfo | None = None
    requested: str | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the frames."""
        return int(self.image.shape[1]), int(self.image.shape[0])

    def lines(self) -> list[str]:
        """The report, one fact a line."""
        w, h = self.size
        out = [f"source       {self.uri} ({self.kind})", f"size         {w}x{h}"]
        s = self.stream
        declared = f"declared {s.fps:.2f}, " if s is not None and s.fps else ""
        out.append(f"fps          {declared}measured {self.fps_measured:.1f} over {self.measured_over_s:g} s")
        if s is not None:
            codec = " ".join(p for p in (s.codec, f"({s.profile})" if s.profile else None) if p) or "unknown"
            out.append(f"codec        {codec}{', ' + s.pixel_format if s.pixel_format else ''}")
            if s.duration_s is not None:
                out.append(f"duration     {s.duration_s:.2f} s{f', {s.frames} frames' if s.frames else ''}")
        if self.requested:
            out.append(f"requested    {self.requested} (the device picks its nearest mode)")
        out.append(f"first frame  after {self.first_frame_s:.2f} s")
        return out


def parse_uri(uri: str, base_dir: str | Path | None = None) -> SourceSpec:
    """`parse_source_uri` with its ValueError turned into a one-line ConfigError."""
    try:
        return parse_source_uri(uri, base_dir=base_dir)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def probe_source(
    spec: SourceSpec, *, timeout_s: float = DEFAULT_TIMEOUT_S, measure_s: float = MEASURE_S
) -> ProbeResult:
    """Open ``spec`` as a show would, wait for its first frame, measure its rate, read its stream info.

    Raises:
        DataError: no frame within ``timeout_s`` (the message says what the source reported), or the
            source failed (a file that cannot be decoded, a missing NDI wheel).
        EngineError: an ``ndi://`` source without the NDI wheel.
    """
    started = time.monotonic()
    deadline = started + timeout_s
    with open_source(spec, PROBE_CAMERA_ID, stall_timeout_s=max(2.0, timeout_s / 2)) as source:
        uri = source.uri
        frame = None
        while frame is None:
            frame = source.latest(timeout=0.05)
            health = source.health()
            if frame is None and health.state.finished:
                raise DataError(f"{uri}: {health.state.value}: {health.last_error or 'no frame'}")
            if frame is None and time.monotonic() > deadline:
                why = f": {health.last_error}" if health.last_error else f" (still {health.state.value})"
                raise DataError(f"no frame from {uri} within {timeout_s:g} s{why}")
        first_frame_s = time.monotonic() - started
        time.sleep(measure_s)
        fps = source.health().fps
    requested = None
    if isinstance(spec, WebcamSpec) and any(v is not None for v in (spec.width, spec.height, spec.fps)):
        size = f"{spec.width or '?'}x{spec.height or '?'}"
        requested = size + (f" @ {spec.fps:g} fps" if spec.fps else "")
    stream = stream_info(spec, timeout_s) if isinstance(spec, FileSpec | RtspSpec) else None
    return ProbeResult(uri, spec.kind, frame.image, first_frame_s, fps, measure_s, stream, requested)


def stream_info(spec: FileSpec | RtspSpec, timeout_s: float = DEFAULT_TIMEOUT_S) -> StreamInfo | None:
    """What the container declares about its first video track, or None when it cannot be opened."""
    import av

    from stagepose.show.sources.pyav_source import LOW_LATENCY_OPTIONS

    try:
        if isinstance(spec, RtspSpec):
            options = {**LOW_LATENCY_OPTIONS, "rtsp_transport": spec.transport, "timeout": str(int(timeout_s * 1e6))}
            container = av.open(spec.url, container_options=options, timeout=(timeout_s, timeout_s))
        else:
            container = av.open(str(spec.path))
    except (av.FFmpegError, OSError) as exc:
        log.debug("stream info of %s: %s", spec.uri, exc)
        return None
    with container:
        if not container.streams.video:
            return None
        stream = container.streams.video[0]
        ctx = stream.codec_context
        rate = stream.average_rate or stream.guessed_rate
        duration = None
        if isinstance(spec, FileSpec) and container.duration:
            duration = container.duration / 1e6  # FFmpeg's container duration is in microseconds
        return StreamInfo(
            codec=ctx.name or None,
            profile=ctx.profile or None,
            pixel_format=ctx.format.name if ctx.format is not None else None,
            fps=float(rate) if rate else None,
            width=ctx.width or None,
            height=ctx.height or None,
            duration_s=duration,
            frames=stream.frames or None,
        )


def zone_notes(zone: Sequence[Sequence[float]], size: tuple[int, int]) -> list[str]:
    """What a technician should know about a zone in a frame of ``size`` (width, height)."""
    w, h = size
    outside = [(x, y) for x, y in zone if not (0 <= x <= w and 0 <= y <= h)]
    if not outside:
        return [f"zone         {len(zone)} corners, inside the {w}x{h} frame"]
    shown = ", ".join(f"({x:g}, {y:g})" for x, y in outside[:4]) + (" ..." if len(outside) > 4 else "")
    return [f"zone         {len(zone)} corners; {len(outside)} outside the {w}x{h} frame: {shown}"]


def calibration_fits(calibration: CameraCalibration, size: tuple[int, int], source: str) -> str | None:
    """None when ``calibration`` fits frames of ``size``, else why not (the show would refuse it)."""
    have = (int(calibration.image_size[0]), int(calibration.image_size[1]))
    if have != tuple(size):
        return (
            f"{source}: calibrated at {have[0]}x{have[1]} but this source delivers {size[0]}x{size[1]}; "
            f"set the camera to {have[0]}x{have[1]} or recalibrate"
        )
    return None


def draw_still(
    image: np.ndarray,
    report: Sequence[str],
    *,
    zone: Sequence[Sequence[float]] | None = None,
    calibration: CameraCalibration | None = None,
    title: str = "stagepose probe",
) -> np.ndarray:
    """The still: the frame with a labelled pixel grid, the zone, the stage floor grid and a report panel.

    Args:
        image: (H, W, 3) uint8 BGR frame (not modified).
        report: lines for the side panel.
        zone: image polygon [[x, y], ...] in pixels, drawn closed with numbered corners.
        calibration: drawn as the stage floor grid every `STAGE_STEP_M` when it has a stage homography
            and fits the frame (check with `calibration_fits` first; one that does not fit is not drawn).

    Returns:
        BGR image: the frame (same pixel coordinates) with a panel appended on the right.
    """
    import cv2
    import numpy as np

    from stagepose.calibration import aid

    still = image.copy()
    h, w = still.shape[:2]
    step_px = aid.draw_pixel_grid(still)
    lines: list[tuple[str, tuple[int, int, int]]] = [(line, aid.TEXT) for line in report]
    lines += [("", aid.TEXT), (f"pixel grid every {step_px} px (yellow numbers)", aid.PIXEL_LABEL)]
    if zone is not None:
        corners = np.round(np.asarray(zone, dtype=np.float64)).astype(np.int32)
        fill = still.copy()
        cv2.fillPoly(fill, [corners], ZONE_COLOUR)
        cv2.addWeighted(fill, 0.15, still, 0.85, 0, dst=still)
        thick = max(2, round(3 * max(h, w) / 1920))
        cv2.polylines(still, [corners], True, ZONE_COLOUR, thick, cv2.LINE_AA)
        scale = 0.7 * max(h, w) / 1920
        for i, (x, y) in enumerate(corners):
            cv2.circle(still, (int(x), int(y)), 3 * thick, ZONE_COLOUR, -1, cv2.LINE_AA)
            label = f"{i + 1}: {x},{y}"
            (tw, th), _ = cv2.getTextSize(label, aid.FONT, scale, max(1, thick - 1))
            tx = int(np.clip(x + 8, 4, max(4, w - tw - 4)))  # kept inside the frame
            ty = int(np.clip(y - 8, th + 4, h - 4))
            aid._text(still, label, (tx, ty), scale, ZONE_COLOUR, max(1, thick - 1))
        lines.append(("green: the zone, corners numbered in order", ZONE_COLOUR))
    if calibration is not None and calibration.stage is not None and tuple(calibration.image_size) == (w, h):
        stage = calibration.stage
        seen = np.array([p.stage for p in stage.points]) if stage.points else np.zeros((1, 2))
        lens = calibration.intrinsics
        project = aid.FloorProjector.from_homography(stage.H, lens.K, lens.dist, (w, h), seen)
        extent = aid._grid_extent(seen, STAGE_STEP_M, STAGE_STEP_M)
        aid.draw_stage_grid(still, project, extent, STAGE_STEP_M)
        lines.append((f"cyan: stage floor grid every {STAGE_STEP_M:g} m (calibration)", aid.STAGE_GRID))
    return aid._side_panel(still, title, lines)


def write_still(path: str | Path, still: np.ndarray) -> Path:
    """Write the still (PNG or JPEG by its name); raises DataError when it cannot be written."""
    from stagepose.calibration.aid import write_image

    return write_image(path, still)
