"""World coordinates converted to what each receiver expects.

stagepose's world frame (the calibration's): metres, right-handed, z up, x and y on the stage floor as
the venue chose them (e.g. x to stage left, y upstage, origin downstage centre).

* TouchDesigner: metres, right-handed, **Y up**. ``(x, y, z)_TD = (x, z, -y)``: the floor is TD's
  x-z plane, up is +Y, and the venue's +y (upstage) is TD's -Z (away from a default camera looking
  down -Z from +Z). A proper rotation (no mirror), so handedness is kept.
* Unreal Engine: **centimetres**, **left-handed**, Z up (X forward, Y right). ``(x, y, z)_UE =
  100 * (x, -y, z)``: one mirror (y) turns right- into left-handed; up stays +Z.

Every function takes (..., 3) arrays (one joint, a pose, a whole recording) and keeps NaN.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Convention = Literal["world", "touchdesigner", "unreal"]
CONVENTIONS: tuple[str, ...] = ("world", "touchdesigner", "unreal")

# Rows: receiver axes in world coordinates; columns applied to (x, y, z) world.
TOUCHDESIGNER = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
UNREAL = 100.0 * np.array([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 1.0]])


def _points(points: np.ndarray) -> np.ndarray:
    arr = np.asarray(points, dtype=np.float64)
    if arr.shape[-1:] != (3,):
        raise ValueError(f"points must have a last axis of 3 (x, y, z), got shape {arr.shape}")
    return arr


def to_touchdesigner(points: np.ndarray) -> np.ndarray:
    """World (metres, z up, right-handed) -> TouchDesigner (metres, Y up, right-handed)."""
    return _points(points) @ TOUCHDESIGNER.T


def to_unreal(points: np.ndarray) -> np.ndarray:
    """World (metres, z up, right-handed) -> Unreal (centimetres, Z up, left-handed)."""
    return _points(points) @ UNREAL.T


def convert(points: np.ndarray, convention: Convention) -> np.ndarray:
    """World points in ``convention`` (``world`` returns a float64 copy).

    Raises:
        ValueError: an unknown convention, or points without a last axis of 3.
    """
    if convention == "world":
        return _points(points).copy()
    if convention == "touchdesigner":
        return to_touchdesigner(points)
    if convention == "unreal":
        return to_unreal(points)
    raise ValueError(f"unknown axis convention {convention!r}; known: {', '.join(CONVENTIONS)}")
