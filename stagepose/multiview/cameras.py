"""Calibrated cameras of a show, as the triangulator sees them.

A `Rig` is the cameras of one show with intrinsics and extrinsics in one world frame (metres,
right-handed, z up; see `stagepose.calibration.files`). It converts raw pixels (lens distortion
included) to normalised image coordinates and projects world points back to raw pixels.

Normalised coordinates of a pixel are ``(x/z, y/z)`` of its ray in the camera frame: the undistorted
pixel minus the principal point, divided by the focal length. Triangulation works in them, so one
error unit is about ``1 / f`` radians in every camera; `Rig.focal_px` converts back to pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from stagepose.calibration.files import CameraCalibration, load_calibration
from stagepose.errors import ConfigError


@dataclass(frozen=True)
class RigCamera:
    """One calibrated camera.

    Attributes:
        name: the camera's name (from its calibration file).
        image_size: (width, height) in pixels.
        K: (3, 3) camera matrix; dist: (D,) OpenCV distortion.
        R: (3, 3) world-to-camera rotation; t: (3,) metres (``x_cam = R @ X + t``).
    """

    name: str
    image_size: tuple[int, int]
    K: np.ndarray
    dist: np.ndarray
    R: np.ndarray
    t: np.ndarray

    @classmethod
    def from_calibration(cls, calibration: CameraCalibration, source: str = "") -> RigCamera:
        """The camera of a calibration file.

        Raises:
            ConfigError: the file has no extrinsics.
        """
        if calibration.extrinsics is None:
            where = source or calibration.camera or "calibration"
            raise ConfigError(
                f"{where}: no 'extrinsics' (the camera's place in the show's world frame); run `stagepose calibrate "
                f"extrinsics` or `stagepose calibrate import-qualisys` for it"
            )
        ext = calibration.extrinsics
        return cls(
            name=calibration.camera,
            image_size=tuple(calibration.image_size),  # type: ignore[arg-type]
            K=calibration.intrinsics.K,
            dist=calibration.intrinsics.dist,
            R=ext.R,
            t=ext.t,
        )

    @property
    def centre(self) -> np.ndarray:
        """(3,) camera position in the world, metres."""
        return -self.R.T @ self.t

    @property
    def projection(self) -> np.ndarray:
        """(3, 4) ``[R | t]``: world point -> normalised image coordinates (homogeneous)."""
        return np.hstack([self.R, self.t[:, None]])

    def normalise(self, pixels: np.ndarray) -> np.ndarray:
        """Raw pixels -> normalised image coordinates (undistorted); NaN rows stay NaN.

        Args:
            pixels: (N, 2) raw pixel positions.

        Returns:
            (N, 2) float64.
        """
        from stagepose.calibration.geometry import undistort_raw

        pts = np.asarray(pixels, dtype=np.float64).reshape(-1, 2)
        out = np.full(pts.shape, np.nan)
        ok = np.isfinite(pts).all(axis=1)
        if ok.any():
            out[ok] = undistort_raw(pts[ok], self.K, self.dist, None).reshape(-1, 2)
        return out

    def project(self, points: np.ndarray, distort: bool = True) -> np.ndarray:
        """World points -> raw pixels (undistorted pixels with ``distort=False``).

        Args:
            points: (N, 3) metres; NaN rows and points behind the camera give NaN.

        Returns:
            (N, 2) float64 pixels.
        """
        import cv2

        pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        cam = pts @ self.R.T + self.t
        out = np.full((len(pts), 2), np.nan)
        front = np.isfinite(cam).all(axis=1) & (cam[:, 2] > 1e-6)
        if front.any():
            if distort:
                px, _ = cv2.projectPoints(cam[front].reshape(-1, 1, 3), np.zeros(3), np.zeros(3), self.K, self.dist)
                out[front] = px.reshape(-1, 2)
            else:
                out[front] = cam[front, :2] / cam[front, 2:3] * np.diag(self.K)[:2] + self.K[:2, 2]
        return out


@dataclass(frozen=True)
class Rig:
    """The calibrated cameras of a show, in a fixed order (the view axis of every array).

    Attributes:
        cameras: one `RigCamera` per view.
    """

    cameras: tuple[RigCamera, ...]

    def __post_init__(self) -> None:
        if len(self.cameras) < 2:
            raise ValueError(f"a rig needs at least 2 cameras to triangulate, got {len(self.cameras)}")
        names = [c.name for c in self.cameras]
        if len(set(names)) != len(names):
            raise ValueError(f"camera names must be unique, got {names}")

    @classmethod
    def load(cls, paths: Sequence[str | Path]) -> Rig:
        """A rig from calibration files (one per camera, in view order).

        Raises:
            ConfigError: a file is unreadable or invalid, lacks extrinsics, or two files name the same camera.
        """
        cameras = []
        for path in paths:
            calibration = load_calibration(path)
            if not calibration.camera:
                calibration = _named(calibration, Path(path).stem)
            cameras.append(RigCamera.from_calibration(calibration, str(path)))
        try:
            return cls(tuple(cameras))
        except ValueError as exc:
            raise ConfigError(f"calibration files {[str(p) for p in paths]}: {exc}") from None

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.cameras]

    def __len__(self) -> int:
        return len(self.cameras)

    @cached_property
    def projections(self) -> np.ndarray:
        """(C, 3, 4) ``[R | t]`` of every camera (normalised coordinates)."""
        return np.stack([c.projection for c in self.cameras])

    @cached_property
    def focal_px(self) -> np.ndarray:
        """(C,) mean focal length in pixels: a normalised-coordinate error times this is about pixels."""
        return np.array([(c.K[0, 0] + c.K[1, 1]) / 2.0 for c in self.cameras])

    @cached_property
    def _lens(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(C, 2) focal lengths, (C, 2) principal points and (C, 5) k1 k2 p1 p2 k3 for the vectorised
        undistortion; None when a camera has a lens model beyond those five terms (OpenCV does it)."""
        if any(len(c.dist) > 5 or abs(c.K[0, 1]) > 0 for c in self.cameras):
            return None
        focal = np.array([[c.K[0, 0], c.K[1, 1]] for c in self.cameras])
        centre = np.array([[c.K[0, 2], c.K[1, 2]] for c in self.cameras])
        dist = np.zeros((len(self.cameras), 5))
        for i, c in enumerate(self.cameras):
            dist[i, : len(c.dist)] = c.dist
        return focal, centre, dist

    def normalise(self, pixels: np.ndarray) -> np.ndarray:
        """Raw pixels of every view -> normalised coordinates (undistorted); NaN stays NaN.

        Lenses with up to five distortion terms (k1 k2 p1 p2 k3) are inverted here for all views at once
        by OpenCV's fixed-point iteration (to 1e-12, at most 30 steps); others go through OpenCV.

        Args:
            pixels: (C, N, 2) raw pixels, NaN where a view has no point.

        Returns:
            (C, N, 2) float64.
        """
        pixels = np.asarray(pixels, dtype=np.float64)
        if pixels.ndim != 3 or pixels.shape[0] != len(self) or pixels.shape[2] != 2:
            raise ValueError(f"pixels must have shape ({len(self)}, N, 2), got {pixels.shape}")
        if self._lens is None:
            return np.stack([cam.normalise(px) for cam, px in zip(self.cameras, pixels)])
        focal, centre, dist = self._lens
        k1, k2, p1, p2, k3 = (dist[:, i : i + 1] for i in range(5))
        missing = np.isnan(pixels).any(axis=-1)
        xd = np.where(missing[..., None], 0.0, (pixels - centre[:, None, :]) / focal[:, None, :])
        x0, y0 = xd[..., 0], xd[..., 1]
        x, y = x0, y0
        for _ in range(30):
            xx, yy, xy = x * x, y * y, x * y
            r2 = xx + yy
            inv = 1.0 / (1.0 + r2 * (k1 + r2 * (k2 + r2 * k3)))
            nx = (x0 - 2.0 * p1 * xy - p2 * (r2 + 2.0 * xx)) * inv
            ny = (y0 - p1 * (r2 + 2.0 * yy) - 2.0 * p2 * xy) * inv
            change = np.abs(nx - x).max(initial=0.0) + np.abs(ny - y).max(initial=0.0)
            x, y = nx, ny
            if change < 1e-12:
                break
        out = np.stack([x, y], axis=-1)
        out[missing] = np.nan
        return out

    @cached_property
    def dlt_basis(self) -> np.ndarray:
        """(C, 4, 16) the cameras' DLT normal-matrix basis (`stagepose.multiview.triangulate.dlt_basis`)."""
        from stagepose.multiview.triangulate import dlt_basis

        return dlt_basis(self.projections)

    def project(self, points: np.ndarray, distort: bool = True) -> np.ndarray:
        """(N, 3) world points -> (C, N, 2) raw pixels in every view."""
        return np.stack([cam.project(points, distort) for cam in self.cameras])


def _named(calibration: CameraCalibration, name: str) -> CameraCalibration:
    from dataclasses import replace

    return replace(calibration, camera=name)
