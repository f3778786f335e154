"""Triangulation on a synthetic scene with known answers: 4 cameras in a ring, a standing skeleton.

The 2D joints are the skeleton projected through the known cameras (lens distortion included) with
pixel noise; one camera is deliberately wrong. The triangulator must recover the skeleton within
TOL_M, leave the wrong view out, and never invent a joint it cannot see from two views.
"""

from __future__ import annotations

import numpy as np
import pytest

from stagepose.multiview.cameras import Rig
from stagepose.multiview.synthetic import observe, ring_rig, skeleton
from stagepose.multiview.triangulate import (
    TriangulationSettings,
    solve_dlt,
    triangulate,
    triangulate_normalised,
    triangulate_performers,
)
from stagepose.skeleton import NUM_JOINTS, Joint, flip_permutation

NOISE_PX = 1.5
TOL_M = 0.02  # 1.5 px of noise at 5 m with f = 1400 px is about 5 mm per view
WRONG_PX = 120.0  # the wrong camera's joints are this far off


@pytest.fixture(scope="module")
def rig() -> Rig:
    return ring_rig(4)


def _scene(rig: Rig, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = skeleton((0.4, -0.3), yaw_rad=0.5)
    pixels, conf = observe(rig, truth, NOISE_PX, rng)
    return truth, pixels, conf


def test_clean_views_recover_the_skeleton(rig) -> None:
    truth, pixels, conf = _scene(rig)
    result = triangulate(rig, pixels, conf)
    errors = np.linalg.norm(result.points - truth, axis=1)
    assert result.ok.all() and errors.max() < TOL_M, errors
    assert (result.num_views == 4).all()
    assert np.nanmax(result.reprojection_px) < 4 * NOISE_PX
    assert ((result.confidence > 0.6) & (result.confidence <= 0.8)).all()  # mean 2D confidence 0.8, small error


def test_one_wrong_view_is_left_out(rig) -> None:
    truth, pixels, conf = _scene(rig, seed=1)
    wrong = 2
    pixels[wrong] += np.array([WRONG_PX, -0.5 * WRONG_PX])  # e.g. the pose of someone else
    result = triangulate(rig, pixels, conf)
    errors = np.linalg.norm(result.points - truth, axis=1)
    assert result.ok.all() and errors.max() < TOL_M, errors
    assert not result.views[wrong].any()
    assert (result.view_error_px[wrong] > WRONG_PX / 2).all()  # reported, though not used
    # the same scene solved with all views at once (no rejection) is clearly worse
    everything = triangulate(rig, pixels, conf, TriangulationSettings(max_reprojection_px=1e6))
    assert np.linalg.norm(everything.points - truth, axis=1).max() > 3 * TOL_M


def test_left_and_right_swapped_in_one_view(rig) -> None:
    truth, pixels, conf = _scene(rig, seed=2)
    pixels[0] = pixels[0][flip_permutation()]  # the front camera swaps the performer's sides
    result = triangulate(rig, pixels, conf)
    errors = np.linalg.norm(result.points - truth, axis=1)
    # swapped joints that the front camera sees far apart are rejected there; centre-line joints agree
    wide = [Joint.r_wrist, Joint.l_wrist, Joint.r_elbow, Joint.l_elbow, Joint.r_shoulder, Joint.l_shoulder]
    assert not result.views[0, wide].any()
    assert errors.max() < 2.5 * TOL_M, errors


def test_a_joint_needs_two_good_views(rig) -> None:
    truth, pixels, conf = _scene(rig, seed=3)
    head, wrist, knee = Joint.head_top, Joint.r_wrist, Joint.l_knee
    conf[1:, head] = 0.05  # only one confident view
    pixels[:, wrist] = np.nan  # seen by nobody
    pixels[2:, knee] = np.nan  # two views that disagree
    pixels[1, knee] += 200.0
    result = triangulate(rig, pixels, conf)
    for joint in (head, wrist, knee):
        assert np.isnan(result.points[joint]).all() and result.confidence[joint] == 0.0
        assert not result.views[:, joint].any()
    others = np.setdiff1d(np.arange(NUM_JOINTS), [head, wrist, knee])
    assert np.linalg.norm(result.points[others] - truth[others], axis=1).max() < TOL_M


def test_two_views_agreeing_under_the_floor_are_not_believed(rig) -> None:
    """Two views can agree exactly on a wrong point (both put a foot on the treadmill's far end): a joint
    solved under ``min_height_m`` is dropped; one just under the floor (calibration slack) is kept."""
    truth, pixels, conf = _scene(rig, seed=5)
    deep, shallow = Joint.r_ankle, Joint.l_ankle
    wrong = {deep: truth[deep] - (0.0, 0.0, 1.5), shallow: truth[shallow] - (0.0, 0.0, 0.3)}
    for joint, point in wrong.items():
        pixels[:2, joint] = rig.project(point[None])[:2, 0]  # views 0 and 1 agree on it, exactly
        pixels[2:, joint] = np.nan  # the other two do not see it
    result = triangulate(rig, pixels, conf)
    assert np.isnan(result.points[deep]).all() and result.confidence[deep] == 0.0
    assert not result.views[:, deep].any()
    assert np.linalg.norm(result.points[shallow] - wrong[shallow]) < TOL_M  # -0.22 m: above the -0.5 m default
    others = np.setdiff1d(np.arange(NUM_JOINTS), [deep, shallow])
    assert np.linalg.norm(result.points[others] - truth[others], axis=1).max() < TOL_M
    unlimited = triangulate(rig, pixels, conf, TriangulationSettings(min_height_m=None))
    assert np.linalg.norm(unlimited.points[deep] - wrong[deep]) < TOL_M  # the views agree: nothing else tells
    with pytest.raises(ValueError, match="min_height_m"):
        TriangulationSettings(min_height_m=float("nan"))


def test_low_confidence_views_are_not_used(rig) -> None:
    truth, pixels, conf = _scene(rig, seed=4)
    conf[3] = 0.1
    pixels[3] += 500.0  # garbage, but below min_confidence: never looked at
    result = triangulate(rig, pixels, conf, TriangulationSettings(min_confidence=0.2))
    assert not result.views[3].any() and (result.num_views == 3).all()
    assert np.linalg.norm(result.points - truth, axis=1).max() < TOL_M


def test_confidence_weights_the_solve(rig) -> None:
    truth, pixels, conf = _scene(rig, seed=5)
    pixels[1] += 8.0  # a small bias, within the rejection threshold
    low, high = conf.copy(), conf.copy()
    low[1], high[1] = 0.25, 1.0
    err_low = np.linalg.norm(triangulate(rig, pixels, low).points - truth, axis=1).mean()
    err_high = np.linalg.norm(triangulate(rig, pixels, high).points - truth, axis=1).mean()
    assert err_low < err_high


def test_vectorised_solve_matches_one_point_at_a_time(rig) -> None:
    truth, pixels, conf = _scene(rig, seed=6)
    normalised = rig.normalise(pixels)
    together = solve_dlt(normalised, conf, rig.projections)
    one_by_one = np.array([solve_dlt(normalised[:, j : j + 1], conf[:, j : j + 1], rig.projections)[0]
                           for j in range(NUM_JOINTS)])  # fmt: skip
    np.testing.assert_allclose(together, one_by_one, atol=1e-12)
    # the stacked DLT rows solved by least squares with X = (x, y, z, 1) give the same point, and the
    # homogeneous (SVD) form of the DLT one within 0.1 mm
    j = 3
    rows = []
    for v in range(len(rig)):
        p, (x, y), w = rig.projections[v], normalised[v, j], conf[v, j]
        rows += [w * (x * p[2] - p[0]), w * (y * p[2] - p[1])]
    a = np.array(rows)
    np.testing.assert_allclose(together[j], np.linalg.lstsq(a[:, :3], -a[:, 3], rcond=None)[0], atol=1e-9)
    h = np.linalg.svd(a)[2][-1]
    np.testing.assert_allclose(together[j], h[:3] / h[3], atol=1e-4)


def test_performers_are_solved_together_and_split_back(rig) -> None:
    rng = np.random.default_rng(7)
    truths = {"alice": skeleton((0.0, 0.0)), "bob": skeleton((1.5, 1.0), yaw_rad=2.0)}
    poses = {name: observe(rig, x, NOISE_PX, rng) for name, x in truths.items()}
    result = triangulate_performers(rig, poses)
    assert list(result) == ["alice", "bob"]
    for name, truth in truths.items():
        assert result[name].points.shape == (NUM_JOINTS, 3)
        assert np.linalg.norm(result[name].points - truth, axis=1).max() < TOL_M
    assert triangulate_performers(rig, {}) == {}


def test_bad_inputs(rig) -> None:
    with pytest.raises(ValueError, match="shapes do not agree"):
        triangulate_normalised(np.zeros((4, 16, 2)), np.zeros((3, 16)), rig.projections, rig.focal_px)
    with pytest.raises(ValueError, match="pixels must have shape"):
        rig.normalise(np.zeros((3, 16, 2)))
    with pytest.raises(ValueError, match="min_views"):
        TriangulationSettings(min_views=1)
    with pytest.raises(ValueError, match="max_reprojection_px"):
        TriangulationSettings(max_reprojection_px=0.0)


def test_vectorised_undistortion_matches_opencv(rig) -> None:
    rng = np.random.default_rng(8)
    pixels = rng.uniform([0, 0], [1920, 1080], size=(len(rig), 50, 2))
    pixels[1, 7] = np.nan
    ours = rig.normalise(pixels)
    opencv = np.stack([cam.normalise(px) for cam, px in zip(rig.cameras, pixels)])
    np.testing.assert_allclose(ours, opencv, atol=1e-10)
    assert np.isnan(ours[1, 7]).all()
    # and projecting back gives the pixels
    cam = rig.cameras[0]
    world = np.column_stack([ours[0], np.ones(50)]) * 3.0  # 3 m in front of camera 0
    world = (world - cam.t) @ cam.R
    np.testing.assert_allclose(cam.project(world), pixels[0], atol=1e-6)


def test_a_view_with_left_and_right_swapped_is_read_the_other_way(rig) -> None:
    truth, pixels, conf = _scene(rig, seed=9)
    flip = flip_permutation()
    pixels[0], conf[0] = pixels[0][flip], conf[0][flip]  # the front camera reads the whole pose mirrored
    result = triangulate_performers(rig, {"p": (pixels, conf)})["p"]
    assert result.swapped.tolist() == [True, False, False, False]
    assert (result.num_views == 4).all()  # every joint of the swapped view is used again
    assert np.linalg.norm(result.points - truth, axis=1).max() < TOL_M
    plain = triangulate_performers(rig, {"p": (pixels, conf)}, TriangulationSettings(fix_left_right=False))["p"]
    assert not plain.swapped.any() and plain.num_views.sum() < result.num_views.sum()


def test_bench_triangulate_prints_json(capsys) -> None:
    import json

    from stagepose.cli import main

    assert main(["bench", "triangulate", "--frames", "20", "--warmup", "2"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["cameras"] == 4 and report["performers"] == 2 and report["stages_ms"]["total"]["count"] == 20
    assert report["mean_error_m"] < TOL_M  # the timed work is the real work
    assert main(["bench", "triangulate", "--cameras", "1"]) == 2
    assert "need >= 2 cameras" in capsys.readouterr().err
