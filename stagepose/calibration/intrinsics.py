"""Lens calibration from chessboard views: camera matrix, distortion and reprojection errors.

The technician films or photographs a printed chessboard held at different places and tilts in front
of the camera (10-30 views, the board filling a good part of the frame, including near the corners).
Corners are found with OpenCV (the classic detector, then the sector-based one for boards it misses),
refined to sub-pixel accuracy, and fed to ``cv2.calibrateCamera`` (Zhang's method).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from stagepose.calibration.files import BoardInfo, Intrinsics, matrix3, round_sig
from stagepose.errors import ConfigError, DataError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
# A view is an outlier when its RMS error exceeds both OUTLIER_FACTOR x the median view and OUTLIER_MIN_PX.
OUTLIER_FACTOR = 3.0
OUTLIER_MIN_PX = 1.0
MIN_VIEWS = 3  # fewer cannot constrain the 4 camera-matrix terms plus distortion
FEW_VIEWS = 8  # below this, warn: the result rests on little data
COVERAGE_GRID = 5  # coverage is measured on a COVERAGE_GRID x COVERAGE_GRID grid of image cells
LOW_COVERAGE = 0.5
DISTORTION_FLAGS = {4: cv2.CALIB_FIX_K3, 5: 0, 8: cv2.CALIB_RATIONAL_MODEL}
_SUBPIX_CRITERIA = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_MAX_ITER, 50, 1e-4)
_CALIB_CRITERIA = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_MAX_ITER, 100, 1e-12)


@dataclass(frozen=True)
class Board:
    """A chessboard target.

    Attributes:
        cols, rows: inner corners (where four squares meet) along each side: a board of 5 x 8 squares
            has 4 x 7 inner corners.
        square_m: side of one square in metres.
    """

    cols: int
    rows: int
    square_m: float

    def __post_init__(self) -> None:
        if self.cols < 2 or self.rows < 2:
            raise ConfigError(f"board {self.cols}x{self.rows}: need at least 2x2 inner corners")
        if not (0 < self.square_m <= 0.5):
            raise ConfigError(f"square size {self.square_m} m is not plausible: give it in metres (60 mm is 0.06)")

    @classmethod
    def parse(cls, text: str, square_m: float) -> Board:
        """'4x7' (inner corners, columns x rows) and a square size in metres -> Board."""
        match = re.fullmatch(r"\s*(\d+)\s*[xX\u00d7]\s*(\d+)\s*", text)
        if not match:
            raise ConfigError(f"board {text!r}: expected COLSxROWS inner corners, for example 4x7")
        return cls(int(match.group(1)), int(match.group(2)), float(square_m))

    @property
    def pattern_size(self) -> tuple[int, int]:
        return (self.cols, self.rows)

    def object_points(self) -> np.ndarray:
        """(cols*rows, 3) float32 corner positions on the board plane in metres, OpenCV's order."""
        grid = np.mgrid[0 : self.cols, 0 : self.rows].T.reshape(-1, 2)
        return np.column_stack([grid * self.square_m, np.zeros(len(grid))]).astype(np.float32)

    def info(self) -> BoardInfo:
        return BoardInfo(self.cols, self.rows, self.square_m)


@dataclass(frozen=True)
class BoardView:
    """Corners of the board found in one image."""

    name: str
    corners: np.ndarray  # (cols*rows, 2) float32 raw pixels
    detector: str  # "classic" or "sector"


def _subpix_window(corners: np.ndarray, board: Board) -> int:
    """Half-size of the cornerSubPix window: about a quarter of the smallest corner spacing."""
    grid = corners.reshape(board.rows, board.cols, 2)
    spacing = min(
        float(np.linalg.norm(np.diff(grid, axis=1), axis=-1).min()),
        float(np.linalg.norm(np.diff(grid, axis=0), axis=-1).min()),
    )
    return int(np.clip(spacing / 4.0, 2, 15))


