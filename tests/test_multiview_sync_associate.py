"""Matching cameras in time (capture timestamps) and poses across cameras (names, epipolar geometry)."""

from __future__ import annotations

import numpy as np
import pytest

from stagepose.multiview.associate import (
    PoseView,
    by_epipolar,
    by_epipolar_named,
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


# --- named association: the trackers' names judged by the geometry -------------------------------------------

NAMES = ("alice", "bob", "carol")


def _names(order: list[np.ndarray]) -> list[list[str]]:
    """Each camera's tracker names when they are right (camera 0's fourth pose, the bystander: dave)."""
    return [[NAMES[p] for p in view] + (["dave"] if v == 0 else []) for v, view in enumerate(order)]


def _node(order: list[np.ndarray], view: int, person: int) -> int:
    """Row of `pairwise_distances` of ``person`` in ``view`` (camera 0 lists 4 poses, the others 3)."""
    return (0, 4, 7, 10)[view] + list(order[view]).index(person)


def _is_truth(people: dict[str, dict[int, int]], order: list[np.ndarray], views: range = range(4)) -> bool:
    """Every name holds that person's pose in every view of ``views`` and nothing else."""
    return all(people.get(NAMES[p], {}) == {v: list(order[v]).index(p) for v in views} for p in range(3))


def test_named_association_outvotes_a_camera_whose_tracker_swapped(crowd: tuple) -> None:
    rig, _, candidates, order = crowd
    names = _names(order)
    assert _is_truth(by_epipolar_named(rig, candidates, names), order)
    swapped = [list(n) for n in names]
    swapped[2][0], swapped[2][1] = swapped[2][1], swapped[2][0]  # camera 2's tracker swapped two people
    people = by_epipolar_named(rig, candidates, swapped)
    assert _is_truth(people, order) and people["dave"] == {0: 3}  # by_name would merge two people twice
    everyone_else = [[NAMES[(p + 1) % 3] for p in view] for view in order]  # all four cameras agree on wrong names
    everyone_else[0].append("dave")
    assert not _is_truth(by_epipolar_named(rig, candidates, everyone_else), order)  # the names say who


def test_named_association_ignores_arbitrary_first_names(crowd: tuple) -> None:
    """Without zones each camera's trackers name whoever they found first: the groups are still people."""
    rig, _, candidates, order = crowd
    rng = np.random.default_rng(5)
    people3 = [list(candidates[0][:3]), *candidates[1:]]  # camera 0's bystander is the fourth: left out here
    for _ in range(10):
        names = [list(rng.permutation(NAMES)) for _ in range(4)]
        people = by_epipolar_named(rig, people3, names)
        assert sorted(people) == sorted(NAMES) and all(len(person) == 4 for person in people.values())
        assert all(len({int(order[v][i]) for v, i in person.items()}) == 1 for person in people.values())


def test_named_association_keeps_a_pose_a_little_off_and_leaves_out_a_bystander(crowd: tuple) -> None:
    rig, _, candidates, order = crowd
    names = _names(order)
    off = [list(poses) for poses in candidates]
    alice = list(order[1]).index(0)
    pose = candidates[1][alice]
    off[1][alice] = PoseView(pose.joints + np.array([0.0, 70.0]), pose.confidence)  # 70 px down: ~70 px epipolar
    dist = pairwise_distances(rig, off)
    to_alice = [dist[_node(order, 1, 0), _node(order, v, 0)] for v in (0, 2, 3)]
    assert max(to_alice) > 60.0 and np.median(to_alice) > 60.0  # 68, 67 and 2 px (camera 3 faces camera 1)
    alice_everywhere = {v: list(order[v]).index(0) for v in range(4)}
    assert alice_everywhere not in by_epipolar(rig, off)  # split in two (over the 40 px limit for two pairs)
    assert _is_truth(by_epipolar_named(rig, off, names), order)  # one alice: her poses agree more than not
    # camera 0's alice tracker follows a bystander instead (camera 0 then has no pose of alice); in camera 1
    # the bystander lies 90 px from alice's epipolar lines, in cameras 2 and 3 over 500 px
    bystander = observe(rig, skeleton((-2.5, -1.5), 0.5), 2.0, np.random.default_rng(11))
    lost = [list(poses) for poses in candidates]
    others = [pose for p, pose in zip(order[0], candidates[0]) if p != 0]
    lost[0] = [*others, PoseView(bystander[0][0], bystander[1][0])]
    lost_names = [list(n) for n in names]
    lost_names[0] = [NAMES[p] for p in order[0] if p != 0] + ["alice"]
    people = by_epipolar_named(rig, lost, lost_names)
    assert people["alice"] == {v: list(order[v]).index(0) for v in (1, 2, 3)}  # the bystander left out
    assert people["bob"][0] == lost_names[0].index("bob") and people["carol"][0] == lost_names[0].index("carol")


def test_continuity_keeps_a_relabelled_camera_while_the_geometry_cannot_tell() -> None:
    """Two people one behind the other on the baseline of cameras 0 and 2: alone, those two cameras
    cannot tell which pose is whom (every joint pair lies on one epipolar plane)."""
    rig = ring_rig(4)
    rng = np.random.default_rng(7)
    seen = [observe(rig, skeleton(at), 1.0, rng) for at in ((0.0, -1.0), (0.0, 1.2))]
    candidates = [[PoseView(seen[p][0][v], seen[p][1][v]) for p in (0, 1)] for v in range(4)]
    names = [["alice", "bob"], ["alice", "bob"], ["bob", "alice"], ["alice", "bob"]]  # camera 2 swapped
    truth = {"alice": {v: 0 for v in range(4)}, "bob": {v: 1 for v in range(4)}}
    people = by_epipolar_named(rig, candidates, names)  # step 1: all four cameras, the geometry decides
    assert people == truth
    previous = {(v, names[v][i]): name for name, person in people.items() for v, i in person.items()}
    assert previous[2, "alice"] == "bob" and previous[2, "bob"] == "alice"
    dist = pairwise_distances(rig, candidates)
    assert dist[0, 5] < 5.0 and dist[1, 4] < 5.0  # camera 0 and 2: the crossed pairs agree as well
    two = [candidates[0], [], candidates[2], []]  # step 2: only cameras 0 and 2 see them
    two_names = [names[0], [], names[2], []]
    pair = {"alice": {0: 0, 2: 0}, "bob": {0: 1, 2: 1}}
    assert by_epipolar_named(rig, two, two_names, previous=previous) == pair  # as the step before
    assert by_epipolar_named(rig, two, two_names) != pair  # without it, camera 2's tracker names win


def test_named_association_of_a_large_cast_falls_back_to_voted_groups(crowd: tuple, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import stagepose.multiview.associate as associate

    rig, _, candidates, order = crowd
    monkeypatch.setattr(associate, "MAX_NAMES", 3)  # alice, bob, carol and dave: too many to search
    assert _is_truth(by_epipolar_named(rig, candidates, _names(order)), order)


def test_named_association_input_errors(crowd: tuple) -> None:
    rig, _, candidates, order = crowd
    with pytest.raises(ValueError, match="for 4 cameras"):
        by_epipolar_named(rig, candidates[:3], _names(order)[:3])
    with pytest.raises(ValueError, match="every pose needs a name"):
        by_epipolar_named(rig, candidates, [_names(order)[0][:3], *_names(order)[1:]])  # not the bystander's
    assert by_epipolar_named(rig, [[], [], [], []], [[], [], [], []]) == {}
