"""Synthetic views of a known camera: chessboard images and a standing person's joints.

Used to check the calibration code end to end against ground truth (the tests, and anyone changing
this package): an image rendered here with camera matrix K and distortion D must calibrate back to K
and D. Rendering is exact ray casting per (super-sampled) pixel, not texture warping, so the corners
carry no interpolation bias beyond the anti-aliasing.
"""

from __future__ import annotations

import cv2
import numpy as np

from stagepose.calibration.geometry import CameraPose, undistort_raw
from stagepose.skeleton import NUM_JOINTS, Joint

BLACK, WHITE, BACKGROUND = 35.0, 215.0, 110.0


class SyntheticCamera:
    """A camera with known intrinsics that renders planar chessboards.

    Args:
        K: (3, 3) camera matrix.
        dist: (D,) OpenCV distortion coefficients.
        image_size: (width, height) in pixels.
        supersample: rays per pixel along each axis (anti-aliasing).
    """

    def __init__(self, K: np.ndarray, dist: np.ndarray, image_size: tuple[int, int], supersample: int = 2):  # noqa: N803
        self.K = np.asarray(K, dtype=np.float64)
        self.dist = np.asarray(dist, dtype=np.float64)
        self.image_size = image_size
        self.supersample = supersample
        self._rays: np.ndarray | None = None

    def rays(self) -> np.ndarray:
        """(H*ss, W*ss, 2) normalised image coordinates (x/z, y/z) of every sub-pixel sample."""
        if self._rays is None:
            w, h = self.image_size
            ss = self.supersample
            offsets = (np.arange(ss) + 0.5) / ss - 0.5
            us = (np.arange(w)[:, None] + offsets[None, :]).ravel()
            vs = (np.arange(h)[:, None] + offsets[None, :]).ravel()
            grid = np.stack(np.meshgrid(us, vs), axis=-1).reshape(-1, 1, 2)
            norm = undistort_raw(grid, self.K, self.dist, None)
            self._rays = norm.reshape(h * ss, w * ss, 2)
        return self._rays

    def render_board(
        self,
        board: tuple[int, int],
        square_m: float,
        rvec: np.ndarray,
        tvec: np.ndarray,
        rng: np.random.Generator | None = None,
        noise: float = 2.0,
    ) -> np.ndarray:
        """Render a chessboard seen from pose (rvec, tvec).

        Args:
            board: (cols, rows) inner corners; the board has (cols+1) x (rows+1) squares and a white
                border half a square wide. Board coordinates put inner corner (i, j) at
                (i * square_m, j * square_m, 0), OpenCV's object point order.
            square_m: square side in metres.
            rvec, tvec: board-to-camera rotation (Rodrigues) and translation.
            rng: noise source (None: no noise).
            noise: standard deviation of the added Gaussian noise, in grey levels.

        Returns:
            (H, W) uint8 grey image.
        """
        R, _ = cv2.Rodrigues(np.asarray(rvec, dtype=np.float64))  # noqa: N806
        t = np.asarray(tvec, dtype=np.float64).ravel()
        norm = self.rays()
        rays = np.concatenate([norm, np.ones((*norm.shape[:2], 1))], axis=-1)
        normal = R[:, 2]
        denom = rays @ normal
        with np.errstate(divide="ignore", invalid="ignore"):
            s = (normal @ t) / denom
        pts = s[..., None] * rays - t
        a = pts @ R[:, 0]
        b = pts @ R[:, 1]
        cols, rows = board
        i = np.floor(a / square_m)
        j = np.floor(b / square_m)
        on_squares = (i >= -1) & (i <= cols - 1) & (j >= -1) & (j <= rows - 1)
        border = 0.5 * square_m
        on_board = (a >= -square_m - border) & (a <= cols * square_m + border)
        on_board &= (b >= -square_m - border) & (b <= rows * square_m + border)
        on_board &= np.isfinite(s) & (s > 0)
        value = np.full(s.shape, BACKGROUND)
        value[on_board] = WHITE
        black = on_board & on_squares & (((i + j) % 2) == 0)
        value[black] = BLACK
        w, h = self.image_size
        image = cv2.resize(value.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
        image = cv2.GaussianBlur(image, (0, 0), 0.6)
        if rng is not None and noise > 0:
            image = image + np.asarray(rng.normal(0.0, noise, image.shape), dtype=np.float32)
        return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def random_board_poses(
    camera: SyntheticCamera,
    board: tuple[int, int],
    square_m: float,
    count: int,
    rng: np.random.Generator,
    max_tilt_deg: float = 40.0,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Board poses that keep the whole board (with its border) in view, spread over the image.

    Returns:
        ``count`` (rvec (3,), tvec (3,)) pairs.
    """
    cols, rows = board
    centre = np.array([(cols - 1) * square_m / 2, (rows - 1) * square_m / 2, 0.0])
    outline = np.array(
        [
            [x, y, 0.0]
            for x in (-1.5 * square_m, (cols + 0.5) * square_m)
            for y in (-1.5 * square_m, (rows + 0.5) * square_m)
        ]
    )
    w, h = camera.image_size
    fx = camera.K[0, 0]
    width_m = (cols + 2) * square_m
    poses: list[tuple[np.ndarray, np.ndarray]] = []
    while len(poses) < count:
        tilt = np.deg2rad(rng.uniform(-max_tilt_deg, max_tilt_deg, size=2))
        spin = np.deg2rad(rng.uniform(-30.0, 30.0))
        rvec = np.array([tilt[0], tilt[1], spin])
        R, _ = cv2.Rodrigues(rvec)  # noqa: N806
        depth = fx * width_m / (w * rng.uniform(0.45, 0.8))
        offset = rng.uniform(-0.3, 0.3, size=2) * np.array([w, h]) / fx * depth
        tvec = np.array([offset[0], offset[1], depth]) - R @ centre
        cam = outline @ R.T + tvec
        if (cam[:, 2] <= 0.05).any():
            continue
        px = cam[:, :2] / cam[:, 2:3] * fx + camera.K[:2, 2]
        if (px[:, 0] < 4).any() or (px[:, 0] > w - 5).any() or (px[:, 1] < 4).any() or (px[:, 1] > h - 5).any():
            continue
        poses.append((rvec, tvec))
    return poses


# Heights of MPII joints above the floor as fractions of stature, for a person standing upright
# (Drillis & Contini 1966, as tabulated in Winter, "Biomechanics and Motor Control of Human Movement").
STANDING_HEIGHT_FRACTION: dict[Joint, float] = {
    Joint.r_ankle: 0.039,
    Joint.l_ankle: 0.039,
    Joint.r_knee: 0.285,
    Joint.l_knee: 0.285,
    Joint.r_hip: 0.530,
    Joint.l_hip: 0.530,
    Joint.pelvis: 0.530,
    Joint.thorax: 0.818,
    Joint.upper_neck: 0.870,
    Joint.head_top: 1.0,
    Joint.r_shoulder: 0.818,
    Joint.l_shoulder: 0.818,
    Joint.r_elbow: 0.630,
    Joint.l_elbow: 0.630,
    Joint.r_wrist: 0.485,
    Joint.l_wrist: 0.485,
}


def standing_person(x: float, y: float, stature_m: float = 1.75, facing_deg: float = 0.0) -> np.ndarray:
    """3D joints of a person standing upright at stage (x, y), arms down.

    Returns:
        (16, 3) stage coordinates (x, y, height) in metres, MPII order.
    """
    half_width = {"hip": 0.055, "shoulder": 0.11, "arm": 0.17, "leg": 0.06}
    side = {
        Joint.r_ankle: -half_width["leg"], Joint.l_ankle: half_width["leg"],
        Joint.r_knee: -half_width["leg"], Joint.l_knee: half_width["leg"],
        Joint.r_hip: -half_width["hip"], Joint.l_hip: half_width["hip"],
        Joint.r_shoulder: -half_width["shoulder"], Joint.l_shoulder: half_width["shoulder"],
        Joint.r_elbow: -half_width["arm"], Joint.l_elbow: half_width["arm"],
        Joint.r_wrist: -half_width["arm"], Joint.l_wrist: half_width["arm"],
    }  # fmt: skip
    a = np.deg2rad(facing_deg)
    lateral = np.array([np.cos(a), np.sin(a)])
    out = np.zeros((NUM_JOINTS, 3))
    for joint in Joint:
        offset = side.get(joint, 0.0) * stature_m / 1.75
        out[joint, :2] = np.array([x, y]) + offset * lateral
        out[joint, 2] = STANDING_HEIGHT_FRACTION[joint] * stature_m
    return out


def project_person(pose: CameraPose, K: np.ndarray, dist: np.ndarray, joints_3d: np.ndarray) -> np.ndarray:  # noqa: N803
    """(16, 3) stage joints -> (16, 2) raw pixels as the camera sees them."""
    return pose.project(K, dist, joints_3d)
