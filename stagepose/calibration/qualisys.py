"""Import a Qualisys (QTM) camera calibration, ``*.qca.txt``, into stagepose calibration files.

A venue with a Qualisys mocap system hands over its calibration as XML: per camera a ``transform``,
an ``intrinsic`` and the ``fov_video`` window. Its conventions, each checked on the real pose2sim file
by reprojection (a joint triangulated from four views lands on the same body part in all four):

* ``transform x, y, z``: the camera's **position** in the world, in **millimetres**.
* ``transform r11 .. r33``: read row by row they form M, whose rows are the QTM camera's axes in
  world coordinates; the QTM camera looks along its -z with y up. OpenCV's camera looks along +z with
  y down, so ``R = diag(1, -1, -1) @ M`` and ``t = -R @ position``. (pose2sim reads the same numbers
  column by column, transposes, inverts the transform and turns the camera by pi about x: the same R.)
* ``intrinsic focalLengthU/V`` and ``centerPointU/V``: **1/64 pixel**; the principal point is measured
  on the sensor, so ``fov_video``'s left/top offset is subtracted.
* ``radialDistortion1..3``, ``tangentalDistortion1..2``: OpenCV's k1 k2 k3 and p1 p2 **as written**
  (pose2sim's reader divides them by 64 too; on the pose2sim file the values as written are the ones
  that agree with a chessboard fit of the same lenses, k1 -0.046 vs -0.049).
* ``fov_video``: the image is ``right - left + 1`` by ``bottom - top + 1`` pixels.

The world frame is QTM's: metres after conversion, z up (QTM's default), the floor at z = 0 where the
mocap system's L-frame lay on the floor.

A video narrower than the calibrated window by a crop at its right or bottom edge (the pose2sim clips
of cam01/cam02 are 1080 wide, the calibration 1088) keeps the same camera matrix: pass its size with
``sizes``.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET  # noqa: N817 - the usual alias
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stagepose.calibration.files import (
    CameraCalibration,
    Extrinsics,
    Intrinsics,
    StageCalibration,
    matrix3,
    round_sig,
    save_calibration,
)
from stagepose.errors import ConfigError

MAX_QCA_BYTES = 4 * 1024 * 1024  # a QTM calibration is a few kB per camera
PIXEL_UNITS = 64.0  # QTM stores focal length and principal point in 1/64 pixel
_FIX = "export the calibration from QTM again, or fix that value in the file"


@dataclass(frozen=True)
class QualisysCamera:
    """One camera of a QTM calibration, converted to OpenCV conventions (see the module docstring).

    Attributes:
        name: the camera's ``serial``.
        model: QTM's ``model`` attribute (``none`` for a video camera in pose2sim's files).
        image_size: (width, height) pixels from ``fov_video``.
        K: (3, 3) camera matrix, pixels; dist: (4,) or (5,) OpenCV k1 k2 p1 p2 [k3].
        R: (3, 3) world-to-camera rotation; t: (3,) metres (``x_cam = R @ X + t``).
        avg_residual: QTM's ``avg-residual`` (mm in QTM's units), for the record.
    """

    name: str
    model: str
    image_size: tuple[int, int]
    K: np.ndarray
    dist: np.ndarray
    R: np.ndarray
    t: np.ndarray
    avg_residual: float | None = None

    @property
    def centre(self) -> np.ndarray:
        """(3,) camera position in the world, metres."""
        return -self.R.T @ self.t


def _number(element: ET.Element, attribute: str, where: str) -> float:
    raw = element.get(attribute)
    if raw is None:
        raise ConfigError(f"{where}: attribute '{element.tag}.{attribute}' is missing; {_FIX}")
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{where}: '{element.tag}.{attribute}' is {raw!r}, not a number; {_FIX}") from None
    if not math.isfinite(value):
        raise ConfigError(f"{where}: '{element.tag}.{attribute}' is {raw!r}; {_FIX}")
    return value


def _child(camera: ET.Element, tag: str, where: str) -> ET.Element:
    element = camera.find(tag)
    if element is None:
        raise ConfigError(f"{where}: no <{tag}> element; {_FIX}")
    return element


def _camera(element: ET.Element, where: str) -> QualisysCamera:
    name = element.get("serial") or ""
    fov = _child(element, "fov_video", where)
    left, top = _number(fov, "left", where), _number(fov, "top", where)
    width = int(round(_number(fov, "right", where) - left + 1))
    height = int(round(_number(fov, "bottom", where) - top + 1))
    if width <= 0 or height <= 0:
        raise ConfigError(f"{where}: fov_video gives an empty image ({width}x{height}); {_FIX}")

    intrinsic = _child(element, "intrinsic", where)
    fu, fv = (_number(intrinsic, k, where) / PIXEL_UNITS for k in ("focalLengthU", "focalLengthV"))
    cu = _number(intrinsic, "centerPointU", where) / PIXEL_UNITS - left
    cv = _number(intrinsic, "centerPointV", where) / PIXEL_UNITS - top
    if fu <= 0 or fv <= 0:
        raise ConfigError(f"{where}: focal lengths must be > 0, got focalLengthU/V {fu * 64:g}/{fv * 64:g}; {_FIX}")
    k1, k2 = _number(intrinsic, "radialDistortion1", where), _number(intrinsic, "radialDistortion2", where)
    k3 = _number(intrinsic, "radialDistortion3", where) if intrinsic.get("radialDistortion3") is not None else 0.0
    p1, p2 = _number(intrinsic, "tangentalDistortion1", where), _number(intrinsic, "tangentalDistortion2", where)
    dist = np.array([k1, k2, p1, p2] + ([k3] if k3 != 0.0 else []))
    K = np.array([[fu, 0.0, cu], [0.0, fv, cv], [0.0, 0.0, 1.0]])  # noqa: N806

    transform = _child(element, "transform", where)
    m = np.array([[_number(transform, f"r{i}{j}", where) for j in (1, 2, 3)] for i in (1, 2, 3)])
    deviation = float(np.abs(m @ m.T - np.eye(3)).max())
    if deviation > 1e-4 or np.linalg.det(m) < 0:
        raise ConfigError(
            f"{where}: transform r11..r33 is not a rotation (R R^T differs from I by {deviation:.2g}, det "
            f"{np.linalg.det(m):.3f}); {_FIX}"
        )
    u, _, vt = np.linalg.svd(m)  # remove the rounding of the file's digits
    m = u @ vt
    position = np.array([_number(transform, k, where) for k in ("x", "y", "z")]) / 1000.0
    R = np.diag([1.0, -1.0, -1.0]) @ m  # noqa: N806 - QTM camera (y up, looks along -z) -> OpenCV
    residual = element.get("avg-residual")
    try:
        avg = float(residual) if residual is not None else None
    except ValueError:
        avg = None
    return QualisysCamera(
        name=name, model=element.get("model") or "", image_size=(width, height), K=K, dist=dist, R=R,
        t=-R @ position, avg_residual=avg,
    )  # fmt: skip


def read_qca(path: str | Path) -> list[QualisysCamera]:
    """Read every active camera of a QTM calibration file (``*.qca.txt``), in file order.

    Raises:
        ConfigError: a missing, oversized or non-XML file, no cameras, or a camera with a missing or
            wrong value; the message names the file, the camera and the attribute.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file (a Qualisys calibration, e.g. Calib.qca.txt)")
    if path.stat().st_size > MAX_QCA_BYTES:
        raise ConfigError(f"{path}: {path.stat().st_size} bytes is too large for a Qualisys calibration")
    try:
        root = ET.fromstring(path.read_bytes())
    except ET.ParseError as exc:
        raise ConfigError(f"{path}: not a Qualisys calibration (invalid XML: {exc})") from None
    if root.tag != "calibration":
        raise ConfigError(f"{path}: not a Qualisys calibration (the root element is <{root.tag}>, not <calibration>)")
    elements = root.findall("cameras/camera")
    if not elements:
        raise ConfigError(f"{path}: no <cameras><camera> elements: not a Qualisys camera calibration")
    cameras = []
    for i, element in enumerate(elements):
        if element.get("active", "1") != "1":
            continue
        serial = element.get("serial") or ""
        where = f"{path}: camera {i + 1}" + (f" ({serial})" if serial else "")
        if not serial:
            raise ConfigError(f"{where}: no 'serial' attribute to name the camera by; {_FIX}")
        cameras.append(_camera(element, where))
    names = [c.name for c in cameras]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"{path}: camera serials {repeated} are used twice; each file is named after its camera")
    if not cameras:
        raise ConfigError(f'{path}: every camera is inactive (active="0"); nothing to import')
    return cameras


