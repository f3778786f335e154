"""Pictures that help a technician mark floor points and check a stage calibration.

The *grid aid* (before calibrating) is the camera frame, slightly dimmed, with

* a labelled pixel grid (every 50/100/200 px, numbered on all four edges), to read a mark's pixel
  position off the picture, or to check the position an image viewer's cursor shows;
* when the points file gives a rough ``camera_guess`` (or a few points are already marked), the stage
  floor grid projected into the picture (1 m lines by default, labelled ``x=..``/``y=..``, the origin
  and the +x/+y directions drawn) and a circle at each point's expected place, labelled with its
  name: the technician sees which physical mark is which point;
* a side panel listing every point with its stage coordinates and status, and what to do next.

The *check image* (after calibrating) draws the fitted stage grid through the homography and the lens
model: the grid lines must run along the floor's real lines and marks. Each marked point shows its
marked pixel (green dot) and where the fit puts its stage position (red cross) with the error in cm;
points not yet marked show their predicted place (orange circle): find the real mark near it.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from stagepose.calibration.files import Intrinsics
from stagepose.calibration.geometry import (
    CameraPose,
    apply_homography,
    camera_matrix_from_fov,
    distort_px,
    look_at_pose,
)
from stagepose.calibration.stage import StageFit, StagePoints
from stagepose.errors import DataError

FONT = cv2.FONT_HERSHEY_SIMPLEX
# BGR colours
PIXEL_GRID = (235, 235, 235)
PIXEL_LABEL = (90, 235, 255)
STAGE_GRID = (255, 220, 0)
X_AXIS = (60, 60, 255)
Y_AXIS = (60, 230, 60)
EXPECTED = (255, 80, 255)
MEASURED = (60, 230, 60)
FITTED = (40, 40, 255)
PREDICTED = (0, 160, 255)
TEXT = (240, 240, 240)
PANEL = (32, 32, 32)

StageToUndistorted = Callable[[np.ndarray], np.ndarray]


def write_image(path: str | Path, image: np.ndarray) -> Path:
    """Write a PNG/JPEG, creating its folder; raises DataError when it cannot be written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image):
        raise DataError(f"{path}: cannot write the image (use a .png or .jpg name in a writable folder)")
    return path


class FloorProjector:
    """Stage floor (x, y) -> raw pixels, keeping only points the lens model can be trusted with.

    The polynomial lens model is fitted inside the image; applied far outside it, it can fold points
    back into view. Points whose undistorted position lies more than ``margin`` (fraction of the
    image size) outside the frame, or behind the camera, come back as NaN.
    """

    def __init__(
        self,
        to_undistorted: StageToUndistorted,
        K: np.ndarray,  # noqa: N803
        dist: np.ndarray | None,
        image_size: tuple[int, int],
        margin: float = 0.15,
    ):
        self._to_und = to_undistorted
        self.K = K
        self.dist = dist
        self.image_size = image_size
        self.margin = margin

    @classmethod
    def from_pose(
        cls, pose: CameraPose, K: np.ndarray, dist: np.ndarray | None, size: tuple[int, int]
    ) -> FloorProjector:  # noqa: N803
        def to_und(xy: np.ndarray) -> np.ndarray:
            return pose.project(K, None, np.column_stack([xy, np.zeros(len(xy))]))

        return cls(to_und, K, dist, size)

    @classmethod
    def from_homography(
        cls,
        H: np.ndarray,  # noqa: N803
        K: np.ndarray,  # noqa: N803
        dist: np.ndarray | None,
        size: tuple[int, int],
        seen_xy: np.ndarray,
    ) -> FloorProjector:
        inverse = np.linalg.inv(H)
        _, w_ref = apply_homography(inverse, np.asarray(seen_xy, dtype=np.float64).reshape(-1, 2))
        side = np.sign(np.median(w_ref))

        def to_und(xy: np.ndarray) -> np.ndarray:
            und, w = apply_homography(inverse, xy)
            und[np.sign(w) != side] = np.nan  # beyond the horizon: behind the camera
            return und

        return cls(to_und, K, dist, size)

    def __call__(self, stage_xy: np.ndarray) -> np.ndarray:
        xy = np.asarray(stage_xy, dtype=np.float64).reshape(-1, 2)
        und = self._to_und(xy)
        w, h = self.image_size
        mx, my = self.margin * w, self.margin * h
        inside = (und[:, 0] > -mx) & (und[:, 0] < w + mx) & (und[:, 1] > -my) & (und[:, 1] < h + my)
        und[~inside] = np.nan
        if self.dist is None:
            return und
        return distort_px(und, self.K, self.dist)


