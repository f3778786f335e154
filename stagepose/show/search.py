"""Search windows: where a track that has lost (or not yet found) its performer looks.

The zone box alone finds a performer who fills the zone, but not one who is small in a wide shot or
stands beside someone else (the single-person model then reports whoever dominates the crop). So a
searching track also tries windows of a few heights (fractions of the frame height, largest first) laid
over the zone on a half-window grid, a few per frame in rotation: the batch stays bounded and the frame
time flat, and a full scan of a zone takes ``len(windows) / budget`` frames.

With a stage calibration the windows are sized by the floor instead: the calibration says where a
person ``tracking.performer_height_m`` tall standing at each floor point of the zone appears (feet to
head, `StageMapper.head_pixels`), so each window is the training crop of a person standing there
(``CROP_MARGIN``), and the scale augmentation the model was trained with (+-25 %) covers performers
from about 1.4 to 2.2 m. Far from the camera the windows are small and many, near it large and few;
no window is the wrong size for the place it looks at.

Why windows and not a person detector: the pipeline must run on the show machine's CPUs with nothing
downloaded, and the pose model already is a person detector of sorts (enough confident joints inside the
zone = a person). A window costs one more 128x128 crop in the batch that runs anyway.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import cv2
import numpy as np

from stagepose.transforms import CROP_MARGIN, box_with_aspect

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
    x0, y0, x1, y1 = zone_bounds(zone, frame_size)
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


def zone_bounds(zone: np.ndarray | None, frame_size: tuple[int, int]) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) of the zone's bounding box, or of the whole frame without a zone."""
    if zone is None:
        return 0.0, 0.0, float(frame_size[0]), float(frame_size[1])
    (x0, y0), (x1, y1) = zone.min(axis=0), zone.max(axis=0)
    return float(x0), float(y0), float(x1), float(y1)


def _steps(low: float, high: float, step: float) -> list[float]:
    """Centres from ``low`` to ``high`` every ``step`` (just the middle when the span is shorter)."""
    span = high - low
    if span <= step:
        return [(low + high) / 2]
    count = int(np.ceil(span / step))
    return [float(low + span * (i + 0.5) / count) for i in range(count)]


BODY_WIDTH = 0.35  # a standing person's width, in heights (arms down): the windows' minimum width
MIN_WINDOW = 0.05  # smallest window, as a fraction of the frame height (as ``search_heights`` allows)
FEET_GRID = 40  # feet positions tried per frame height, before windows that repeat a neighbour are dropped


def standing_windows(
    zone: np.ndarray | None,
    frame_size: tuple[int, int],
    head_of: Callable[[np.ndarray], np.ndarray],
    input_aspect: float,
    margin: float = CROP_MARGIN,
) -> list[CropBox]:
    """Windows sized by the stage calibration: each frames a person standing at a floor point of the zone.

    Args:
        zone: (P, 2) image polygon, or None for the whole frame.
        frame_size: (w, h) of the frames.
        head_of: (N, 2) feet pixels -> (N, 2) head pixels of a performer standing there (NaN where the
            floor is not seen), e.g. ``functools.partial(mapper.head_pixels, height_m=1.75)``.
        input_aspect: model input width / height.
        margin: crop side = person box side x this (the training crop margin).

    Returns:
        Windows largest (nearest the camera) first, each at least half a window from the others of
        its size.
    """
    from stagepose.show.tracking import CropBox

    width, height = frame_size
    x0, y0, x1, y1 = zone_bounds(zone, frame_size)
    step = height / FEET_GRID
    xs, ys = np.meshgrid(np.arange(x0 + step / 2, x1, step), np.arange(y0 + step / 2, y1, step))
    feet = np.column_stack([xs.ravel(), ys.ravel()])
    if zone is not None and len(feet):
        inside = [cv2.pointPolygonTest(zone, (float(x), float(y)), False) >= 0 for x, y in feet]
        feet = feet[np.asarray(inside, dtype=bool)]
    if not len(feet):
        return []
    heads = head_of(feet)
    tall = np.linalg.norm(heads - feet, axis=1)
    # upright, in front of the camera, and not smaller than the smallest fixed-size window (a person a
    # few pixels tall near the horizon gives the model nothing to find)
    ok = np.isfinite(tall) & (tall * margin >= MIN_WINDOW * height) & (heads[:, 1] < feet[:, 1])
    out: list[CropBox] = []
    for i in np.argsort(-np.where(ok, tall, -1.0)):
        if not ok[i]:
            break
        w, h = box_with_aspect(BODY_WIDTH * tall[i] * margin, tall[i] * margin, input_aspect)
        centre = (feet[i] + heads[i]) / 2
        if not (0 <= centre[0] < width and 0 <= centre[1] < height):
            continue
        if any(abs(b.size[1] / h - 1) < 0.3 and np.hypot(*(np.asarray(b.center) - centre)) < 0.5 * h for b in out):
            continue
        out.append(CropBox((float(centre[0]), float(centre[1])), (float(w), float(h)), "search"))
    return out
