"""Confidence-weighted DLT triangulation of joints seen by several calibrated cameras.

Per point (a joint of a performer), every view whose 2D joint is confident enough contributes the two
DLT rows ``c * (x P3 - P1)`` and ``c * (y P3 - P2)`` (Hartley and Zisserman, section 12.2), with
``(x, y)`` the undistorted normalised coordinates, ``P = [R | t]`` and ``c`` the heatmap confidence;
the point ``X = (x, y, z, 1)`` minimises the stacked rows' squared norm (the inhomogeneous DLT: a 3x3
linear system per point). All points of all performers are solved at once: the normal matrices come
from one matrix product per frame and the 3x3 systems are solved as one batch (no Python loop over
joints or performers).

Choosing the views, per point:

1. **Consensus.** Each pair of views proposes the point; the proposal with the smallest
   ``sum(min(error, max_reprojection_px)^2)`` over all views that saw the joint wins, and only the views
   within ``max_reprojection_px`` of it are used (a vectorised MSAC over the few view pairs). A wrong
   view (left and right swapped, another person) is left out, even where averaging it into a solve of
   all views would spread its error under the threshold.
2. **Weighted solve and rejection.** The point is solved from those views, weighted by confidence; while
   its worst view reprojects further than ``max_reprojection_px`` (or lands behind that camera) and
   more than ``min_views`` remain, that view is dropped and the point solved again.
3. A point left with fewer than ``min_views`` views, whose remaining views still disagree (two views:
   there is no telling which one is wrong), or that lands under the floor (``min_height_m``: views that
   agree on a wrong thing), is not triangulated: NaN position, confidence 0. The caller
   holds or predicts it (the 3D Kalman filter does); the triangulator never invents it.

Confidence of a triangulated point: the mean 2D confidence of the views used, times
``1 - 0.5 * min(e / max_reprojection_px, 1)`` with ``e`` its RMS reprojection error (so a point at the
rejection threshold counts half).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from stagepose.multiview.cameras import Rig
from stagepose.skeleton import NUM_JOINTS, flip_permutation


@dataclass(frozen=True)
class TriangulationSettings:
    """How the triangulator chooses views.

    Attributes:
        min_confidence: a view's 2D joint below this confidence is not used.
        max_reprojection_px: a view reprojecting further than this (pixels) is dropped and the point
            solved again without it.
        min_views: views a point needs (2 or more).
        fix_left_right: in `triangulate_performers`, read a view whose whole pose has left and right swapped
            the other way round (`swapped_views`).
        min_height_m: a point solved lower than this (world z in metres; the calibrations put the stage floor
            at z = 0, z up) is not triangulated: two views can agree exactly on a joint that both put on the
            wrong thing (a foot on the treadmill's far end lies 1.6 m under the floor, at 0.7 px), and a
            joint under the floor is wrong whatever its error. None: no limit (a world frame without a floor).
    """

    min_confidence: float = 0.2
    max_reprojection_px: float = 25.0
    min_views: int = 2
    fix_left_right: bool = True
    min_height_m: float | None = -0.5

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_confidence < 1.0:
            raise ValueError(f"min_confidence must be in [0, 1), got {self.min_confidence}")
        if not (math.isfinite(self.max_reprojection_px) and self.max_reprojection_px > 0):
            raise ValueError(f"max_reprojection_px must be a number > 0, got {self.max_reprojection_px}")
        if self.min_views < 2:
            raise ValueError(f"min_views must be >= 2 (one view has no depth), got {self.min_views}")
        if self.min_height_m is not None and not math.isfinite(self.min_height_m):
            raise ValueError(f"min_height_m must be a number (metres) or None, got {self.min_height_m}")


@dataclass(frozen=True)
class Triangulation:
    """Triangulated points and how they were obtained (N points, C views).

    Attributes:
        points: (N, 3) world metres; NaN where not triangulated.
        confidence: (N,) 0..1; 0 where not triangulated.
        reprojection_px: (N,) RMS reprojection error over the views used, pixels; NaN where not triangulated.
        views: (C, N) bool, the views each point was finally solved from (all False where not triangulated).
        view_error_px: (C, N) reprojection error of the final point in every view that saw the joint
            (used or dropped); NaN where a view did not see it or there is no point.
        swapped: (C,) bool, views whose pose was read with left and right exchanged
            (`triangulate_performers`); None elsewhere.
    """

    points: np.ndarray
    confidence: np.ndarray
    reprojection_px: np.ndarray
    views: np.ndarray
    view_error_px: np.ndarray
    swapped: np.ndarray | None = None

    @classmethod
    def over_frames(cls, parts: Sequence[Triangulation], num_views: int) -> Triangulation:
        """One result for a run of frames (points one frame after another); ``swapped`` becomes (C, frames)."""
        return cls(
            points=np.concatenate([p.points for p in parts]),
            confidence=np.concatenate([p.confidence for p in parts]),
            reprojection_px=np.concatenate([p.reprojection_px for p in parts]),
            views=np.concatenate([p.views for p in parts], axis=1),
            view_error_px=np.concatenate([p.view_error_px for p in parts], axis=1),
            swapped=np.stack([np.zeros(num_views, bool) if p.swapped is None else p.swapped for p in parts], axis=1),
        )

    @property
    def num_views(self) -> np.ndarray:
        """(N,) views used per point."""
        return self.views.sum(axis=0)

    @property
    def ok(self) -> np.ndarray:
        """(N,) bool, triangulated."""
        return np.isfinite(self.points).all(axis=1)

    def take(self, index: slice | np.ndarray) -> Triangulation:
        """The points selected by ``index`` (e.g. one performer's joints of a stacked solve)."""
        return Triangulation(
            points=self.points[index],
            confidence=self.confidence[index],
            reprojection_px=self.reprojection_px[index],
            views=self.views[:, index],
            view_error_px=self.view_error_px[:, index],
        )


def dlt_basis(projections: np.ndarray) -> np.ndarray:
    """(C, 4, 16) per camera, the flattened 4x4 matrices whose mix gives a view's share of ``A^T A``.

    A view at normalised (x, y) with weight w adds ``w^2 ((x^2 + y^2) P3P3' - x (P3P1' + P1P3')
    - y (P3P2' + P2P3') + P1P1' + P2P2')`` (rows ``x P3 - P1`` and ``y P3 - P2``), so one matrix product
    per frame builds the normal matrices of every point and view.
    """
    p1, p2, p3 = projections[:, 0], projections[:, 1], projections[:, 2]

    def outer(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.einsum("ci,cj->cij", a, b)

    parts = [outer(p3, p3), outer(p3, p1) + outer(p1, p3), outer(p3, p2) + outer(p2, p3), outer(p1, p1) + outer(p2, p2)]
    return np.stack(parts, axis=1).reshape(len(projections), 4, 16)


def view_normals(normalised: np.ndarray, weights: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """(C, N, 16) each view's weighted share of every point's ``A^T A`` (0 where the weight is 0).

    Args:
        normalised: (C, N, 2) normalised coordinates (any value where the weight is 0).
        weights: (C, N) DLT row weights.
        basis: `dlt_basis` of the cameras.
    """
    ok = weights > 0
    x = np.where(ok, normalised[..., 0], 0.0)
    y = np.where(ok, normalised[..., 1], 0.0)
    w2 = np.where(ok, weights, 0.0) ** 2
    coeff = np.stack([x * x + y * y, -x, -y, np.ones_like(x)], axis=-1) * w2[..., None]  # (C, N, 4)
    return np.matmul(coeff, basis)  # (C, N, 16)


def solve_normals(normals: np.ndarray, views: np.ndarray) -> np.ndarray:
    """Points minimising the algebraic DLT error, from summed normal matrices.

    With ``X = (x, y, z, 1)`` the least-squares point solves the 3x3 system ``N[:3, :3] X = -N[:3, 3]``
    (the inhomogeneous DLT: stagepose's points are never at infinity).

    Args:
        normals: (..., 16) summed ``A^T A`` (flattened 4x4).
        views: (...) number of views in each sum; fewer than 2 gives NaN.

    Returns:
        (..., 3) points; NaN where under-determined or (numerically) singular.
    """
    n = normals
    # N[:3, :3] (symmetric) and the right-hand side -N[:3, 3], flattened 4x4 indices
    a00, a01, a02, a11, a12, a22 = n[..., 0], n[..., 1], n[..., 2], n[..., 5], n[..., 6], n[..., 10]
    b0, b1, b2 = -n[..., 3], -n[..., 7], -n[..., 11]
    # Cramer's rule with the cofactors of the symmetric 3x3 matrix: elementwise, so one batch of any
    # size costs a few dozen array operations and a singular point only gives its own NaN
    c00 = a11 * a22 - a12 * a12
    c01 = a02 * a12 - a01 * a22
    c02 = a01 * a12 - a02 * a11
    c11 = a00 * a22 - a02 * a02
    c12 = a01 * a02 - a00 * a12
    c22 = a00 * a11 - a01 * a01
    det = a00 * c00 + a01 * c01 + a02 * c02
    scale = np.maximum(np.maximum(np.abs(a00), np.abs(a11)), np.abs(a22))
    ok = (views >= 2) & (np.abs(det) > 1e-12 * scale**3)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = np.where(ok, 1.0 / det, np.nan)
        points = np.stack(
            [(c00 * b0 + c01 * b1 + c02 * b2) * inv, (c01 * b0 + c11 * b1 + c12 * b2) * inv,
             (c02 * b0 + c12 * b1 + c22 * b2) * inv],
            axis=-1,
        )  # fmt: skip
    return points


def solve_dlt(normalised: np.ndarray, weights: np.ndarray, projections: np.ndarray) -> np.ndarray:
    """Weighted DLT of every point at once.

    Args:
        normalised: (C, N, 2) undistorted normalised coordinates (any value where the weight is 0).
        weights: (C, N) row weights, 0 for views not used.
        projections: (C, 3, 4) ``[R | t]``.

    Returns:
        (N, 3) points; NaN where fewer than 2 views have weight.
    """
    normals = view_normals(normalised, weights, dlt_basis(projections)).sum(axis=0)
    return solve_normals(normals, np.count_nonzero(weights > 0, axis=0))


def reprojection_errors(
    points: np.ndarray, normalised: np.ndarray, projections: np.ndarray, focal_px: np.ndarray
) -> np.ndarray:
    """Distance in pixels between each point's projection and each view's observation.

    Args:
        points: (N, 3) world points (NaN allowed).
        normalised: (C, N, 2) observations in normalised coordinates (NaN allowed).
        projections: (C, 3, 4).
        focal_px: (C,) focal lengths, to express the normalised error in pixels.

    Returns:
        (C, N) pixels; inf where the point is behind the camera, NaN where either input is NaN.
    """
    cam = np.matmul(points, projections[:, :, :3].transpose(0, 2, 1)) + projections[:, None, :, 3]  # (C, N, 3)
    z = cam[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        proj = cam[..., :2] / z[..., None]
        d = proj - normalised
        err = np.sqrt(d[..., 0] ** 2 + d[..., 1] ** 2) * focal_px[:, None]
    return np.where(z > 1e-6, err, np.where(np.isnan(z), np.nan, np.inf))


@functools.lru_cache(maxsize=16)
def _pairs(views: int) -> tuple[np.ndarray, np.ndarray]:
    """Every pair of ``views`` view indices (a < b), as two index arrays."""
    return np.triu_indices(views, 1)


def consensus_views(
    normalised: np.ndarray,
    seen: np.ndarray,
    projections: np.ndarray,
    focal_px: np.ndarray,
    threshold_px: float,
    basis: np.ndarray | None = None,
) -> np.ndarray:
    """Per point, the views that agree with the best pair of views (a vectorised MSAC over view pairs).

    Every pair of views that both see a point proposes it (unweighted two-view DLT); the proposal is
    scored over all views that see the point by ``sum(min(error, threshold)^2)``, and the views within the
    threshold of the best proposal are kept. A wrong view (left and right swapped, another person) is
    then left out even when, averaged into a solve of all views, it would pull every error under the
    threshold.

    Args:
        normalised: (C, N, 2); seen: (C, N) bool, views that saw each point.
        projections: (C, 3, 4); focal_px: (C,); threshold_px: the inlier limit in pixels.
        basis: `dlt_basis(projections)`, if already known.

    Returns:
        (C, N) bool; equal to ``seen`` for points seen by fewer than 3 views (nothing to vote with).
    """
    c, n = seen.shape
    count = seen.sum(axis=0)
    if c < 3 or not (count >= 3).any():
        return seen.copy()
    basis = dlt_basis(projections) if basis is None else basis
    normals = view_normals(normalised, seen.astype(np.float64), basis)
    pa, pb = _pairs(c)
    proposals = solve_normals(normals[pa] + normals[pb], (seen[pa] & seen[pb]) * 2)  # (P, N, 3)
    # every proposal in every view at once: (P, C, N)
    cam = (
        np.matmul(proposals[:, None], projections[None, :, :, :3].transpose(0, 1, 3, 2))
        + projections[None, :, None, :, 3]
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        d = cam[..., :2] / cam[..., 2:3] - normalised[None]
        err2 = (d[..., 0] ** 2 + d[..., 1] ** 2) * (focal_px**2)[None, :, None]
    err2 = np.where((cam[..., 2] > 1e-6) & ~np.isnan(err2), err2, np.inf)
    cost = np.where(seen[None], np.minimum(err2, threshold_px**2), 0.0).sum(axis=1)  # (P, N)
    cost = np.where(np.isnan(proposals[..., 0]), np.inf, cost)
    best = cost.argmin(axis=0)
    inliers = seen & (err2[best, :, np.arange(n)].T <= threshold_px**2)
    return np.where((count >= 3)[None, :] & np.isfinite(cost.min(axis=0))[None, :], inliers, seen)


def _solve(
    normalised: np.ndarray, weights: np.ndarray, used: np.ndarray, projections: np.ndarray, focal_px: np.ndarray,
    basis: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    points = solve_normals(view_normals(normalised, np.where(used, weights, 0.0), basis).sum(axis=0), used.sum(axis=0))
    return points, reprojection_errors(points, normalised, projections, focal_px)


def triangulate_normalised(
    normalised: np.ndarray,
    confidence: np.ndarray,
    projections: np.ndarray,
    focal_px: np.ndarray,
    settings: TriangulationSettings | None = None,
    basis: np.ndarray | None = None,
) -> Triangulation:
    """Triangulate N points from C views given in normalised coordinates (see the module docstring).

    Args:
        normalised: (C, N, 2) undistorted normalised coordinates; NaN where a view has no point.
        confidence: (C, N) 2D confidence in 0..1 (NaN counts as 0).
        projections: (C, 3, 4) ``[R | t]`` per view.
        focal_px: (C,) focal lengths in pixels (error units and the rejection threshold).
        settings: view selection (defaults if None).
        basis: `dlt_basis(projections)`, if already known (`Rig.dlt_basis` caches it).

    Returns:
        The `Triangulation`.

    Raises:
        ValueError: inconsistent shapes.
    """
    settings = settings or TriangulationSettings()
    normalised = np.asarray(normalised, dtype=np.float64)
    confidence = np.asarray(confidence, dtype=np.float64)
    c, n = confidence.shape
    if normalised.shape != (c, n, 2) or projections.shape != (c, 3, 4) or np.shape(focal_px) != (c,):
        raise ValueError(
            f"shapes do not agree: normalised {normalised.shape}, confidence {confidence.shape}, "
            f"projections {projections.shape}, focal_px {np.shape(focal_px)}"
        )
    basis = dlt_basis(projections) if basis is None else basis
    seen = ~np.isnan(normalised).any(axis=-1) & (confidence >= max(settings.min_confidence, 1e-9))  # NaN: False
    confidence = np.where(seen, confidence, 0.0)
    threshold = settings.max_reprojection_px
    used = seen.copy()
    points, errors = _solve(normalised, confidence, used, projections, focal_px, basis)
    # Consensus where a wrong view may hide: with C views, a view off by d pulls the all-view solve so that
    # it still misses by about d (C-1)/C >= d/2 > threshold/2 whenever d exceeds the threshold.
    worst = np.where(used, errors, -1.0).max(axis=0, initial=-1.0)
    suspect = (used.sum(axis=0) >= 3) & ~(worst <= threshold / 2)
    if suspect.any():
        cols = np.nonzero(suspect)[0]
        agree = consensus_views(normalised[:, cols], seen[:, cols], projections, focal_px, threshold, basis)
        if (agree != used[:, cols]).any():
            used[:, cols] = agree
            points, errors = _solve(normalised, confidence, used, projections, focal_px, basis)
    for _ in range(max(c - 2, 0)):
        masked = np.where(used, errors, -1.0)
        masked[np.isnan(masked)] = np.inf
        worst_view = masked.argmax(axis=0)
        drop = (masked[worst_view, np.arange(n)] > threshold) & (used.sum(axis=0) > settings.min_views)
        if not drop.any():
            break
        used[worst_view[drop], np.nonzero(drop)[0]] = False
        points, errors = _solve(normalised, confidence, used, projections, focal_px, basis)
    count = used.sum(axis=0)
    used_errors = np.where(used, errors, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        rms = np.sqrt((used_errors**2).sum(axis=0) / count)
        mean_conf = np.where(used, confidence, 0.0).sum(axis=0) / count
    good = (count >= settings.min_views) & np.isfinite(rms) & (rms <= threshold) & np.isfinite(points).all(axis=1)
    # views left that still disagree (two views: there is no telling which one is wrong)
    good &= ~(np.where(used, errors, 0.0).max(axis=0) > threshold) & ~np.isnan(np.where(used, errors, 0.0)).any(axis=0)
    if settings.min_height_m is not None:
        good &= ~(points[:, 2] < settings.min_height_m)  # under the floor: wrong in every view used (NaN: False)
    points = np.where(good[:, None], points, np.nan)
    conf = np.where(good, mean_conf * (1.0 - 0.5 * np.minimum(rms / threshold, 1.0)), 0.0)
    used &= good[None, :]
    return Triangulation(
        points=points,
        confidence=np.clip(np.where(good, conf, 0.0), 0.0, 1.0),
        reprojection_px=np.where(good, rms, np.nan),
        views=used,
        view_error_px=np.where(seen & good[None, :], errors, np.nan),
    )


def triangulate(
    rig: Rig, pixels: np.ndarray, confidence: np.ndarray, settings: TriangulationSettings | None = None
) -> Triangulation:
    """Triangulate points given as raw pixels (undistorted here with each camera's lens).

    Args:
        rig: the calibrated cameras (C).
        pixels: (C, N, 2) raw pixels per view; NaN where a view has no point.
        confidence: (C, N) 2D confidence.
        settings: view selection.

    Returns:
        The `Triangulation` (reprojection errors in pixels of each camera).
    """
    return triangulate_normalised(
        rig.normalise(pixels), confidence, rig.projections, rig.focal_px, settings, rig.dlt_basis
    )


def swapped_views(
    points: np.ndarray,
    normalised: np.ndarray,
    seen: np.ndarray,
    projections: np.ndarray,
    focal_px: np.ndarray,
    threshold_px: float,
    permutation: np.ndarray,
    min_pairs: int = 2,
) -> np.ndarray:
    """Views whose pose has left and right swapped against the triangulated skeleton.

    A monocular 2D model's commonest mistake is a whole pose with its sides swapped (a back view read as
    a front view). The skeleton triangulated by the other views then reprojects onto the view's left
    joints where it labels right ones: a view is swapped when its sided joints, read with left and right
    exchanged, miss the skeleton by less than half as much (errors capped at the threshold, so one wild
    joint does not decide) over at least ``min_pairs`` left/right pairs.

    Args:
        points: (P, K, 3) triangulated joints of P performers (NaN where not triangulated).
        normalised: (C, P, K, 2) their 2D joints per view; seen: (C, P, K) bool, confident joints.
        projections, focal_px, threshold_px: as for `triangulate_normalised`.
        permutation: (K,) joint order with left and right exchanged (`stagepose.skeleton.flip_permutation`).
        min_pairs: sided joints (of either side) needed on both readings to decide.

    Returns:
        (C, P) bool.
    """
    c, n_perf, k = seen.shape
    sided = permutation != np.arange(k)
    flat = points.reshape(-1, 3)
    cam = np.matmul(flat, projections[:, :, :3].transpose(0, 2, 1)) + projections[:, None, :, 3]  # (C, P*K, 3)
    with np.errstate(divide="ignore", invalid="ignore"):
        proj = (cam[..., :2] / cam[..., 2:3]).reshape(c, n_perf, k, 2)
    front = (cam[..., 2] > 1e-6).reshape(c, n_perf, k) & ~np.isnan(points[..., 0])[None]
    cap = threshold_px**2

    def cost(obs: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d = proj - obs
        err2 = (d[..., 0] ** 2 + d[..., 1] ** 2) * (focal_px**2)[:, None, None]
        valid = ok & front & sided
        return np.where(valid, np.minimum(np.nan_to_num(err2, nan=cap), cap), 0.0).sum(axis=-1), valid.sum(axis=-1)

    keep, n_keep = cost(normalised, seen)
    swap, n_swap = cost(normalised[:, :, permutation], seen[:, :, permutation])
    return (n_keep >= min_pairs) & (n_swap >= min_pairs) & (swap < 0.5 * keep)


def _merged(whole: Triangulation, part: Triangulation, columns: np.ndarray) -> Triangulation:
    """``whole`` with the points at ``columns`` replaced by ``part``'s."""
    points, confidence, reprojection = whole.points.copy(), whole.confidence.copy(), whole.reprojection_px.copy()
    views, view_error = whole.views.copy(), whole.view_error_px.copy()
    points[columns], confidence[columns], reprojection[columns] = part.points, part.confidence, part.reprojection_px
    views[:, columns], view_error[:, columns] = part.views, part.view_error_px
    return Triangulation(points, confidence, reprojection, views, view_error)


def triangulate_performers(
    rig: Rig,
    poses: Mapping[str, tuple[np.ndarray, np.ndarray]],
    settings: TriangulationSettings | None = None,
) -> dict[str, Triangulation]:
    """Triangulate several performers' joints in one batched solve.

    With ``settings.fix_left_right`` and MPII poses (K = 16), a view whose pose of a performer has left and
    right swapped (`swapped_views`) is read the other way round and the batch solved again; the
    performer's `Triangulation.swapped` says which views were.

    Args:
        rig: the calibrated cameras (C).
        poses: performer -> (joints (C, K, 2) raw pixels, NaN where a camera has no pose; confidence (C, K)).
        settings: view selection.

    Returns:
        performer -> `Triangulation` of its K joints.
    """
    if not poses:
        return {}
    settings = settings or TriangulationSettings()
    names = list(poses)
    sizes = [np.shape(poses[p][1])[1] for p in names]
    joints = np.concatenate([np.asarray(poses[p][0], dtype=np.float64) for p in names], axis=1)
    conf = np.concatenate([np.asarray(poses[p][1], dtype=np.float64) for p in names], axis=1)
    normalised = rig.normalise(joints)
    result = triangulate_normalised(normalised, conf, rig.projections, rig.focal_px, settings, rig.dlt_basis)
    swapped = np.zeros((len(rig), len(names)), dtype=bool)
    if settings.fix_left_right and all(k == NUM_JOINTS for k in sizes):
        c, p, k = len(rig), len(names), NUM_JOINTS
        perm = flip_permutation()
        seen = ~np.isnan(normalised[..., 0]) & (conf >= max(settings.min_confidence, 1e-9))
        swapped = swapped_views(result.points.reshape(p, k, 3), normalised.reshape(c, p, k, 2), seen.reshape(c, p, k),
                                rig.projections, rig.focal_px, settings.max_reprojection_px, perm)  # fmt: skip
        if swapped.any():
            # solve again only the performers with a swapped view, those views read the other way round
            again = np.nonzero(swapped.any(axis=0))[0]
            order = np.where(swapped[:, again, None], perm[None, None, :], np.arange(k)[None, None, :])
            index = (order + (again * k)[None, :, None]).reshape(c, -1)  # (C, len(again) * K)
            part = triangulate_normalised(
                np.take_along_axis(normalised, index[..., None], axis=1),
                np.take_along_axis(conf, index, axis=1),
                rig.projections,
                rig.focal_px,
                settings,
                rig.dlt_basis,
            )
            result = _merged(result, part, (again[:, None] * k + np.arange(k)[None, :]).ravel())
    out, start = {}, 0
    for i, (name, k) in enumerate(zip(names, sizes)):
        part = result.take(slice(start, start + k))
        out[name] = replace(part, swapped=swapped[:, i].copy())
        start += k
    return out