def floor_homography(K: np.ndarray, R: np.ndarray, t: np.ndarray) -> np.ndarray:  # noqa: N803
    """(3, 3) undistorted pixel -> floor (x, y) homography of a posed camera (the floor is z = 0)."""
    return np.linalg.inv(K @ np.column_stack([R[:, 0], R[:, 1], t]))


def to_calibration(camera: QualisysCamera, source: str, image_size: tuple[int, int] | None = None) -> CameraCalibration:
    """A stagepose calibration (intrinsics, extrinsics and the floor homography derived from them).

    Args:
        camera: the imported camera.
        source: the file's name, for the record.
        image_size: the video's size when it is the calibrated window cropped at the right/bottom edges.

    Raises:
        ConfigError: ``image_size`` larger than the calibrated window.
    """
    from stagepose import __version__

    size = camera.image_size if image_size is None else image_size
    if size[0] > camera.image_size[0] or size[1] > camera.image_size[1]:
        raise ConfigError(
            f"camera {camera.name}: size {size[0]}x{size[1]} is larger than the calibrated {camera.image_size[0]}x"
            f"{camera.image_size[1]}; only a video cropped at the right/bottom edges keeps this calibration"
        )
    H = floor_homography(camera.K, camera.R, camera.t)  # noqa: N806
    H = H / H[2, 2]  # noqa: N806
    world = f"Qualisys world of {source}: metres, z up, floor at z = 0"
    return CameraCalibration(
        version=1,
        camera=camera.name,
        image_size=(int(size[0]), int(size[1])),
        intrinsics=Intrinsics(
            camera_matrix=matrix3(camera.K),
            distortion=tuple(round_sig(v, 10) for v in camera.dist),
            rms_px=0.0,  # not measured here: QTM's residual is a 3D one, in mm
            views=0,
        ),
        extrinsics=Extrinsics(
            rotation=matrix3(camera.R, 15),
            translation_m=tuple(round_sig(v, 12) for v in camera.t),  # type: ignore[arg-type]
            source=f"qualisys {source}" + (f" (avg-residual {camera.avg_residual:g})" if camera.avg_residual else ""),
            world=world,
        ),
        stage=StageCalibration(
            homography=matrix3(H, 14),
            rms_cm=0.0,
            max_cm=0.0,
            origin=f"{world}; derived from the extrinsics (no floor points measured)",
        ),  # fmt: skip
        created_by=f"stagepose {__version__} calibrate import-qualisys {source}",
    )


