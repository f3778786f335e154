"""Drawing the skeleton on frames and writing the rehearsal overlay video.

Right limbs are orange, left limbs blue, the spine green (the usual mocap convention), so a technician
spots a left/right swap at a glance. Joints below the confidence threshold are drawn hollow. With
several performers in a frame, each skeleton carries its name above the head, in the performer's colour.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any

import cv2
import numpy as np

from stagepose.errors import ConfigError
from stagepose.skeleton import LIMBS, Joint

MAX_DRAW_PX = 100_000.0  # joints further than this from the image origin are not drawn (see draw_pose)
RIGHT = (0, 140, 255)  # BGR orange
LEFT = (255, 140, 0)  # BGR blue
CENTRE = (60, 200, 60)
PERFORMER_COLOURS = ((0, 255, 255), (255, 0, 255), (255, 255, 0), (0, 0, 255), (0, 255, 0), (255, 255, 255))


def performer_colour(index: int) -> tuple[int, int, int]:
    """The name colour of the ``index``-th performer of a camera (BGR)."""
    return PERFORMER_COLOURS[index % len(PERFORMER_COLOURS)]


def _colour(a: Joint, b: Joint) -> tuple[int, int, int]:
    names = (a.name, b.name)
    if any(n.startswith("r_") for n in names):
        return RIGHT
    if any(n.startswith("l_") for n in names):
        return LEFT
    return CENTRE


def draw_pose(
    image: np.ndarray,
    joints: np.ndarray,
    confidence: np.ndarray,
    min_confidence: float = 0.3,
    box: tuple[tuple[float, float], tuple[float, float]] | None = None,
    label: str | None = None,
    name: str | None = None,
    name_colour: tuple[int, int, int] = (255, 255, 255),
) -> np.ndarray:
    """Draw one pose on a copy of ``image`` (H, W, 3) BGR.

    Args:
        joints: (16, 2) image pixels (NaN: not drawn).
        confidence: (16,) in 0..1; below ``min_confidence`` limbs are skipped and joints hollow.
        box: optional crop box ((cx, cy), (w, h)) drawn as a thin rectangle.
        label: text for the top-left corner (camera, status, latency).
        name: the performer's name, written above the highest seen joint; name_colour: its BGR colour.
    """
    out = image.copy()
    scale = max(image.shape[:2]) / 1000.0
    thick = max(2, int(round(4 * scale)))
    radius = max(3, int(round(6 * scale)))
    # finite but far outside any image (a 3D point reprojected near a camera's plane lands at 1e12 px):
    # not drawable, and OpenCV refuses coordinates beyond int32 (a replay crashed on one)
    ok = (np.abs(joints) < MAX_DRAW_PX).all(axis=1)  # False for NaN and inf as well
    for a, b in sorted(LIMBS):
        if ok[a] and ok[b] and confidence[a] >= min_confidence and confidence[b] >= min_confidence:
            pa = tuple(int(round(v)) for v in joints[a])
            pb = tuple(int(round(v)) for v in joints[b])
            cv2.line(out, pa, pb, _colour(a, b), thick, cv2.LINE_AA)
    for j in Joint:
        if not ok[j]:
            continue
        p = tuple(int(round(v)) for v in joints[j])
        filled = confidence[j] >= min_confidence
        cv2.circle(out, p, radius, (255, 255, 255), -1 if filled else max(1, thick // 2), cv2.LINE_AA)
    if box is not None:
        (cx, cy), (w, h) = box
        p0 = (int(cx - w / 2), int(cy - h / 2))
        p1 = (int(cx + w / 2), int(cy + h / 2))
        cv2.rectangle(out, p0, p1, (200, 200, 200), max(1, thick // 2))
    if name and ok.any():
        font = cv2.FONT_HERSHEY_SIMPLEX
        size = max(0.6, 1.2 * scale)
        top = joints[ok][np.argmin(joints[ok][:, 1])]
        x, y = int(top[0]), max(int(top[1] - 3 * radius), 30)
        (tw, th), _ = cv2.getTextSize(name, font, size, thick)
        cv2.rectangle(out, (x - tw // 2 - 6, y - th - 8), (x + tw // 2 + 6, y + 8), (0, 0, 0), -1)
        cv2.putText(out, name, (x - tw // 2, y), font, size, name_colour, thick, cv2.LINE_AA)
    if label:
        font = cv2.FONT_HERSHEY_SIMPLEX
        size = max(0.5, 0.8 * scale)
        (tw, th), _ = cv2.getTextSize(label, font, size, max(1, thick // 2))
        cv2.rectangle(out, (0, 0), (tw + 16, th + 16), (0, 0, 0), -1)
        cv2.putText(out, label, (8, th + 8), font, size, (255, 255, 255), max(1, thick // 2), cv2.LINE_AA)
    return out


class OverlayWriter:
    """H.264 MP4 writer (PyAV) for overlay frames; a context manager that finalises the file."""

    def __init__(self, path: str | Path, fps: float, size: tuple[int, int], crf: int = 23) -> None:
        """Args: path to the .mp4; fps of the source; size (w, h), even numbers (H.264 4:2:0)."""
        self.path = Path(path)
        self.fps = fps
        self.size = (size[0] - size[0] % 2, size[1] - size[1] % 2)
        self.crf = crf
        self._container: Any = None  # av.container.OutputContainer while open
        self._stream: Any = None
        self.frames = 0

    def __enter__(self) -> OverlayWriter:
        import av

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._container = av.open(str(self.path), mode="w")
        except OSError as exc:
            raise ConfigError(f"overlay video {self.path}: cannot write: {exc}") from None
        rate = Fraction(self.fps).limit_denominator(1001)
        self._stream = self._container.add_stream("libx264", rate=rate)
        self._stream.width, self._stream.height = self.size
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = {"crf": str(self.crf), "preset": "veryfast"}
        return self

    def write(self, image: np.ndarray) -> None:
        """Append one (H, W, 3) BGR frame (cropped to even size if needed)."""
        import av

        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image[: self.size[1], : self.size[0]]), format="bgr24")
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._container is None:
            return
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        self._container = None
