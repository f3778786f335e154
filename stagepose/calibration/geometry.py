"""Camera geometry shared by the calibration commands, the grid aid and the runtime mapper.

Conventions:
  * Raw pixels: positions in the camera's image as delivered (lens distortion included), x right,
    y down, (0, 0) the centre of the top-left pixel (OpenCV's convention).
  * Undistorted pixels: where a distortion-free camera with the same camera matrix K would see the
    point (OpenCV ``undistortPoints(..., P=K)``).
  * Stage coordinates: metres; x and y on the floor as the venue defines them, z = height above the
    floor. Handedness is not assumed: `CameraPose` records it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

_UNDISTORT_CRITERIA = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 40, 1e-9)


def undistort_raw(points: np.ndarray, K: np.ndarray, dist: np.ndarray, P: np.ndarray | None) -> np.ndarray:  # noqa: N803
    """OpenCV's iterative point undistortion with tight convergence, on OpenCV 4.x and 5.x.

    Args:
        points: (N, 1, 2) float raw pixels (no NaN).
        K, dist: intrinsics.
        P: new camera matrix for the output (K: undistorted pixels), or None (normalised coordinates).
    """
    pts = np.ascontiguousarray(points, dtype=np.float64).reshape(-1, 1, 2)
    iterative = getattr(cv2, "undistortPointsIter", None)  # OpenCV 4.x; 5.x folds it into undistortPoints
    if iterative is not None:
        return iterative(pts, K, dist, None, P, _UNDISTORT_CRITERIA)
    return cv2.undistortPoints(pts, K, dist, R=None, P=P, criteria=_UNDISTORT_CRITERIA)


def as_points(points: np.ndarray, name: str = "points") -> np.ndarray:
    """(N, 2) float64 copy of ``points``; raises ValueError for any other shape."""
    arr = np.asarray(points, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"{name} must have shape (N, 2), got {arr.shape}")
    return arr.copy()


def undistort_px(points: np.ndarray, K: np.ndarray, dist: np.ndarray) -> np.ndarray:  # noqa: N803
    """Raw pixels -> undistorted pixels (same camera matrix).

    Args:
        points: (N, 2) raw pixel positions; rows with NaN stay NaN.
        K: (3, 3) camera matrix.
        dist: (D,) OpenCV distortion coefficients.

    Returns:
        (N, 2) float64 undistorted pixel positions.
    """
    pts = as_points(points)
    out = np.full_like(pts, np.nan)
    ok = np.isfinite(pts).all(axis=1)
    if ok.any():
        und = undistort_raw(pts[ok], K, dist, K)
        out[ok] = und.reshape(-1, 2)
    return out


def distort_px(points: np.ndarray, K: np.ndarray, dist: np.ndarray) -> np.ndarray:  # noqa: N803
    """Undistorted pixels -> raw pixels (applies the lens model); NaN rows stay NaN.

    The polynomial lens model is only valid over the image it was fitted on: far outside it, it can
    fold points back into view. Callers drawing lines should keep to points near the image.
    """
    pts = as_points(points)
    out = np.full_like(pts, np.nan)
    ok = np.isfinite(pts).all(axis=1)
    if ok.any():
        norm = (pts[ok] - K[:2, 2]) / np.diag(K)[:2]
        obj = np.column_stack([norm, np.ones(len(norm))])
        img, _ = cv2.projectPoints(obj.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), K, dist)
        out[ok] = img.reshape(-1, 2)
    return out


def apply_homography(H: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # noqa: N803
    """Map (N, 2) points through a (3, 3) homography.

    Returns:
        (N, 2) mapped points (NaN where the input is NaN or lands at infinity) and (N,) the third
        homogeneous component before division (its sign tells which side of the horizon a point is).
    """
    pts = as_points(points)
    hom = np.column_stack([pts, np.ones(len(pts))]) @ np.asarray(H, dtype=np.float64).T
    w = hom[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        out = hom[:, :2] / w[:, None]
    out[~np.isfinite(out).all(axis=1) | (np.abs(w) < 1e-12)] = np.nan
    return out, w


@dataclass(frozen=True)
class CameraPose:
    """A camera's position and orientation relative to the stage floor.

    ``x_cam = R @ X_stage + t`` with ``X_stage = (x, y, height)``; an undistorted pixel is
    ``K @ x_cam`` divided by its third component. ``R`` is a rotation when the venue's (x, y, up)
    axes are right-handed and a rotation times a mirror of the height axis when they are
    left-handed (``left_handed``); either way ``height`` is positive above the floor, on the
    camera's side.
    """

    R: np.ndarray
    t: np.ndarray
    left_handed: bool = False

    @property
    def centre(self) -> np.ndarray:
        """(3,) camera position in stage coordinates (x, y, height) in metres."""
        return -self.R.T @ self.t

    def rays(self, K: np.ndarray, undistorted_px: np.ndarray) -> np.ndarray:  # noqa: N803
        """(N, 3) unnormalised ray directions in stage coordinates through (N, 2) undistorted pixels."""
        pts = as_points(undistorted_px)
        cam = np.column_stack([pts, np.ones(len(pts))]) @ np.linalg.inv(K).T
        return cam @ self.R  # (R.T @ d) for each row

    def project(self, K: np.ndarray, dist: np.ndarray | None, points: np.ndarray) -> np.ndarray:  # noqa: N803
        """Stage points (N, 3) -> raw pixels (N, 2) (undistorted if ``dist`` is None).

        Points behind the camera give NaN.
        """
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        cam = pts @ self.R.T + self.t
        out = np.full((len(pts), 2), np.nan)
        front = cam[:, 2] > 1e-6
        if front.any():
            und = (cam[front, :2] / cam[front, 2:3]) * np.diag(K)[:2] + K[:2, 2]
            out[front] = und if dist is None else distort_px(und, K, dist)
        return out


def pose_from_homography(
    H: np.ndarray,  # noqa: N803
    K: np.ndarray,  # noqa: N803
    seen_stage_xy: np.ndarray,
) -> CameraPose:
    """Recover the camera pose from the image-to-floor homography and the camera matrix.

    The floor-to-image map is ``inv(H) ~ K [r1 r2 t]`` (Zhang 2000, section 3.1); r1 and r2 are
    scaled to unit length, completed with r3 = r1 x r2 and projected onto the nearest rotation.

    Args:
        H: (3, 3) undistorted pixels -> stage metres.
        K: (3, 3) camera matrix.
        seen_stage_xy: (M, 2) stage points known to be in front of the camera (the calibration
            points); they fix the sign of the decomposition.

    Returns:
        The pose, with the height axis pointing to the camera's side of the floor.
    """
    M = np.linalg.inv(K) @ np.linalg.inv(np.asarray(H, dtype=np.float64))  # noqa: N806
    M = M * (2.0 / (np.linalg.norm(M[:, 0]) + np.linalg.norm(M[:, 1])))  # noqa: N806
    ref = np.asarray(seen_stage_xy, dtype=np.float64).reshape(-1, 2).mean(axis=0)
    if (M @ np.array([ref[0], ref[1], 1.0]))[2] < 0:
        M = -M  # noqa: N806
    r1, r2, t = M[:, 0], M[:, 1], M[:, 2]
    u, _, vt = np.linalg.svd(np.column_stack([r1, r2, np.cross(r1, r2)]))
    R = u @ vt  # noqa: N806
    if np.linalg.det(R) < 0:  # cannot happen for r3 = r1 x r2 up to noise, but keep R a rotation
        R = u @ np.diag([1.0, 1.0, -1.0]) @ vt  # noqa: N806
    left_handed = (-R.T @ t)[2] < 0
    if left_handed:
        # The camera is on the -z side: the venue's (x, y) with "up" form a left-handed frame.
        # Mirroring the third axis keeps every floor point's projection and makes height positive.
        R = R @ np.diag([1.0, 1.0, -1.0])  # noqa: N806
    return CameraPose(R=R, t=t, left_handed=bool(left_handed))


def look_at_pose(
    position: tuple[float, float, float],
    look_at: tuple[float, float],
    roll_deg: float = 0.0,
    left_handed: bool = False,
) -> CameraPose:
    """Pose of a camera at ``position`` aimed at floor point ``look_at`` (image centre), horizon level.

    Args:
        position: (x, y, height) in stage metres.
        look_at: stage (x, y) on the floor seen at the image centre.
        roll_deg: rotation of the camera about its view direction, in degrees (0 keeps the
            horizon level).
        left_handed: the venue's (x, y, up) axes are left-handed (e.g. x to stage right, y upstage).
    """
    mirror = np.diag([-1.0, 1.0, 1.0]) if left_handed else np.eye(3)
    centre = mirror @ np.asarray(position, dtype=np.float64)
    target = mirror @ np.array([look_at[0], look_at[1], 0.0])
    forward = target - centre
    norm = np.linalg.norm(forward)
    if norm < 1e-9:
        raise ValueError("camera position and look_at point coincide")
    forward /= norm
    up = np.array([0.0, 0.0, 1.0])
    right = np.cross(forward, up)
    if np.linalg.norm(right) < 1e-6:  # looking straight down: let image "up" be +y
        right = np.cross(forward, np.array([0.0, 1.0, 0.0]))
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    R = np.vstack([right, down, forward])  # noqa: N806
    a = np.deg2rad(roll_deg)
    roll = np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])
    R = roll @ R @ mirror  # noqa: N806
    return CameraPose(R=R, t=-R @ np.asarray(position, dtype=np.float64), left_handed=left_handed)


def camera_matrix_from_fov(image_size: tuple[int, int], hfov_deg: float) -> np.ndarray:
    """Camera matrix of an ideal camera with horizontal field of view ``hfov_deg`` (for guesses)."""
    w, h = image_size
    f = (w / 2.0) / np.tan(np.deg2rad(hfov_deg) / 2.0)
    return np.array([[f, 0.0, (w - 1) / 2.0], [0.0, f, (h - 1) / 2.0], [0.0, 0.0, 1.0]])