@dataclass
class ImportRun:
    """What `import_qualisys` wrote."""

    files: list[Path] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def parse_sizes(items: list[str]) -> dict[str, tuple[int, int]]:
    """``["cam01=1080x1920", ...]`` -> {camera: (width, height)}.

    Raises:
        ConfigError: an item that is not CAMERA=WIDTHxHEIGHT.
    """
    out = {}
    for item in items:
        name, sep, size = item.partition("=")
        w, x, h = size.lower().partition("x")
        if not sep or not name or not x or not w.isdigit() or not h.isdigit() or int(w) < 1 or int(h) < 1:
            raise ConfigError(f"--size {item!r}: expected CAMERA=WIDTHxHEIGHT, e.g. cam01=1080x1920")
        out[name] = (int(w), int(h))
    return out


def import_qualisys(
    path: str | Path, out_dir: str | Path, sizes: dict[str, tuple[int, int]] | None = None
) -> ImportRun:
    """`stagepose calibrate import-qualisys`: one calibration file per camera, ``OUT/<serial>.yaml``.

    Args:
        path: the ``.qca.txt`` file.
        out_dir: folder for the calibration files (created).
        sizes: camera -> (width, height) of its video, when that is the calibrated window cropped.

    Raises:
        ConfigError: a bad file (see `read_qca`), or ``sizes`` naming an unknown camera or a larger size.
    """
    path, out_dir = Path(path), Path(out_dir)
    cameras = read_qca(path)
    sizes = sizes or {}
    unknown = sorted(set(sizes) - {c.name for c in cameras})
    if unknown:
        raise ConfigError(f"--size names cameras {unknown} that {path.name} does not have: {[c.name for c in cameras]}")
    run = ImportRun()
    run.lines.append(f"{len(cameras)} cameras in {path} (world: metres, z up; positions in metres)")
    for camera in cameras:
        calibration = to_calibration(camera, path.name, sizes.get(camera.name))
        run.files.append(save_calibration(out_dir / f"{camera.name}.yaml", calibration))
        c = camera.centre
        w, h = calibration.image_size
        cropped = "" if (w, h) == camera.image_size else f" (calibrated {camera.image_size[0]}x{camera.image_size[1]})"
        run.lines.append(
            f"  {camera.name:<10} {w}x{h}{cropped}  f {camera.K[0, 0]:.1f} px  at x {c[0]:.3f} y {c[1]:.3f} "
            f"z {c[2]:.3f}  -> {run.files[-1]}"
        )
        if c[2] <= 0:
            run.warnings.append(
                f"{camera.name} is {c[2]:.2f} m along z, not above the floor: this file's world may not be z up"
            )
    return run
