"""The monitor's pictures: a camera frame downscaled, with the zones, the crops and each performer's
skeleton coloured by confidence, encoded as JPEG.

Runs on the monitor's render thread, never on the show loop, and only for frames a browser will see.
The frame is downscaled first and everything is drawn on the small copy (the show's frame is never
written). Confidence colours (also the page's legend): green at ``CONFIDENT`` and above, amber from the
show's ``tracking.min_confidence`` (what OSC counts as a seen joint), red below; limbs take the weaker
of their two joints. Zones and names are in the performer's colour (the overlay video's colours).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import cv2
import numpy as np

from stagepose.show.overlay import performer_colour
from stagepose.show.result import PerformerResult
from stagepose.skeleton import LIMBS

CONFIDENT = 0.6  # at and above: green
GREEN = (80, 200, 80)  # BGR
AMBER = (0, 190, 255)
RED = (60, 60, 230)
CROP = (200, 200, 200)
_LIMB_A = np.array([a for a, _ in sorted(LIMBS)])
_LIMB_B = np.array([b for _, b in sorted(LIMBS)])


def confidence_colour(confidence: float, min_confidence: float) -> tuple[int, int, int]:
    """BGR colour of a joint (or limb) of ``confidence``: green, amber or red (see the module docstring)."""
    if confidence >= max(CONFIDENT, min_confidence):
        return GREEN
    if confidence >= min_confidence:
        return AMBER
    return RED


def downscale(image: np.ndarray, width: int) -> tuple[np.ndarray, float]:
    """``image`` (H, W, 3) shrunk to at most ``width`` pixels wide, and the scale used.

    Halves by 2x2 averaging while the image is at least twice too wide (OpenCV's fast path: about 1 ms
    for 1080x1920 where area averaging by a non-integer factor takes 13), then bilinear to the width, which
    no longer aliases at a factor under 2.

    Returns:
        (a new (h, w, 3) uint8 image, w / W); never the input array itself, so drawing on it is safe.
    """
    height_in, width_in = image.shape[:2]
    scale = min(1.0, width / width_in)
    if scale == 1.0:
        return image.copy(), 1.0
    out = image
    while out.shape[1] >= 2 * width:
        out = cv2.resize(out, (out.shape[1] // 2, out.shape[0] // 2), interpolation=cv2.INTER_AREA)
    size = (max(1, round(width_in * scale)), max(1, round(height_in * scale)))
    if (out.shape[1], out.shape[0]) != size or out is image:
        out = cv2.resize(out, size, interpolation=cv2.INTER_LINEAR)
    return out, scale


def render_view(
    image: np.ndarray,
    results: Sequence[PerformerResult],
    zones: Mapping[str, np.ndarray | None],
    *,
    width: int,
    min_confidence: float,
) -> np.ndarray:
    """One camera's picture for the page.

    Args:
        image: the camera frame (H, W, 3) BGR; not modified.
        results: the performers' results of that frame (smoothed ``joints`` are drawn, as OSC sends them).
        zones: performer OSC name -> zone polygon (K, 2) image pixels, None for anywhere; the order gives
            each performer's colour (the order of the show file).
        width: the picture's largest width in pixels.
        min_confidence: the show's ``tracking.min_confidence``.

    Returns:
        The (h, w, 3) BGR picture, at most ``width`` wide.
    """
    out, scale = downscale(image, width)
    thick = max(1, round(out.shape[1] / 240))
    colours = {name: performer_colour(k) for k, name in enumerate(zones)}
    for name, zone in zones.items():
        if zone is not None:
            points = np.round(np.asarray(zone, dtype=np.float64) * scale).astype(np.int32)
            cv2.polylines(out, [points], True, colours[name], thick, cv2.LINE_AA)
    for result in results:
        if result.crop is not None:
            (cx, cy), (w, h) = result.crop.center, result.crop.size
            p0 = (round((cx - w / 2) * scale), round((cy - h / 2) * scale))
            p1 = (round((cx + w / 2) * scale), round((cy + h / 2) * scale))
            cv2.rectangle(out, p0, p1, CROP, 1)
        _draw_skeleton(out, result, scale, thick, min_confidence, colours.get(result.performer, (255, 255, 255)))
    return out


def _draw_skeleton(
    out: np.ndarray,
    result: PerformerResult,
    scale: float,
    thick: int,
    min_confidence: float,
    name_colour: tuple[int, int, int],
) -> None:
    """Limbs and joints in one OpenCV call per confidence colour (each call is a trip through the GIL that the
    show loop may be waiting for), then the name above the highest joint."""
    joints = np.asarray(result.joints, dtype=np.float64) * scale
    conf = np.asarray(result.confidence, dtype=np.float64)
    seen = np.asarray(np.isfinite(joints).all(axis=1))
    if not seen.any():
        return
    points = np.zeros((len(joints), 2), np.int32)
    points[seen] = np.round(joints[seen]).astype(np.int32)
    high = max(CONFIDENT, min_confidence)

    def level(values: np.ndarray) -> np.ndarray:  # 0 green, 1 amber, 2 red (as `confidence_colour`)
        return np.where(values >= high, 0, np.where(values >= min_confidence, 1, 2))

    drawn = seen[_LIMB_A] & seen[_LIMB_B]
    limb_level = level(np.minimum(conf[_LIMB_A], conf[_LIMB_B]))
    joint_level = level(conf)
    for k, colour in enumerate((GREEN, AMBER, RED)):
        chosen = drawn & (limb_level == k)
        if chosen.any():
            segments = np.stack([points[_LIMB_A[chosen]], points[_LIMB_B[chosen]]], axis=1)
            cv2.polylines(out, list(segments), False, colour, thick + 1, cv2.LINE_AA)
    for k, colour in enumerate((GREEN, AMBER, RED)):
        chosen = seen & (joint_level == k)
        if chosen.any():  # a zero-length thick segment is a round dot
            dots = np.stack([points[chosen], points[chosen]], axis=1)
            cv2.polylines(out, list(dots), False, colour, 2 * thick + 3, cv2.LINE_AA)
    label = result.performer if result.tracked else f"{result.performer} LOST"
    top = points[seen][np.argmin(points[seen][:, 1])]
    font, size = cv2.FONT_HERSHEY_SIMPLEX, 0.45
    (tw, th), _ = cv2.getTextSize(label, font, size, 1)
    x, y = int(top[0]) - tw // 2, max(int(top[1]) - 3 * thick - 6, th + 4)
    cv2.rectangle(out, (x - 3, y - th - 3), (x + tw + 3, y + 4), (0, 0, 0), -1)
    cv2.putText(out, label, (x, y), font, size, name_colour, 1, cv2.LINE_AA)


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    """JPEG bytes of a BGR image.

    Raises:
        RuntimeError: OpenCV could not encode it (not expected for a uint8 BGR image).
    """
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("OpenCV could not encode the monitor picture as JPEG")
    return data.tobytes()