def detect_board(gray: np.ndarray, board: Board) -> tuple[np.ndarray, str] | None:
    """Find the board's inner corners with sub-pixel accuracy.

    Args:
        gray: (H, W) uint8 image.
        board: the target.

    Returns:
        ((cols*rows, 2) float32 corners, detector name), or None when the whole board is not found.
    """
    flags = cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE | cv2.CALIB_CB_FAST_CHECK
    found, corners = cv2.findChessboardCorners(gray, board.pattern_size, flags=flags)
    detector = "classic"
    if not found:
        # The sector-based detector copes with boards near the image edge and uneven light.
        sb_flags = cv2.CALIB_CB_NORMALIZE_IMAGE | cv2.CALIB_CB_EXHAUSTIVE | cv2.CALIB_CB_ACCURACY
        found, corners = cv2.findChessboardCornersSB(gray, board.pattern_size, flags=sb_flags)
        detector = "sector"
    if not found or corners is None:
        return None
    corners = corners.reshape(-1, 1, 2).astype(np.float32)
    win = _subpix_window(corners.reshape(-1, 2), board)
    corners = cv2.cornerSubPix(gray, corners, (win, win), (-1, -1), _SUBPIX_CRITERIA)
    return corners.reshape(-1, 2), detector


def list_images(directory: str | Path) -> list[Path]:
    """Image files in ``directory`` (not recursive), in name order.

    Raises:
        DataError: the folder does not exist or holds no images.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"{directory}: no such folder (--images takes a folder of chessboard photos)")
    files = sorted(p for p in directory.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise DataError(f"{directory}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
    return files


def read_images(files: Iterable[Path]) -> Iterator[tuple[str, np.ndarray | None]]:
    """Yield (file name, grey image or None if unreadable) for each file."""
    for path in files:
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        yield path.name, image


def video_frames(
    path: str | Path, every: int | None = None
) -> tuple[Iterator[tuple[str, np.ndarray | None]], int | None]:
    """Grey frames of a video, one every ``every`` frames (default: about 3 per second).

    Returns:
        (iterator of (frame label, grey image), number of frames it will yield if the container says).

    Raises:
        DataError: the file is missing or not a video PyAV can decode.
    """
    import av

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such video file")
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as exc:
        raise DataError(f"{path}: cannot open as a video: {exc}") from None
    if not container.streams.video:
        container.close()
        raise DataError(f"{path}: has no video stream")
    stream = container.streams.video[0]
    rate = float(stream.average_rate or stream.guessed_rate or 30)
    step = every if every and every > 0 else max(1, round(rate / 3))
    total = math.ceil(stream.frames / step) if stream.frames else None

    def frames() -> Iterator[tuple[str, np.ndarray | None]]:
        with container:
            try:
                for index, frame in enumerate(container.decode(stream)):
                    if index % step:
                        continue
                    label = f"frame {index} ({index / rate:.2f} s)"
                    yield label, frame.to_ndarray(format="gray")
            except av.error.FFmpegError as exc:
                raise DataError(f"{path}: video decoding failed: {exc}") from None

    return frames(), total


@dataclass
class Collected:
    """Board views found in a set of images, and the images that gave none."""

    views: list[BoardView] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (name, reason)
    similar: list[str] = field(default_factory=list)  # video frames skipped as near-duplicates
    image_size: tuple[int, int] | None = None


def collect_views(
    frames: Iterable[tuple[str, np.ndarray | None]],
    board: Board,
    *,
    total: int | None = None,
    progress: bool = True,
    min_motion: float = 0.0,
) -> Collected:
    """Detect the board in every frame.

    Args:
        frames: (name, grey image or None when unreadable).
        board: the target.
        total: number of frames, for the progress bar.
        progress: show a progress bar on stderr.
        min_motion: skip a view whose corners moved less than this fraction of the image diagonal
            (mean over corners) from every view kept so far; 0 keeps all (photos), video uses ~0.03.
    """
    from tqdm import tqdm

    out = Collected()
    bar = tqdm(frames, total=total, desc="finding the chessboard", unit="img", disable=not progress)
    for name, image in bar:
        if image is None:
            out.rejected.append((name, "cannot be read as an image"))
            continue
        size = (int(image.shape[1]), int(image.shape[0]))
        if out.image_size is None:
            out.image_size = size
        elif size != out.image_size:
            want = f"{out.image_size[0]}x{out.image_size[1]}"
            out.rejected.append((name, f"size {size[0]}x{size[1]} differs from the first image's {want}"))
            continue
        found = detect_board(image, board)
        if found is None:
            out.rejected.append((name, "board not found"))
            continue
        corners, detector = found
        if min_motion > 0 and out.views:
            diag = math.hypot(*size)
            moved = min(float(np.linalg.norm(v.corners - corners, axis=1).mean()) for v in out.views)
            if moved < min_motion * diag:
                out.similar.append(name)
                continue
        out.views.append(BoardView(name, corners, detector))
        bar.set_postfix(found=len(out.views))
    bar.close()
    return out


def coverage(views: list[BoardView], image_size: tuple[int, int], cells: int = COVERAGE_GRID) -> float:
    """Fraction of a cells x cells grid over the image that some detected corner falls in."""
    w, h = image_size
    hit = np.zeros((cells, cells), dtype=bool)
    for view in views:
        cx = np.clip((view.corners[:, 0] / w * cells).astype(int), 0, cells - 1)
        cy = np.clip((view.corners[:, 1] / h * cells).astype(int), 0, cells - 1)
        hit[cy, cx] = True
    return float(hit.mean())


def calibrate_views(
    views: list[BoardView], board: Board, image_size: tuple[int, int], distortion_terms: int = 4
) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """Run OpenCV's calibration on the views.

    Returns:
        (RMS error px, K (3, 3), distortion (distortion_terms,), per-view RMS error px (V,)).
    """
    if distortion_terms not in DISTORTION_FLAGS:
        raise ConfigError(f"distortion model with {distortion_terms} terms: choose 4, 5 or 8")
    obj = [board.object_points() for _ in views]
    img = [v.corners.reshape(-1, 1, 2).astype(np.float32) for v in views]
    # No initial guess is used (no CALIB_USE_INTRINSIC_GUESS): OpenCV allocates K and the distortion.
    rms, K, dist, _, _, _, _, per_view = cv2.calibrateCameraExtended(  # type: ignore[call-overload]  # noqa: N806
        obj, img, image_size, None, None, flags=DISTORTION_FLAGS[distortion_terms], criteria=_CALIB_CRITERIA
    )
    return float(rms), np.asarray(K), np.asarray(dist).ravel()[:distortion_terms].copy(), np.asarray(per_view).ravel()


def find_outliers(names: list[str], errors: np.ndarray) -> list[tuple[str, float]]:
    """Views whose error exceeds max(OUTLIER_FACTOR x median, OUTLIER_MIN_PX)."""
    limit = max(OUTLIER_FACTOR * float(np.median(errors)), OUTLIER_MIN_PX)
    return [(n, float(e)) for n, e in zip(names, errors) if e > limit]


@dataclass
class IntrinsicsResult:
    """The outcome of a lens calibration, with everything a technician needs to judge it."""

    board: Board
    image_size: tuple[int, int]
    K: np.ndarray
    dist: np.ndarray
    rms_px: float
    views: list[str]
    view_errors_px: np.ndarray
    detectors: list[str]
    rejected: list[tuple[str, str]]
    outliers: list[tuple[str, float]]
    dropped: list[tuple[str, float]]
    similar: list[str]
    coverage: float
    examined: int
    unit: str = "images"

    def intrinsics(self) -> Intrinsics:
        return Intrinsics(
            camera_matrix=matrix3(self.K, 10),
            distortion=tuple(round_sig(v) for v in self.dist),
            rms_px=round_sig(self.rms_px, 4),
            views=len(self.views),
            board=self.board.info(),
        )

    @property
    def hfov_deg(self) -> float:
        return math.degrees(2 * math.atan(self.image_size[0] / 2 / self.K[0, 0]))

    def warnings(self) -> list[str]:
        """Problems a technician should act on, each naming the images concerned."""
        out = []
        if self.rejected:
            listed = "; ".join(f"{n} ({r})" for n, r in self.rejected)
            out.append(
                f"{len(self.rejected)} of {self.examined} {self.unit} rejected: {listed}. The whole board must be "
                f"in view, sharp, and have {self.board.cols}x{self.board.rows} inner corners"
            )
        if self.dropped:
            listed = ", ".join(f"{n} ({e:.2f} px)" for n, e in self.dropped)
            out.append(f"dropped {len(self.dropped)} outlier view(s) and calibrated again without them: {listed}")
        if self.outliers:
            listed = ", ".join(f"{n} ({e:.2f} px)" for n, e in self.outliers)
            out.append(
                f"{len(self.outliers)} outlier view(s), error above {OUTLIER_FACTOR:g}x the median and "
                f"{OUTLIER_MIN_PX:g} px: {listed}. Check them for blur or a bent board; delete them or "
                f"re-run with --drop-outliers"
            )
        if len(self.views) < FEW_VIEWS:
            out.append(
                f"only {len(self.views)} views: 10-30 views with the board tilted and near every corner of "
                f"the image give a more reliable lens model"
            )
        if self.coverage < LOW_COVERAGE:
            out.append(
                f"the board covered only {self.coverage:.0%} of the image (on a {COVERAGE_GRID}x{COVERAGE_GRID} "
                f"grid): distortion near the uncovered edges is extrapolated; add views with the board there"
            )
        if self.rms_px > 1.0:
            out.append(f"RMS error {self.rms_px:.2f} px is high (expect < 0.5 px): check --board and --square")
        return out

    def report_lines(self) -> list[str]:
        K, d = self.K, self.dist  # noqa: N806
        names = ("k1", "k2", "p1", "p2", "k3", "k4", "k5", "k6")
        w, h = self.image_size
        lines = [
            f"calibrated from {len(self.views)} of {self.examined} {self.unit} ({w}x{h}), "
            f"board {self.board.cols}x{self.board.rows} inner corners, {self.board.square_m * 1000:g} mm squares",
            f"  RMS reprojection error {self.rms_px:.3f} px",
            f"  focal length fx {K[0, 0]:.1f} px, fy {K[1, 1]:.1f} px "
            f"(horizontal field of view {self.hfov_deg:.1f} deg)",
            f"  principal point ({K[0, 2]:.1f}, {K[1, 2]:.1f}) px; board covered {self.coverage:.0%} of the image",
            "  distortion " + " ".join(f"{n} {v:+.5f}" for n, v in zip(names, d)),
            "  per view (RMS px):",
        ]
        outliers = {n for n, _ in self.outliers}
        for name, err, det in zip(self.views, self.view_errors_px, self.detectors):
            flag = "  <- outlier" if name in outliers else ""
            lines.append(f"    {name:<32} {err:6.3f}{'' if det == 'classic' else '  (sector detector)'}{flag}")
        return lines


def calibrate_intrinsics(
    frames: Iterable[tuple[str, np.ndarray | None]],
    board: Board,
    *,
    total: int | None = None,
    distortion_terms: int = 4,
    drop_outliers: bool = False,
    progress: bool = True,
    min_motion: float = 0.0,
    max_views: int | None = None,
    unit: str = "images",
) -> IntrinsicsResult:
    """Calibrate a lens from chessboard images.

    Args:
        frames: (name, grey image or None) pairs, e.g. from `read_images` or `video_frames`.
        board: the target.
        total: number of frames (progress bar).
        distortion_terms: 4 (k1 k2 p1 p2; robust with few views), 5 (+k3, wide lenses) or 8
            (rational model, fisheye-like lenses; needs many views).
        drop_outliers: calibrate a second time without the outlier views.
        progress: show progress on stderr.
        min_motion: see `collect_views` (video: skip near-duplicate frames).
        max_views: keep at most this many views, evenly spaced (video).

    Raises:
        DataError: fewer than MIN_VIEWS usable views.
    """
    found = collect_views(frames, board, total=total, progress=progress, min_motion=min_motion)
    examined = len(found.views) + len(found.rejected) + len(found.similar)
    views = found.views
    if max_views and len(views) > max_views:
        keep = np.linspace(0, len(views) - 1, max_views).round().astype(int)
        views = [views[i] for i in sorted(set(keep.tolist()))]
    if len(views) < MIN_VIEWS or found.image_size is None:
        reasons = "; ".join(f"{n}: {r}" for n, r in found.rejected[:10])
        more = f" (and {len(found.rejected) - 10} more)" if len(found.rejected) > 10 else ""
        raise DataError(
            f"found the {board.cols}x{board.rows} board in {len(views)} of {examined} {unit}; at least "
            f"{MIN_VIEWS} are needed. --board counts INNER corners (a board of 5x8 squares has 4x7) and the "
            f"whole board must be in view. Rejected: {reasons or 'none'}{more}"
        )
    rms, K, dist, errors = calibrate_views(views, board, found.image_size, distortion_terms)  # noqa: N806
    outliers = find_outliers([v.name for v in views], errors)
    dropped: list[tuple[str, float]] = []
    if drop_outliers and outliers and len(views) - len(outliers) >= MIN_VIEWS:
        bad = {n for n, _ in outliers}
        dropped, views = outliers, [v for v in views if v.name not in bad]
        rms, K, dist, errors = calibrate_views(views, board, found.image_size, distortion_terms)  # noqa: N806
        outliers = find_outliers([v.name for v in views], errors)
    return IntrinsicsResult(
        board=board,
        image_size=found.image_size,
        K=K,
        dist=dist,
        rms_px=rms,
        views=[v.name for v in views],
        view_errors_px=errors,
        detectors=[v.detector for v in views],
        rejected=found.rejected,
        outliers=outliers,
        dropped=dropped,
        similar=found.similar,
        coverage=coverage(views, found.image_size),
        examined=examined,
        unit=unit,
    )


@dataclass
class IntrinsicsRun:
    """What `run_intrinsics` did: the result, the file written and what to tell the technician."""

    result: IntrinsicsResult
    path: Path
    lines: list[str]
    warnings: list[str]


def run_intrinsics(
    out: str | Path,
    board: Board,
    *,
    images: str | Path | None = None,
    video: str | Path | None = None,
    camera: str | None = None,
    distortion_terms: int = 4,
    every: int | None = None,
    max_views: int = 40,
    drop_outliers: bool = False,
    progress: bool = True,
) -> IntrinsicsRun:
    """`stagepose calibrate intrinsics`: calibrate from a folder of photos or a video, write ``out``.

    An existing stage homography in ``out`` is removed (it was measured through the old lens model)
    and a warning says so.

    Raises:
        ConfigError: neither or both of images/video given.
        DataError: unreadable input, or too few usable views.
    """
    from stagepose import __version__
    from stagepose.calibration.files import CameraCalibration, load_calibration, save_calibration

    if (images is None) == (video is None):
        raise ConfigError("give either --images DIR or --video FILE")
    if images is not None:
        files = list_images(images)
        frames: Iterable[tuple[str, np.ndarray | None]] = read_images(files)
        total: int | None = len(files)
        min_motion, limit, unit = 0.0, None, "images"
    else:
        frames, total = video_frames(video, every)  # type: ignore[arg-type]
        min_motion, limit, unit = 0.03, max_views, "video frames"
    result = calibrate_intrinsics(
        frames,
        board,
        total=total,
        distortion_terms=distortion_terms,
        drop_outliers=drop_outliers,
        progress=progress,
        min_motion=min_motion,
        max_views=limit,
        unit=unit,
    )
    out = Path(out)
    warnings = result.warnings()
    if out.exists():
        try:
            old = load_calibration(out)
        except ConfigError:
            old = None
        if old is not None and old.stage is not None:
            warnings.append(
                f"{out} had a stage calibration; it was measured through the old lens model and has been "
                f"removed: run `stagepose calibrate stage --out {out} ...` again"
            )
    source = images if images is not None else video
    calibration = CameraCalibration(
        version=1,
        image_size=result.image_size,
        intrinsics=result.intrinsics(),
        camera=camera or out.stem,
        stage=None,
        created_by=f"stagepose {__version__} calibrate intrinsics from {Path(str(source)).name}",
    )
    save_calibration(out, calibration)
    lines = result.report_lines()
    if result.similar:
        lines.append(f"  skipped {len(result.similar)} video frames too similar to a view already kept")
    lines.append(f"wrote {out}")
    return IntrinsicsRun(result=result, path=out, lines=lines, warnings=warnings)
