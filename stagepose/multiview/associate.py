"""Which 2D poses in different cameras are the same person.

By name when the show says so (each camera's tracks already carry performer names: `by_name`);
otherwise by epipolar consistency (`by_epipolar`): the joints of one person seen by camera a lie on
the epipolar lines of the same joints seen by camera b. The distance of two poses is the median, over
joints both see confidently, of the symmetric epipolar distance in pixels; poses are grouped greedily,
closest pair first, one pose per camera per person, and two groups merge only if every cross pair is
within the limit (no chaining through a third pose). When the cameras' trackers name their poses but
may be wrong (`by_epipolar_named`), the names are hypotheses the geometry judges, with continuity from
the previous step.
"""

from __future__ import annotations

import functools
import itertools
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
    return _groups(pairwise_distances(rig, candidates, min_confidence, min_joints), candidates, max_distance_px)


def _groups(dist: np.ndarray, candidates: Sequence[Sequence[PoseView]], max_distance_px: float) -> list[dict[int, int]]:
    """`by_epipolar`'s grouping of the candidates, given their `pairwise_distances`."""
    nodes = [(v, i) for v, poses in enumerate(candidates) for i in range(len(poses))]
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


# `by_epipolar_named`'s score, in units of one pair of cameras that agree exactly. Two poses given one
# name count ``1 - d / (PAIR_SCALE * max_distance_px)`` clipped to -1..1 (d: their symmetric epipolar
# distance; 0 when they share too few joints): +1 at 0 px, +0.67 at ``max_distance_px``, 0 at three
# times that and -1 from six times on. Measured on the pose2sim_multi footage with the shipped 2D model
# (``tests/test_multiview_identity.py``): the same person's pairs lie at 42 px median (90 % under
# 134 px), different people's at 234 px median but down to 18 px for one camera pair (both people
# near one epipolar plane), so one pair decides little and the agreement of all of them decides.
PAIR_SCALE = 3.0
NAME_PRIOR = 1.0  # a pose keeps the performer its tracker's name meant unless the geometry outweighs this
MAX_NAMES = 6  # more names than this in one step: the namings are too many to search (13327 per camera at 6)


@functools.lru_cache(maxsize=64)
def _label_options(poses: int, labels: int) -> np.ndarray:
    """(O, L) every naming of one view's poses, each name at most once: column l holds the pose named l,
    or -1 (the first row names none)."""
    options = [c for c in itertools.product(range(-1, poses), repeat=labels)
               if len([i for i in c if i >= 0]) == len({i for i in c if i >= 0})]  # fmt: skip
    out = np.array(options, dtype=np.intp).reshape(-1, labels)
    out.setflags(write=False)
    return out


