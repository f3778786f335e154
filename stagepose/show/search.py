"""Search windows: where a track that has lost (or not yet found) its performer looks.

The zone box alone finds a performer who fills the zone, but not one who is small in a wide shot or
stands beside someone else (the single-person model then reports whoever dominates the crop). So a
searching track also tries windows of a few heights (fractions of the frame height, largest first) laid
over the zone on a half-window grid, a few per frame in rotation: the batch stays bounded and the frame
time flat, and a full scan of a zone takes ``len(windows) / budget`` frames.

Why windows and not a person detector: the pipeline must run on the show machine's CPUs with nothing
downloaded, and the pose model already is a person detector of sorts (enough confident joints inside the
zone = a person). A window costs one more 128x128 crop in the batch that runs anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import cv2
import numpy as np

from stagepose.transforms import box_with_aspect

if TYPE_CHECKING:
    from stagepose.show.tracking import CropBox


def search_windows(
    zone: np.ndarray | None,
    frame_size: tuple[int, int],
    heights: Sequence[float],
    input_aspect: float,
) -> list[CropBox]:
    """The windows to scan for a performer, largest first.

    Args:
        zone: (P, 2) image polygon, or None for the whole frame.
        frame_size: (w, h) of the frames.
        heights: window heights as fractions of the frame height.
        input_aspect: model input width / height (windows have this aspect).

    Returns:
        Windows whose centre lies inside the zone (or its box, for a zone narrower than a window), on a
        grid with half-window steps over the zone's bounding box.
    """
    from stagepose.show.tracking import CropBox

    width, height = frame_size
    if zone is None:
        x0, y0, x1, y1 = 0.0, 0.0, float(width), float(height)
    else:
        x0, y0 = (float(v) for v in zone.min(axis=0))
        x1, y1 = (float(v) for v in zone.max(axis=0))
    out: list[CropBox] = []
    for fraction in heights:
        w, h = box_with_aspect(input_aspect * fraction * height, fraction * height, input_aspect)
        xs = _steps(x0, x1, w / 2)
        ys = _steps(y0, y1, h / 2)
        for cy in ys:
            for cx in xs:
                if zone is not None and len(xs) * len(ys) > 1 and cv2.pointPolygonTest(zone, (cx, cy), False) < 0:
                    continue
                out.append(CropBox((cx, cy), (float(w), float(h)), "search"))
    return out


def _steps(low: float, high: float, step: float) -> list[float]:
    """Centres from ``low`` to ``high`` every ``step`` (just the middle when the span is shorter)."""
    span = high - low
    if span <= step:
        return [(low + high) / 2]
    count = int(np.ceil(span / step))
    return [float(low + span * (i + 0.5) / count) for i in range(count)]
