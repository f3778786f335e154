"""Which 2D poses in different cameras are the same person.

By name when the show says so (each camera's tracks already carry performer names: `by_name`);
otherwise by epipolar consistency (`by_epipolar`): the joints of one person seen by camera a lie on
the epipolar lines of the same joints seen by camera b. The distance of two poses is the median, over
joints both see confidently, of the symmetric epipolar distance in pixels; poses are grouped greedily,
closest pair first, one pose per camera per person, and two groups merge only if every cross pair is
within the limit (no chaining through a third pose).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from stagepose.multiview.cameras import Rig


@dataclass(frozen=True)
class PoseView:
    """One 2D pose in one camera.

    Attributes:
        joints: (K, 2) raw pixels, NaN where missing.
        confidence: (K,) 0..1.
    """

    joints: np.ndarray
    confidence: np.ndarray


def skew(v: np.ndarray) -> np.ndarray:
    """(3, 3) cross-product matrix of a 3-vector."""
    return np.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])


def essential(rig: Rig, a: int, b: int) -> np.ndarray:
    """(3, 3) essential matrix E with ``x_b^T E x_a = 0`` for normalised homogeneous points of views a, b."""
    ca, cb = rig.cameras[a], rig.cameras[b]
    r = cb.R @ ca.R.T
    t = cb.t - r @ ca.t
    return skew(t) @ r


def _line_distance(points: np.ndarray, lines: np.ndarray) -> np.ndarray:
    """Distance of (N, 3) homogeneous points (w = 1) to (N, 3) lines."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.abs((points * lines).sum(axis=1)) / np.linalg.norm(lines[:, :2], axis=1)


def _distance(
    e: np.ndarray, fa: float, fb: float, xa: np.ndarray, xb: np.ndarray, ok_a: np.ndarray, ok_b: np.ndarray,
    min_joints: int,
) -> float:  # fmt: skip
    """Median symmetric epipolar distance (pixels) of two poses in normalised coordinates."""
    shared = ok_a & ok_b
    if shared.sum() < min_joints:
        return float("inf")
    ha = np.column_stack([xa[shared], np.ones(shared.sum())])
    hb = np.column_stack([xb[shared], np.ones(shared.sum())])
    d_b = _line_distance(hb, ha @ e.T) * fb  # x_b to the line E x_a
    d_a = _line_distance(ha, hb @ e) * fa  # x_a to the line E^T x_b
    return float(np.median((d_a + d_b) / 2.0))


def _prepared(rig: Rig, view: int, pose: PoseView, min_confidence: float) -> tuple[np.ndarray, np.ndarray]:
    x = rig.cameras[view].normalise(pose.joints)
    ok = np.isfinite(x).all(axis=1) & (np.nan_to_num(pose.confidence) >= min_confidence)
    return x, ok


def epipolar_distance(
    rig: Rig, a: int, b: int, pose_a: PoseView, pose_b: PoseView, min_confidence: float = 0.2, min_joints: int = 4
) -> float:
    """Symmetric epipolar distance of two poses, in pixels (median over joints seen confidently in both).

    Args:
        rig: the cameras; a, b: view indices.
        pose_a, pose_b: the two poses.
        min_confidence: joints below this in either view are not compared.
        min_joints: fewer shared joints than this give inf (not enough evidence).

    Returns:
        Pixels (inf when the poses share too few joints).
    """
    xa, ok_a = _prepared(rig, a, pose_a, min_confidence)
    xb, ok_b = _prepared(rig, b, pose_b, min_confidence)
    return _distance(essential(rig, a, b), rig.focal_px[a], rig.focal_px[b], xa, xb, ok_a, ok_b, min_joints)