def _scale(image: np.ndarray) -> float:
    return max(image.shape[:2]) / 1920.0


def _text(
    image: np.ndarray, text: str, org: tuple[int, int], scale: float, colour: tuple[int, int, int], thick: int
) -> None:
    """Text with a dark outline, legible over any picture."""
    cv2.putText(image, text, org, FONT, scale, (0, 0, 0), thick + 3, cv2.LINE_AA)
    cv2.putText(image, text, org, FONT, scale, colour, thick, cv2.LINE_AA)


def pixel_grid_step(image_size: tuple[int, int]) -> int:
    """A round grid spacing giving about 15-25 lines along the long side."""
    longest = max(image_size)
    for step in (10, 20, 25, 50, 100, 200, 250, 500, 1000):
        if longest / step <= 24:
            return step
    return 2000


def draw_pixel_grid(image: np.ndarray, step: int | None = None) -> int:
    """Draw a labelled pixel grid in place; returns the spacing used."""
    h, w = image.shape[:2]
    step = step or pixel_grid_step((w, h))
    s = _scale(image)
    overlay = image.copy()
    for x in range(0, w, step):
        cv2.line(overlay, (x, 0), (x, h - 1), PIXEL_GRID, 1 if x % (5 * step) else 2, cv2.LINE_AA)
    for y in range(0, h, step):
        cv2.line(overlay, (0, y), (w - 1, y), PIXEL_GRID, 1 if y % (5 * step) else 2, cv2.LINE_AA)
    cv2.addWeighted(overlay, 0.45, image, 0.55, 0, dst=image)
    scale, thick = 0.55 * s, max(1, round(1.4 * s))
    (tw, th), _ = cv2.getTextSize("0000", FONT, scale, thick)
    for x in range(step, w - tw // 2, step):
        label = str(x)
        lw = cv2.getTextSize(label, FONT, scale, thick)[0][0]
        _text(image, label, (x - lw // 2, th + 6), scale, PIXEL_LABEL, thick)
        _text(image, label, (x - lw // 2, h - 8), scale, PIXEL_LABEL, thick)
    for y in range(step, h - th, step):
        label = str(y)
        lw = cv2.getTextSize(label, FONT, scale, thick)[0][0]
        _text(image, label, (6, y + th // 2), scale, PIXEL_LABEL, thick)
        _text(image, label, (w - lw - 6, y + th // 2), scale, PIXEL_LABEL, thick)
    return step


def _runs(px: np.ndarray, size: tuple[int, int]) -> list[np.ndarray]:
    """Split a projected polyline at NaNs and where it leaves the image (with a small margin)."""
    w, h = size
    ok = np.isfinite(px).all(axis=1)
    ok &= (px[:, 0] > -50) & (px[:, 0] < w + 50) & (px[:, 1] > -50) & (px[:, 1] < h + 50)
    runs, current = [], []
    for good, p in zip(ok, px):
        if good:
            current.append(p)
        elif current:
            runs.append(np.array(current))
            current = []
    if current:
        runs.append(np.array(current))
    return [r for r in runs if len(r) >= 2]


def _inside(p: np.ndarray, size: tuple[int, int], pad: int) -> bool:
    return bool(np.isfinite(p).all() and pad <= p[0] < size[0] - pad and pad <= p[1] < size[1] - pad)


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    """Whether two (x, y, width, height) boxes overlap."""
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def draw_stage_grid(
    image: np.ndarray, project: FloorProjector, extent: tuple[float, float, float, float], step_m: float
) -> None:
    """Draw the stage floor grid (lines every ``step_m``), labelled, with the origin and axis directions.

    Args:
        image: BGR image, drawn in place.
        project: stage (x, y) -> raw pixels.
        extent: (x_min, x_max, y_min, y_max) in metres, multiples of ``step_m``.
        step_m: grid spacing in metres.
    """
    h, w = image.shape[:2]
    s = _scale(image)
    thick = max(1, round(2 * s))
    scale, tthick = 0.6 * s, max(1, round(1.5 * s))
    x0, x1, y0, y1 = extent
    xs = np.arange(x0, x1 + step_m / 2, step_m)
    ys = np.arange(y0, y1 + step_m / 2, step_m)
    fine = step_m / 40.0
    placed: list[tuple[int, int, int, int]] = []
    for axis, values, other in (("x", xs, (y0, y1)), ("y", ys, (x0, x1))):
        for v in values:
            t = np.arange(other[0], other[1] + fine / 2, fine)
            xy = np.column_stack([np.full_like(t, v), t]) if axis == "x" else np.column_stack([t, np.full_like(t, v)])
            px = project(xy)
            on_axis = abs(v) < 1e-9
            colour = (Y_AXIS if axis == "x" else X_AXIS) if on_axis else STAGE_GRID
            for run in _runs(px, (w, h)):
                cv2.polylines(
                    image, [np.round(run).astype(np.int32)], False, colour, thick * (2 if on_axis else 1), cv2.LINE_AA
                )
            visible = [p for p in px if _inside(p, (w, h), int(90 * s))]  # clear of the pixel labels
            # x lines labelled nearest the bottom of the picture, y lines nearest the left edge,
            # moved along the line where that spot is taken by another label
            visible.sort(key=(lambda p: -p[1]) if axis == "x" else (lambda p: p[0]))
            label = f"{axis}={v:g}"
            (tw, th), _ = cv2.getTextSize(label, FONT, scale, tthick)
            for anchor in visible[:: max(1, len(visible) // 30)]:
                box = (int(anchor[0]) + 4, int(anchor[1]) - 6 - th, tw, th + 6)
                if not any(_overlap(box, other) for other in placed):
                    placed.append(box)
                    _text(image, label, (box[0], box[1] + th), scale, colour, tthick)
                    break
    origin = project(np.array([[0.0, 0.0], [step_m, 0.0], [0.0, step_m]]))
    if _inside(origin[0], (w, h), 0):
        o = tuple(np.round(origin[0]).astype(int))
        cv2.circle(image, o, int(10 * s) + 2, TEXT, thick, cv2.LINE_AA)
        for tip, colour, name in ((origin[1], X_AXIS, "+x"), (origin[2], Y_AXIS, "+y")):
            if np.isfinite(tip).all():
                end = tuple(np.round(tip).astype(int))
                cv2.arrowedLine(image, o, end, colour, thick * 2, cv2.LINE_AA, tipLength=0.15)
                _text(image, name, (end[0] + 6, end[1] + 6), scale * 1.2, colour, tthick + 1)


def _marker(
    image: np.ndarray, p: np.ndarray, colour: tuple[int, int, int], label: str, style: str, left: bool = False
) -> None:
    """Draw a point marker (circle, dot or cross) with its label to the right (or left) of it."""
    s = _scale(image)
    c = tuple(np.round(p).astype(int))
    r = int(14 * s) + 2
    thick = max(1, round(2 * s))
    if style == "circle":
        cv2.circle(image, c, r, colour, thick, cv2.LINE_AA)
        cv2.line(image, (c[0] - r // 3, c[1]), (c[0] + r // 3, c[1]), colour, 1, cv2.LINE_AA)
        cv2.line(image, (c[0], c[1] - r // 3), (c[0], c[1] + r // 3), colour, 1, cv2.LINE_AA)
    elif style == "dot":
        cv2.circle(image, c, max(3, r // 3), colour, -1, cv2.LINE_AA)
    else:  # cross
        d = r // 2 + 2
        cv2.line(image, (c[0] - d, c[1] - d), (c[0] + d, c[1] + d), colour, thick, cv2.LINE_AA)
        cv2.line(image, (c[0] - d, c[1] + d), (c[0] + d, c[1] - d), colour, thick, cv2.LINE_AA)
    if label:
        scale, thick = 0.65 * s, max(1, round(1.6 * s))
        if left:
            width = cv2.getTextSize(label, FONT, scale, thick)[0][0]
            _text(image, label, (c[0] - r - 4 - width, c[1] + r), scale, colour, thick)
        else:
            _text(image, label, (c[0] + r + 4, c[1] - r // 2), scale, colour, thick)


def _side_panel(image: np.ndarray, title: str, lines: list[tuple[str, tuple[int, int, int]]]) -> np.ndarray:
    """Append a dark panel of text to the right of the picture; tab-separated columns line up."""
    h = image.shape[0]
    s = _scale(image)
    scale, thick = 0.62 * s, max(1, round(1.4 * s))
    line_h = int(32 * s) + 4
    columns = (0, int(150 * s), int(360 * s))
    pad = int(16 * s)

    def width_of(text: str) -> int:
        parts = text.split("\t")
        return max(columns[i] + cv2.getTextSize(t, FONT, scale, thick)[0][0] for i, t in enumerate(parts))

    width = max(int(760 * s), max(width_of(t) for t, _ in [*lines, (title, TEXT)]) + 2 * pad)
    panel = np.full((h, width, 3), PANEL, dtype=np.uint8)
    y = line_h + 6
    _text(panel, title, (pad, y), scale * 1.15, TEXT, thick + 1)
    y += int(line_h * 1.4)
    for text, colour in lines:
        if y > h - 8:
            break
        for column, part in zip(columns, text.split("\t")):
            cv2.putText(panel, part, (pad + column, y), FONT, scale, colour, thick, cv2.LINE_AA)
        y += line_h
    return np.hstack([image, panel])


def _grid_extent(xy: np.ndarray, step: float, pad: float) -> tuple[float, float, float, float]:
    lo = np.floor((xy.min(axis=0) - pad) / step) * step
    hi = np.ceil((xy.max(axis=0) + pad) / step) * step
    return (float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1]))


def _dimmed(frame: np.ndarray) -> np.ndarray:
    return cv2.convertScaleAbs(frame, alpha=0.72, beta=0)


def draw_aid(frame: np.ndarray, spec: StagePoints, lens: Intrinsics | None, camera: str = "") -> np.ndarray:
    """The grid aid for marking points (see the module docstring).

    Args:
        frame: (H, W, 3) BGR camera frame.
        spec: the points file (``camera_guess`` used when present).
        lens: the camera's intrinsics, or None (then ``camera_guess.hfov_deg`` and no distortion).
        camera: name for the title.

    Returns:
        BGR image, the frame plus a side panel.
    """
    h, w = frame.shape[:2]
    image = _dimmed(frame)
    step_px = draw_pixel_grid(image)
    guess = spec.camera_guess
    expected: dict[str, np.ndarray] = {}
    if guess is not None:
        K = lens.K if lens is not None else camera_matrix_from_fov((w, h), guess.hfov_deg)  # noqa: N806
        dist = lens.dist if lens is not None else None
        pose = look_at_pose(guess.position, guess.look_at, guess.roll_deg, guess.left_handed)
        project = FloorProjector.from_pose(pose, K, dist, (w, h))
        xy = np.array([p.floor for p in spec.points] + [guess.look_at])
        draw_stage_grid(image, project, _grid_extent(xy, spec.grid_step_m, 2 * spec.grid_step_m), spec.grid_step_m)
        for p, px in zip(spec.points, project(np.array([p.floor for p in spec.points]))):
            if _inside(px, (w, h), 0):
                expected[p.name] = px
                _marker(image, px, EXPECTED, p.name, "circle")
    for p in spec.points:
        if p.pixel is not None:
            _marker(image, np.array(p.pixel), MEASURED, p.name, "dot", left=True)
    marked = sum(p.pixel is not None for p in spec.points)
    lines: list[tuple[str, tuple[int, int, int]]] = [
        (f"{w}x{h} frame; pixel grid every {step_px} px (yellow numbers)", TEXT),
        ("", TEXT),
    ]
    if guess is not None:
        gx, gy, gz = guess.position
        lines += [
            (f"cyan: stage floor grid every {spec.grid_step_m:g} m, from the rough", STAGE_GRID),
            (
                f"camera_guess (at {gx:g}, {gy:g}, {gz:g} m, aimed at {guess.look_at[0]:g}, {guess.look_at[1]:g})",
                STAGE_GRID,
            ),
            ("magenta circles: where each point should be; the", EXPECTED),
            ("real floor mark is near it if the guess is fair.", EXPECTED),
        ]
    else:
        lines += [
            ("no camera_guess in the points file: add", TEXT),
            ("  camera_guess: {position: [x, y, height], look_at: [x, y]}", TEXT),
            ("to see the stage grid and each point's expected place.", TEXT),
        ]
    lines += [
        ("", TEXT),
        ("For each point: find its floor mark, read its pixel position", TEXT),
        ("(the grid, or an image viewer's cursor on the raw frame),", TEXT),
        ("and add  pixel: [x, y]  to it in the points file.", TEXT),
        (f"Mark 4 or more (6+ to measure the error): {marked} marked now.", TEXT),
        ("", TEXT),
        ("point\tstage x, y (m)\tstatus", TEXT),
    ]
    for p in spec.points:
        if p.pixel is not None:
            status, colour = f"marked ({p.pixel[0]:.0f}, {p.pixel[1]:.0f})", MEASURED
        elif p.name in expected:
            e = expected[p.name]
            status, colour = f"expect ~({e[0]:.0f}, {e[1]:.0f})", EXPECTED
        else:
            status, colour = "to find", TEXT
        lines.append((f"{p.name[:12]}\t{p.floor[0]:.2f}, {p.floor[1]:.2f}\t{status}", colour))
    if spec.origin:
        lines += [("", TEXT)] + [(t, TEXT) for t in textwrap.wrap(f"origin: {spec.origin}", 60)]
    title = f"stagepose stage grid aid{' - ' + camera if camera else ''}"
    return _side_panel(image, title, lines)


def draw_check(frame: np.ndarray, spec: StagePoints, lens: Intrinsics, fit: StageFit, camera: str = "") -> np.ndarray:
    """The check image after a fit (see the module docstring)."""
    h, w = frame.shape[:2]
    image = _dimmed(frame)
    draw_pixel_grid(image)
    project = FloorProjector.from_homography(fit.H, lens.K, lens.dist, (w, h), fit.stage_xy)
    xy = np.array([p.floor for p in spec.points])
    draw_stage_grid(image, project, _grid_extent(xy, spec.grid_step_m, spec.grid_step_m), spec.grid_step_m)
    fitted = project(fit.stage_xy)
    for name, px, fx, err in zip(fit.names, fit.pixels, fitted, fit.errors_cm):
        if np.isfinite(fx).all():
            cv2.line(image, tuple(np.round(px).astype(int)), tuple(np.round(fx).astype(int)), FITTED, 1, cv2.LINE_AA)
            _marker(image, fx, FITTED, "", "cross")
        _marker(image, px, MEASURED, f"{name} {err:.1f} cm", "dot")
    predicted: dict[str, np.ndarray] = {}
    unmarked = [p for p in spec.points if p.pixel is None]
    if unmarked:
        for p, px in zip(unmarked, project(np.array([p.floor for p in unmarked]))):
            if _inside(px, (w, h), 0):
                predicted[p.name] = px
                _marker(image, px, PREDICTED, p.name + "?", "circle")
    loo = fit.loo_rms_cm
    c = fit.pose.centre
    lines: list[tuple[str, tuple[int, int, int]]] = [
        (f"{len(fit.names)} points; fit RMS {fit.rms_cm:.2f} cm, max {fit.max_cm:.2f} cm", TEXT),
        ((f"leave-one-out RMS {loo:.2f} cm" if loo is not None else "leave-one-out needs 5+ points"), TEXT),
        (f"camera at ({c[0]:.2f}, {c[1]:.2f}) m, {c[2]:.2f} m above the floor", TEXT),
        ("", TEXT),
        ("cyan: the fitted stage grid. It must follow the floor's", STAGE_GRID),
        ("real lines and marks; if not, a point is wrong.", STAGE_GRID),
        ("green dot: marked pixel; red cross: where the fit", MEASURED),
        ("puts that point's stage position (error in cm).", FITTED),
    ]
    if predicted:
        lines += [
            ("orange: predicted place of points not yet marked;", PREDICTED),
            ("find the real mark near it.", PREDICTED),
        ]
    lines += [("", TEXT), ("point\tstage x, y (m)\terror cm / status", TEXT)]
    errors = dict(zip(fit.names, fit.errors_cm))
    for p in spec.points:
        if p.name in errors:
            status, colour = f"{errors[p.name]:.2f}", MEASURED
        elif p.name in predicted:
            e = predicted[p.name]
            status, colour = f"predicted ({e[0]:.0f}, {e[1]:.0f})", PREDICTED
        else:
            status, colour = "not in view", TEXT
        lines.append((f"{p.name[:12]}\t{p.floor[0]:.2f}, {p.floor[1]:.2f}\t{status}", colour))
    title = f"stagepose stage check{' - ' + camera if camera else ''}"
    return _side_panel(image, title, lines)
