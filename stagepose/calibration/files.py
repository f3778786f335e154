"""Camera calibration files: versioned YAML read into typed, frozen dataclasses.

One file per camera (``calibration/<camera>.yaml``). It holds the resolution the calibration is valid
for, the lens intrinsics (camera matrix, distortion, RMS error) and, once the stage has been
calibrated, the homography from undistorted image pixels to stage floor metres with its error.

Example (``version: 1``)::

    version: 1
    camera: cam01
    image_size: [1088, 1920]          # width, height in pixels
    intrinsics:
      camera_matrix:                  # [[fx, 0, cx], [0, fy, cy], [0, 0, 1]] in pixels
      - [1674.17, 0.0, 563.29]
      - [0.0, 1674.22, 932.99]
      - [0.0, 0.0, 1.0]
      distortion: [-0.0512, 0.1463, -0.0002, 0.0009]   # OpenCV order k1 k2 p1 p2 [k3 ...]
      rms_px: 0.23
      views: 7
      board: {cols: 4, rows: 7, square_m: 0.06}
    extrinsics:                       # optional, written by `calibrate extrinsics` / `import-qualisys`
      rotation:                       # R (or `rodrigues: [rx, ry, rz]`, OpenCV's rvec, instead)
      - [0.5536, 0.8047, 0.2144]
      - [0.4345, -0.0595, -0.8987]
      - [-0.7104, 0.5907, -0.3826]
      translation_m: [0.3211, 0.9563, 2.8907]   # t in metres: x_cam = R @ X_world + t
      rms_px: 0.8                     # reprojection RMS of the points it was fitted to (absent: imported)
      source: qualisys Calib.qca.txt
    stage:                            # optional, written by `stagepose calibrate stage`
      homography: [[...], [...], [...]]   # undistorted pixel (u, v, 1) -> stage (x, y, 1) in metres
      rms_cm: 0.8
      max_cm: 1.4
      points: [{name: DSC, stage: [0.0, 0.0], pixel: [812.0, 1503.5], error_cm: 0.4}, ...]

The world frame of ``extrinsics`` is one frame for every camera of a show: metres, right-handed, z up
(height above the stage floor, the floor at z = 0), x and y on the floor as the venue chooses them
(``world`` says how). The camera frame is OpenCV's (x right, y down, z along the view). Files without
``extrinsics`` (every file written before it existed) load unchanged.

Files are read with ``yaml.safe_load`` semantics through `stagepose.config`, so a wrong field gives
``FILE:LINE: field 'intrinsics.rms_px': ...``; a missing or unknown ``version`` is refused before
anything else is read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from stagepose.config import from_dict, load_yaml, to_dict
from stagepose.errors import ConfigError
from stagepose.fileio import atomic_write_text

CALIBRATION_VERSION = 1
# Distortion vector lengths OpenCV accepts: (k1 k2 p1 p2), + k3, + k4..k6 (rational), + s1..s4, + tx ty.
DISTORTION_LENGTHS = (4, 5, 8, 12, 14)

Matrix3 = tuple[tuple[float, float, float], tuple[float, float, float], tuple[float, float, float]]


def _finite(values: tuple[float, ...] | list[float], what: str) -> None:
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"{what} holds a non-finite number: {list(values)}")


@dataclass(frozen=True)
class BoardInfo:
    """The chessboard the intrinsics were measured with (for the record; not used at run time)."""

    cols: int
    rows: int
    square_m: float


@dataclass(frozen=True)
class Intrinsics:
    """Lens model: pinhole camera matrix and OpenCV distortion coefficients, in pixels.

    Attributes:
        camera_matrix: [[fx, 0, cx], [0, fy, cy], [0, 0, 1]].
        distortion: OpenCV order (k1, k2, p1, p2[, k3[, k4, k5, k6 ...]]).
        rms_px: RMS reprojection error of the chessboard corners over all views.
        views: number of chessboard views used.
        board: the board used, if known.
    """

    camera_matrix: Matrix3
    distortion: tuple[float, ...]
    rms_px: float
    views: int = 0
    board: BoardInfo | None = None

    def __post_init__(self) -> None:
        rows = self.camera_matrix
        _finite([v for row in rows for v in row], "camera_matrix")
        fx, fy = rows[0][0], rows[1][1]
        if fx <= 0 or fy <= 0:
            raise ValueError(f"camera_matrix focal lengths must be > 0, got fx={fx}, fy={fy}")
        if rows[1][0] != 0 or rows[2] != (0.0, 0.0, 1.0):
            raise ValueError(f"camera_matrix must look like [[fx, 0, cx], [0, fy, cy], [0, 0, 1]], got {rows}")
        if len(self.distortion) not in DISTORTION_LENGTHS:
            raise ValueError(
                f"distortion has {len(self.distortion)} coefficients; OpenCV takes "
                f"{', '.join(map(str, DISTORTION_LENGTHS))} (k1 k2 p1 p2 [k3 ...])"
            )
        _finite(self.distortion, "distortion")
        if not (self.rms_px >= 0):
            raise ValueError(f"rms_px must be >= 0, got {self.rms_px}")

    @property
    def K(self) -> np.ndarray:  # noqa: N802 - the standard name of the camera matrix
        """(3, 3) float64 camera matrix."""
        return np.array(self.camera_matrix, dtype=np.float64)

    @property
    def dist(self) -> np.ndarray:
        """(D,) float64 distortion coefficients."""
        return np.array(self.distortion, dtype=np.float64)


@dataclass(frozen=True)
class StagePointRecord:
    """One floor point used for the stage homography, with its fit error."""

    name: str
    stage: tuple[float, float]
    pixel: tuple[float, float]
    error_cm: float
    loo_error_cm: float | None = None


@dataclass(frozen=True)
class StageCalibration:
    """Image-to-floor mapping.

    Attributes:
        homography: (3, 3) maps an undistorted pixel (u, v, 1) to stage floor (x, y, 1) in metres
            (divide by the third component). Undistorted pixels use the same camera matrix as the
            raw image (OpenCV ``undistortPoints(..., P=K)``).
        rms_cm: RMS distance between each point's known stage position and where its pixel maps.
        max_cm: the largest of those distances.
        loo_rms_cm: leave-one-out RMS (each point predicted by a fit without it): the honest accuracy
            estimate; None with fewer than 5 points.
        points: the points used.
        origin: the venue's description of the origin and axes, copied from the points file.
    """

    homography: Matrix3
    rms_cm: float
    max_cm: float
    loo_rms_cm: float | None = None
    points: tuple[StagePointRecord, ...] = ()
    origin: str = ""

    def __post_init__(self) -> None:
        flat = [v for row in self.homography for v in row]
        _finite(flat, "homography")
        if abs(np.linalg.det(np.array(self.homography))) < 1e-15:
            raise ValueError("homography is singular; re-run `stagepose calibrate stage`")

    @property
    def H(self) -> np.ndarray:  # noqa: N802 - the standard name of a homography
        """(3, 3) float64 homography, undistorted pixels -> stage metres."""
        return np.array(self.homography, dtype=np.float64)


# A stored rotation must be orthonormal to this tolerance (files keep 12 significant digits).
ROTATION_TOL = 1e-6


@dataclass(frozen=True)
class ExtrinsicPointRecord:
    """One point the extrinsics were fitted to: its world position, its pixel and its reprojection error."""

    name: str
    world: tuple[float, float, float]
    pixel: tuple[float, float]
    error_px: float


@dataclass(frozen=True)
class Extrinsics:
    """Where the camera is: the rigid transform from the show's world frame to the camera frame.

    A world point X (metres, right-handed, z up; see the module docstring) is ``x_cam = R @ X + t`` in
    OpenCV's camera frame (x right, y down, z forward); its undistorted pixel is ``K @ x_cam / z``.

    Attributes:
        rotation: R as a 3x3 matrix, or None when ``rodrigues`` gives it (exactly one of the two).
        rodrigues: R as a Rodrigues vector (OpenCV's ``rvec``, radians).
        translation_m: t in metres. This is not the camera's position; that is ``-R.T @ t`` (`centre`).
        rms_px: RMS reprojection error of the points the pose was fitted to; None when imported.
        points: those points (``stagepose calibrate extrinsics``).
        source: where the pose came from (a Qualisys file, solvePnP from N points).
        world: the venue's description of the world origin and axes.
    """

    translation_m: tuple[float, float, float]
    rotation: Matrix3 | None = None
    rodrigues: tuple[float, float, float] | None = None
    rms_px: float | None = None
    points: tuple[ExtrinsicPointRecord, ...] = ()
    source: str = ""
    world: str = ""

    def __post_init__(self) -> None:
        if (self.rotation is None) == (self.rodrigues is None):
            raise ValueError("give the rotation once: either 'rotation' (3x3) or 'rodrigues' ([rx, ry, rz])")
        _finite(self.translation_m, "translation_m")
        if self.rodrigues is not None:
            _finite(self.rodrigues, "rodrigues")
        else:
            r = np.array(self.rotation, dtype=np.float64)
            _finite(r.ravel().tolist(), "rotation")
            deviation = float(np.abs(r @ r.T - np.eye(3)).max())
            if deviation > ROTATION_TOL:
                raise ValueError(
                    f"rotation is not orthonormal (R @ R.T differs from I by {deviation:.2g}): {r.tolist()}"
                )
            if np.linalg.det(r) < 0:
                raise ValueError("rotation has determinant -1 (a mirror): the world frame must be right-handed "
                                 "with z up; swap the direction of one floor axis in the measured points")  # fmt: skip
        if self.rms_px is not None and not (self.rms_px >= 0):
            raise ValueError(f"rms_px must be >= 0, got {self.rms_px}")

    @property
    def R(self) -> np.ndarray:  # noqa: N802 - the standard name of a rotation
        """(3, 3) float64 world-to-camera rotation."""
        if self.rotation is not None:
            return np.array(self.rotation, dtype=np.float64)
        import cv2

        return cv2.Rodrigues(np.array(self.rodrigues, dtype=np.float64))[0]

    @property
    def t(self) -> np.ndarray:
        """(3,) float64 translation in metres."""
        return np.array(self.translation_m, dtype=np.float64)

    @property
    def centre(self) -> np.ndarray:
        """(3,) the camera's position in the world frame, metres."""
        return -self.R.T @ self.t


@dataclass(frozen=True)
class CameraCalibration:
    """Everything stagepose knows about one camera's geometry.

    Attributes:
        version: file format version (1).
        image_size: (width, height) in pixels the calibration is valid for.
        intrinsics: lens model.
        camera: a name for messages (the file stem by default).
        stage: the floor homography, once `stagepose calibrate stage` has run.
        extrinsics: the camera's pose in the show's world frame (several cameras, 3D), once
            `stagepose calibrate extrinsics` or `import-qualisys` has run.
        created_by: which command wrote the file, and when.
    """

    version: int
    image_size: tuple[int, int]
    intrinsics: Intrinsics
    camera: str = ""
    stage: StageCalibration | None = None
    created_by: str = ""
    extrinsics: Extrinsics | None = None

    def __post_init__(self) -> None:
        if self.version != CALIBRATION_VERSION:
            raise ValueError(f"version {self.version} is not supported (this stagepose reads {CALIBRATION_VERSION})")
        w, h = self.image_size
        if w <= 0 or h <= 0:
            raise ValueError(f"image_size must be [width, height] > 0, got {list(self.image_size)}")


def load_calibration(path: str | Path) -> CameraCalibration:
    """Read a calibration file.

    Raises:
        ConfigError: missing file, invalid YAML, missing or unsupported ``version``, missing or wrong
            fields; the message names the file and line.
    """
    data, source = load_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: not a stagepose calibration file (expected a mapping with 'version: 1')")
    if "version" not in data:
        raise ConfigError(
            f"{path}: 'version' is missing: not a stagepose calibration file, or written by an old tool; "
            f"expected 'version: {CALIBRATION_VERSION}' (re-run `stagepose calibrate intrinsics`)"
        )
    version = data["version"]
    if version != CALIBRATION_VERSION:
        raise ConfigError(
            f"{source.where(('version',))}: calibration format version {version!r} is not supported; this "
            f"stagepose reads version {CALIBRATION_VERSION} (upgrade stagepose, or re-run `stagepose calibrate`)"
        )
    return from_dict(CameraCalibration, data, source)


def save_calibration(path: str | Path, calibration: CameraCalibration) -> Path:
    """Write ``calibration`` as YAML, atomically (a crash never leaves half a file).

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = (
        "# stagepose camera calibration. Written by `stagepose calibrate`; see calibration/README.md.\n"
        "# image_size is [width, height] in pixels; camera_matrix and distortion are OpenCV's; stage.homography maps\n"
        "# an undistorted pixel (u, v, 1) to floor metres (x, y, 1); extrinsics: x_cam = R @ X_world + t (m, z up).\n"
    )
    data = _plain(to_dict(calibration))
    if not isinstance(data, dict):  # a dataclass always gives a mapping
        raise TypeError(f"cannot write {type(calibration).__name__}")
    order = ("version", "camera", "image_size", "intrinsics", "extrinsics", "stage", "created_by")
    data = {k: data[k] for k in sorted(data, key=lambda k: order.index(k) if k in order else len(order))}
    body = yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=120)
    return atomic_write_text(path, header + body)


def _plain(value: object) -> object:
    """Plain YAML data: keys whose value is None (optional fields at their default) removed, numpy
    scalars made Python numbers, recursively."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def round_sig(value: float, digits: int = 10) -> float:
    """``value`` rounded to ``digits`` significant digits, so files stay readable."""
    return float(f"{float(value):.{digits}g}")


def matrix3(m: np.ndarray, digits: int = 12) -> Matrix3:
    """(3, 3) array -> nested tuples of rounded floats (the file form)."""
    m = np.asarray(m, dtype=np.float64)
    if m.shape != (3, 3):
        raise ValueError(f"expected a (3, 3) matrix, got {m.shape}")
    return tuple(tuple(round_sig(v, digits) for v in row) for row in m)  # type: ignore[return-value]
