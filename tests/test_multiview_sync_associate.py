"""Matching cameras in time (capture timestamps) and poses across cameras (names, epipolar geometry)."""

from __future__ import annotations

import numpy as np
import pytest

from stagepose.multiview.associate import (
    PoseView,
    by_epipolar,
    by_name,
    epipolar_distance,
    pairwise_distances,
    stack_person,
)
from stagepose.multiview.synthetic import observe, ring_rig, skeleton
from stagepose.multiview.timesync import frame_period, group_latest, match_streams

PERIOD = 1 / 30


def test_streams_match_by_nearest_time_within_half_a_frame() -> None:
    rng = np.random.default_rng(0)
    t0 = 1.7e9
    ref = [(t0 + i * PERIOD + rng.normal(0, 0.001), f"a{i}") for i in range(30)]
    late = [(t0 + i * PERIOD + 0.008, f"b{i}") for i in range(30) if i != 10]  # 8 ms late, frame 10 dropped
    stray = [(t0 + 31 * PERIOD, "c31"), (t0 + 7 * PERIOD + 0.003, "c7")]  # 31: after the reference's end
    report = match_streams({"a": ref, "b": late, "c": stray}, period_s=PERIOD)
    assert report.reference == "a" and len(report.groups) == 30
    assert report.groups[3].items == {"a": "a3", "b": "b3"} and report.groups[3].missing == ("c",)
    assert report.groups[10].missing == ("b", "c")
    assert report.groups[7].items["c"] == "c7"
    assert report.unmatched == {"b": 0, "c": 1}
    skew = report.skew_summary()
    assert 4.0 < skew["median_ms"] < 12.0 and skew["max_ms"] < PERIOD / 2 * 1e3 + 3.0
    assert abs(report.period_s - PERIOD) < 1e-9


def test_each_frame_joins_one_group_the_nearest() -> None:
    ref = [(0.0, "r0"), (1.0, "r1"), (2.0, "r2")]
    other = [(0.9, "x"), (1.05, "y")]  # both nearest to r1: the nearer one wins, the other is left over
    report = match_streams({"ref": ref, "other": other})
    assert report.period_s == pytest.approx(1.0)
    assert report.groups[1].items["other"] == "y" and report.unmatched == {"other": 1}
    assert report.groups[1].skew_s == pytest.approx(0.05)


def test_match_streams_errors() -> None:
    with pytest.raises(ValueError, match="no camera streams"):
        match_streams({})
    with pytest.raises(ValueError, match="reference camera"):
        match_streams({"a": [(0.0, 1), (1.0, 2)]}, reference="b")
    with pytest.raises(ValueError, match="two distinct"):
        frame_period([3.0, 3.0])


def test_group_latest_leaves_a_late_camera_out() -> None:
    group = group_latest({"a": (10.000, 1), "b": (9.990, 2), "c": (9.950, 3)}, period_s=PERIOD)
    assert group.items == {"a": 1, "b": 2} and group.missing == ("c",)
    assert group.t == 10.0 and group.skew_s == pytest.approx(0.010)
    with pytest.raises(ValueError, match="period_s"):
        group_latest({"a": (1.0, 1)}, period_s=0.0)


@pytest.fixture(scope="module")
def crowd() -> tuple[object, list[np.ndarray], list[list[PoseView]], list[np.ndarray]]:
    """Three people seen by 4 cameras, each camera listing its poses in its own order, plus a bystander
    seen by camera 0 only."""
    rig = ring_rig(4)
    rng = np.random.default_rng(3)
    people = [skeleton((0.0, 0.0)), skeleton((1.2, 0.5), 1.0), skeleton((-1.0, 1.0), 2.0)]
    seen = [observe(rig, x, 2.0, rng) for x in people]
    order = [rng.permutation(3) for _ in range(4)]
    candidates = [[PoseView(seen[p][0][v], seen[p][1][v]) for p in order[v]] for v in range(4)]
    bystander = observe(rig, skeleton((3.5, -3.0)), 2.0, rng)
    candidates[0].append(PoseView(bystander[0][0], bystander[1][0]))
    return rig, people, candidates, order


def test_epipolar_grouping_finds_each_person(crowd) -> None:
    rig, _, candidates, order = crowd
    persons = by_epipolar(rig, candidates)
    assert len(persons) == 3
    for person in persons:
        assert len(person) == 4  # seen by every camera
        assert len({int(order[v][i]) for v, i in person.items()}) == 1  # one person, not a mix
    assert all(3 not in person.values() or person.get(0) != 3 for person in persons)  # bystander alone


def test_epipolar_distance_is_small_for_the_same_person_only(crowd) -> None:
    rig, _, candidates, order = crowd
    same = list(order[1]).index(order[0][0])
    other = (same + 1) % 3
    assert epipolar_distance(rig, 0, 1, candidates[0][0], candidates[1][same]) < 6.0
    assert epipolar_distance(rig, 0, 1, candidates[0][0], candidates[1][other]) > 40.0
    dist = pairwise_distances(rig, candidates)
    assert dist.shape == (13, 13) and np.isinf(np.diag(dist)).all()
    np.testing.assert_allclose(dist, dist.T)
    one = epipolar_distance(rig, 0, 1, candidates[0][0], candidates[1][same])
    assert dist[0, 4 + same] == pytest.approx(one)


def test_too_few_shared_joints_never_match(crowd) -> None:
    rig, _, candidates, _ = crowd
    weak = PoseView(candidates[1][0].joints, np.where(np.arange(16) < 3, 0.9, 0.0))
    assert epipolar_distance(rig, 0, 1, candidates[0][0], weak) == float("inf")
    with pytest.raises(ValueError, match="candidates for 4 cameras"):
        by_epipolar(rig, candidates[:3])


def test_by_name_and_stacking(crowd) -> None:
    _, _, candidates, _ = crowd
    persons = by_name([["alice", "bob"], ["bob"], [], ["alice"]])
    assert persons == {"alice": {0: 0, 3: 0}, "bob": {0: 1, 1: 0}}
    with pytest.raises(ValueError, match="two poses named"):
        by_name([["alice", "alice"]])
    joints, conf = stack_person({0: 1, 2: 0}, candidates, 16)
    assert joints.shape == (4, 16, 2) and np.isnan(joints[1]).all() and (conf[3] == 0).all()
    np.testing.assert_array_equal(joints[2], candidates[2][0].joints)