def _masked_median(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Median over the last axis of the entries where ``mask`` (NaN where none); np.nanmedian is 10x slower."""
    v = np.sort(np.where(mask, values, np.inf), axis=-1)
    n = mask.sum(axis=-1)
    lo = np.take_along_axis(v, np.maximum((n - 1) // 2, 0)[..., None], axis=-1)[..., 0]
    hi = np.take_along_axis(v, np.maximum(n // 2, 0)[..., None], axis=-1)[..., 0]
    with np.errstate(invalid="ignore"):
        return np.where(n > 0, (lo + hi) / 2.0, np.nan)


def pairwise_distances(
    rig: Rig, candidates: Sequence[Sequence[PoseView]], min_confidence: float = 0.2, min_joints: int = 4
) -> np.ndarray:
    """Symmetric epipolar distances (pixels) between all candidate poses of different cameras.

    Args:
        rig: the cameras (C); candidates: per view, its poses (all with the same K joints).
        min_confidence, min_joints: see `epipolar_distance`.

    Returns:
        (M, M) for the M candidates in view order (view 0's poses first); inf within a view and where
        two poses share fewer than ``min_joints`` confident joints.
    """
    counts = [len(poses) for poses in candidates]
    total = sum(counts)
    dist = np.full((total, total), np.inf)
    if total == 0:
        return dist
    k = len(next(pose for poses in candidates for pose in poses).confidence)
    width = max(counts)
    pixels = np.full((len(rig), width * k, 2), np.nan)
    conf = np.zeros((len(rig), width * k))
    for v, poses in enumerate(candidates):
        for i, pose in enumerate(poses):
            pixels[v, i * k : (i + 1) * k] = pose.joints
            conf[v, i * k : (i + 1) * k] = np.nan_to_num(pose.confidence)
    norm = rig.normalise(pixels).reshape(len(rig), width, k, 2)
    ok = np.isfinite(norm).all(axis=-1) & (conf.reshape(len(rig), width, k) >= min_confidence)
    hom = np.concatenate([np.nan_to_num(norm), np.ones((len(rig), width, k, 1))], axis=-1)  # (C, W, K, 3)
    start = np.concatenate([[0], np.cumsum(counts)])
    focal = rig.focal_px
    for va in range(len(rig)):
        for vb in range(va + 1, len(rig)):
            na, nb = counts[va], counts[vb]
            if na == 0 or nb == 0:
                continue
            e = essential(rig, va, vb)
            xa, xb = hom[va, :na], hom[vb, :nb]  # (na, K, 3), (nb, K, 3)
            lb = xa @ e.T  # lines in view b of view a's joints
            la = xb @ e  # lines in view a of view b's joints
            with np.errstate(invalid="ignore", divide="ignore"):
                d_b = np.abs(np.einsum("jkc,ikc->ijk", xb, lb)) / np.linalg.norm(lb[..., :2], axis=-1)[:, None, :]
                d_a = np.abs(np.einsum("ikc,jkc->ijk", xa, la)) / np.linalg.norm(la[..., :2], axis=-1)[None, :, :]
            d = (d_a * focal[va] + d_b * focal[vb]) / 2.0  # (na, nb, K)
            shared = ok[va, :na, None, :] & ok[vb, None, :nb, :]
            enough = shared.sum(axis=-1) >= min_joints
            block = np.where(enough, _masked_median(d, shared), np.inf)
            dist[start[va] : start[va] + na, start[vb] : start[vb] + nb] = block
            dist[start[vb] : start[vb] + nb, start[va] : start[va] + na] = block.T
    return dist


def by_epipolar(
    rig: Rig,
    candidates: Sequence[Sequence[PoseView]],
    *,
    max_distance_px: float = 40.0,
    min_confidence: float = 0.2,
    min_joints: int = 4,
) -> list[dict[int, int]]:
    """Group per-camera candidate poses into persons by minimal symmetric epipolar distance.

    Args:
        rig: the cameras (C).
        candidates: per view, its candidate poses (C lists, possibly empty).
        max_distance_px: two poses further apart than this are never the same person.
        min_confidence, min_joints: see `epipolar_distance`.

    Returns:
        Persons seen by 2 or more cameras, each a dict view index -> candidate index, those seen by most
        cameras first, then the best-agreeing (smallest mean distance).

    Raises:
        ValueError: ``candidates`` does not have one entry per camera.
    """
    if len(candidates) != len(rig):
        raise ValueError(f"expected candidates for {len(rig)} cameras, got {len(candidates)}")
    nodes = [(v, i) for v, poses in enumerate(candidates) for i in range(len(poses))]
    dist = pairwise_distances(rig, candidates, min_confidence, min_joints)
    group_of = list(range(len(nodes)))  # node -> group id
    members: dict[int, list[int]] = {k: [k] for k in range(len(nodes))}
    close = np.argwhere(np.triu(dist <= max_distance_px, 1))
    for p, q in sorted(close.tolist(), key=lambda pq: dist[pq[0], pq[1]]):
        gp, gq = group_of[p], group_of[q]
        if gp == gq:
            continue
        if {nodes[k][0] for k in members[gp]} & {nodes[k][0] for k in members[gq]}:
            continue  # one pose per camera per person
        if any(dist[k, m] > max_distance_px for k in members[gp] for m in members[gq]):
            continue  # every cross pair must agree, not just the closest one
        for k in members[gq]:
            group_of[k] = gp
        members[gp] += members.pop(gq)
    persons = []
    for group in members.values():
        if len(group) < 2:
            continue
        cross = [dist[k, m] for k in group for m in group if k < m]
        persons.append((float(np.mean(cross)), {nodes[k][0]: nodes[k][1] for k in group}))
    persons.sort(key=lambda item: (-len(item[1]), item[0]))
    return [person for _, person in persons]


def by_name(names: Sequence[Sequence[str]]) -> dict[str, dict[int, int]]:
    """Group per-camera poses by the performer names their tracks carry.

    Args:
        names: per view, the performer name of each of its poses (e.g. from zones in the show file).

    Returns:
        name -> {view index: pose index}, for every name (also those seen by one camera only).

    Raises:
        ValueError: a camera names the same performer twice.
    """
    out: dict[str, dict[int, int]] = {}
    for view, labels in enumerate(names):
        for i, name in enumerate(labels):
            person = out.setdefault(name, {})
            if view in person:
                raise ValueError(f"camera {view} has two poses named {name!r}")
            person[view] = i
    return out


def stack_person(
    person: Mapping[int, int], candidates: Sequence[Sequence[PoseView]], num_joints: int
) -> tuple[np.ndarray, np.ndarray]:
    """One person's poses as the (C, K, 2) joints and (C, K) confidence the triangulator takes.

    Views without a pose of this person are NaN with confidence 0.
    """
    c = len(candidates)
    joints = np.full((c, num_joints, 2), np.nan)
    conf = np.zeros((c, num_joints))
    for view, i in person.items():
        joints[view] = candidates[view][i].joints
        conf[view] = candidates[view][i].confidence
    return joints, conf
