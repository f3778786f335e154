"""Camera calibration: lens intrinsics, the stage floor homography, and their use at run time.

Per camera, one versioned YAML file (``calibration/<camera>.yaml``, see `files`):

* `intrinsics`: chessboard detection and lens calibration (``stagepose calibrate intrinsics``);
* `stage`: the image-to-floor homography from marked floor points (``stagepose calibrate stage``);
* `aid`: the grid aid and check images for marking points;
* `extrinsics`: the camera's pose in the show's 3D world from measured points (``calibrate extrinsics``);
* `qualisys`: import of a Qualisys (QTM) calibration (``calibrate import-qualisys``);
* `mapper`: `StageMapper`, what the show runtime calls per frame.

Names are imported lazily so that ``import stagepose.calibration`` stays cheap (no OpenCV) for the CLI.
"""

from __future__ import annotations

from stagepose.lazy import lazy_getattr

_EXPORTS = {
    "CameraCalibration": "stagepose.calibration.files",
    "Extrinsics": "stagepose.calibration.files",
    "Intrinsics": "stagepose.calibration.files",
    "StageCalibration": "stagepose.calibration.files",
    "load_calibration": "stagepose.calibration.files",
    "save_calibration": "stagepose.calibration.files",
    "StageMapper": "stagepose.calibration.mapper",
    "FloorEstimate": "stagepose.calibration.mapper",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_getattr(__name__, _EXPORTS)
