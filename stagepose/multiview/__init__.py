"""Several calibrated cameras, one performer in 3D stage metres (issue 14's core; see docs/multicamera.md).

* `cameras`: `Rig`, the show's cameras with intrinsics and extrinsics in one world frame (metres, z up);
* `triangulate`: consensus, confidence-weighted DLT and rejection per joint, left/right swap repair;
* `timesync`: frames of several cameras matched by capture time, with their skew;
* `associate`: the same person across cameras, by name or by epipolar distance;
* `smoothing`: the show's Kalman filter in metres with three axes;
* `axes`: world coordinates for TouchDesigner (m, Y up) and Unreal (cm, Z up, left-handed);
* `bench`, `measure`: ``stagepose bench triangulate | multiview``; `synthetic`: a scene with known answers.

Not yet wired into ``live``/``replay``/OSC/the record. Names are imported lazily (no OpenCV at import).
"""

from __future__ import annotations

from stagepose.lazy import lazy_getattr

_EXPORTS = {
    "Rig": "stagepose.multiview.cameras",
    "RigCamera": "stagepose.multiview.cameras",
    "Triangulation": "stagepose.multiview.triangulate",
    "TriangulationSettings": "stagepose.multiview.triangulate",
    "triangulate": "stagepose.multiview.triangulate",
    "triangulate_performers": "stagepose.multiview.triangulate",
    "match_streams": "stagepose.multiview.timesync",
    "group_latest": "stagepose.multiview.timesync",
    "by_epipolar": "stagepose.multiview.associate",
    "by_name": "stagepose.multiview.associate",
    "make_smoother_3d": "stagepose.multiview.smoothing",
    "convert": "stagepose.multiview.axes",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_getattr(__name__, _EXPORTS)