def by_epipolar_named(
    rig: Rig,
    candidates: Sequence[Sequence[PoseView]],
    names: Sequence[Sequence[str]],
    *,
    max_distance_px: float = 40.0,
    min_confidence: float = 0.2,
    previous: Mapping[tuple[int, str], str] | None = None,
) -> dict[str, dict[int, int]]:
    """Name every camera's poses so that the poses given one name agree across cameras (epipolar distance).

    The names the cameras' trackers gave are hypotheses and the geometry judges them: each pose gets
    a performer name or none, a name at most once per camera, so as to maximise the agreement of the
    poses given one name (the sum of the pair score above over their pairs of cameras) plus
    `NAME_PRIOR` for each pose given the performer its tracker's name meant in the previous step
    (``previous``; its own name when there is none). So a camera whose tracker swapped two performers,
    or put a name on a bystander, is outvoted by the cameras that agree, and once relabelled stays so
    while the geometry is ambiguous (two people near one epipolar plane of two cameras); a pose that
    disagrees with most poses of its name is left out rather than merged. The naming is searched
    camera by camera (each takes its best naming given the others', until none changes) from the
    trackers' names (mapped through ``previous``) and, while some tracker name has no history (the
    first step, a new tracker), also from the `by_epipolar` groups named by their poses' vote; the
    better-scoring end wins. With more than `MAX_NAMES` names in a step only that second start is
    used (the groups named by vote, and a pose in no group under its own name when no group took it).

    Args:
        rig: the cameras (C); candidates: per view, its poses; names: per view, each pose's tracker name.
        max_distance_px, min_confidence: see `by_epipolar` (and the pair score above).
        previous: (view, tracker name) -> performer of the previous step's result, for continuity
            (`Fuser3D` keeps it); None or empty: none.

    Returns:
        name -> {view index: pose index}, as `by_name` returns (a name given in one camera only included).

    Raises:
        ValueError: ``candidates`` or ``names`` do not have one entry per camera, or a view's names do
            not match its poses.
    """
    views = len(rig)
    if len(candidates) != views or len(names) != views:
        raise ValueError(f"expected candidates and names for {views} cameras, got {len(candidates)} and {len(names)}")
    if any(len(n) != len(c) for n, c in zip(names, candidates)):
        raise ValueError("every pose needs a name: names and candidates differ in length for a view")
    previous = previous or {}
    labels = list(dict.fromkeys([previous.get((v, n), n) for v in range(views) for n in names[v]]
                                + [n for view in names for n in view]))  # fmt: skip
    if not labels:
        return {}
    dist = pairwise_distances(rig, candidates, min_confidence)
    if len(labels) > MAX_NAMES:
        voted = _voted(dist, candidates, names, max_distance_px, min_confidence)
        in_group = {(v, i) for person in voted.values() for v, i in person.items()}
        for v, labels_v in enumerate(names):
            for i, name in enumerate(labels_v):
                if (v, i) not in in_group and name not in voted:
                    voted[name] = {v: i}
        return voted
    index = {name: k for k, name in enumerate(labels)}
    counts = [len(poses) for poses in candidates]
    start = np.concatenate([[0], np.cumsum(counts)]).astype(np.intp)
    total = int(start[-1])
    # pair scores, with a row and column of zeros at index `total` for "no pose of that name"
    score = np.zeros((total + 1, total + 1))
    with np.errstate(invalid="ignore"):
        pair = 1.0 - dist / (PAIR_SCALE * max_distance_px)
    score[:total, :total] = np.where(np.isfinite(dist), np.clip(pair, -1.0, 1.0), 0.0)
    options, prior = [], []  # per view: (O, L) node per name (`total`: none) and (O,) the names' prior
    for v in range(views):
        local = _label_options(counts[v], len(labels))
        unary = np.zeros((counts[v] + 1, len(labels)))  # pose i given name l; the last row: no pose
        for i, own in enumerate(names[v]):
            unary[i, index[previous.get((v, own), own)]] = NAME_PRIOR
        prior.append(unary[local, np.arange(len(labels))].sum(axis=1))
        options.append(np.where(local >= 0, local + start[v], total))

    def settle(choice: list[int]) -> tuple[float, list[int]]:
        """Each camera in turn takes its best naming given the others' until none changes: (score, choice)."""
        chosen = np.array([options[v][choice[v]] for v in range(views)])  # (C, L) node per view and name
        for _ in range(2 * views):
            changed = False
            for v in range(views):
                others = np.delete(chosen, v, axis=0)
                gain = prior[v] + score[options[v][:, None, :], others[None, :, :]].sum(axis=(1, 2))
                best = int(np.argmax(gain))
                if gain[best] > gain[choice[v]] + 1e-9:
                    choice[v], chosen[v], changed = best, options[v][best], True
            if not changed:
                break
        pairs = score[chosen[:, None, :], chosen[None, :, :]].sum() / 2.0  # one view with itself: 0
        return float(pairs + sum(prior[v][choice[v]] for v in range(views))), choice

    def choice_of(named: Mapping[int, str]) -> list[int]:
        """The option index per view that gives node -> name as ``named`` (nodes not in it: none)."""
        out = []
        for v in range(views):
            want = np.full(len(labels), total)
            for node in range(start[v], start[v + 1]):
                if node in named and want[index[named[node]]] == total:  # a name once per view: the first
                    want[index[named[node]]] = node
            out.append(int(np.flatnonzero((options[v] == want).all(axis=1))[0]))
        return out

    starts = [{int(start[v]) + i: previous.get((v, n), n) for v in range(views) for i, n in enumerate(names[v])}]
    if any((v, n) not in previous for v in range(views) for n in names[v]):  # a tracker name without history
        by_vote = _voted(dist, candidates, names, max_distance_px, min_confidence)
        starts.append({int(start[v]) + i: name for name, person in by_vote.items() for v, i in person.items()})
    _, best = max((settle(choice_of(named)) for named in starts), key=lambda end: end[0])
    out: dict[str, dict[int, int]] = {}
    for v in range(views):
        for k, node in enumerate(options[v][best[v]]):
            if node < total:
                out.setdefault(labels[k], {})[v] = int(node - start[v])
    return out


def _voted(
    dist: np.ndarray, candidates: Sequence[Sequence[PoseView]], names: Sequence[Sequence[str]],
    max_distance_px: float, min_confidence: float,
) -> dict[str, dict[int, int]]:  # fmt: skip
    """The `by_epipolar` groups, each named by its poses' vote (weighted by their confident joints),
    surest group first, a name at most once (`by_epipolar_named`'s second start)."""
    groups = _groups(dist, candidates, max_distance_px)
    votes = []  # (weight, group index, name)
    for g, group in enumerate(groups):
        tally: dict[str, float] = {}
        for view, i in group.items():
            weight = float(np.count_nonzero(np.nan_to_num(candidates[view][i].confidence) >= min_confidence))
            tally[names[view][i]] = tally.get(names[view][i], 0.0) + weight
        votes += [(weight, g, name) for name, weight in tally.items()]
    out: dict[str, dict[int, int]] = {}
    named: set[int] = set()
    for _, g, name in sorted(votes, key=lambda item: -item[0]):
        if name not in out and g not in named:
            out[name] = dict(groups[g])
            named.add(g)
    return out
