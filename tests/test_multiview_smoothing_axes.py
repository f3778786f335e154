"""3D Kalman smoothing in metres (real dt, dropouts, forecast) and the receivers' axis conventions."""

from __future__ import annotations

import numpy as np
import pytest

from stagepose.multiview.axes import TOUCHDESIGNER, UNREAL, convert, to_touchdesigner, to_unreal
from stagepose.multiview.smoothing import KALMAN_3D, make_smoother_3d
from stagepose.show.filters import KalmanConfig, KalmanSmoother

T0 = 1.7e9
TOL_M = 0.01


def _walk(n: int, rng: np.random.Generator, fps: float = 60.0) -> tuple[np.ndarray, np.ndarray]:
    """Capture times with jitter and 16 joints moving at 1.2 m/s along x, 2 m/s up-and-down for one."""
    t = T0 + np.arange(n) / fps + rng.normal(0, 0.002, n)
    t = np.sort(t)
    base = np.column_stack([np.zeros(16), np.linspace(-0.2, 0.2, 16), np.linspace(0.1, 1.7, 16)])
    velocity = np.tile([1.2, 0.0, 0.0], (16, 1))
    velocity[3] = [0.0, 0.0, 0.5]
    truth = base[None] + (t - T0)[:, None, None] * velocity[None]
    return t, truth


def test_3d_kalman_smooths_noise_without_lag() -> None:
    rng = np.random.default_rng(0)
    t, truth = _walk(240, rng)
    noisy = truth + rng.normal(0, 0.02, truth.shape)
    smoother = make_smoother_3d()
    out = np.array([smoother.update(ti, z, np.full(16, 0.8)).position for ti, z in zip(t, noisy)])
    raw_err = np.linalg.norm(noisy[60:] - truth[60:], axis=-1).mean()
    err = np.linalg.norm(out[60:] - truth[60:], axis=-1).mean()
    assert err < 0.6 * raw_err, (err, raw_err)
    bias = (out[60:] - truth[60:]).mean(axis=(0, 1))  # lag would show as a bias against the motion
    assert np.abs(bias).max() < TOL_M
    assert smoother.last.velocity.shape == (16, 3)
    np.testing.assert_allclose(smoother.last.velocity[0], [1.2, 0.0, 0.0], atol=0.15)


def test_dropouts_are_predicted_with_falling_confidence_then_lost() -> None:
    rng = np.random.default_rng(1)
    t, truth = _walk(120, rng)
    smoother = make_smoother_3d()
    for ti, z in zip(t[:60], truth[:60]):
        smoother.update(ti, z, np.full(16, 0.9))
    measured = smoother.last.quality[5]
    conf = np.full(16, 0.9)
    conf[5] = 0.0  # not triangulated (NaN, confidence 0)
    qualities = []
    for ti, z in zip(t[60:80], truth[60:80]):
        z = z.copy()
        z[5] = np.nan
        pose = smoother.update(ti, z, conf)
        qualities.append(pose.quality[5])
        assert not pose.measured[5]
    assert np.all(np.diff(qualities) <= 0) and qualities[-1] < 0.5 * measured  # decays while predicted
    # predicted along its velocity, not held in place
    assert np.linalg.norm(pose.position[5] - truth[79, 5]) < 0.05
    later = smoother.update(t[79] + KALMAN_3D.lost_after_s + 0.01, truth[79], conf)
    assert later.lost[5] and later.quality[5] == 0.0 and np.isfinite(later.position[5]).all()


def test_dt_comes_from_the_capture_times() -> None:
    """Two updates 100 ms apart predict the same as ten 10 ms apart (no assumed frame rate)."""
    start = np.zeros((16, 3))
    moved = np.tile([0.1, 0.0, 0.0], (16, 1))
    a, b = make_smoother_3d(), make_smoother_3d()
    for smoother in (a, b):
        smoother.update(T0, start, np.ones(16))
        smoother.update(T0 + 0.1, moved, np.ones(16))
    empty = np.full((16, 3), np.nan)
    a.update(T0 + 0.3, empty, np.zeros(16))
    for k in range(1, 21):
        b.update(T0 + 0.1 + 0.01 * k, empty, np.zeros(16))
    np.testing.assert_allclose(a.last.position, b.last.position, atol=1e-9)
    np.testing.assert_allclose(a.last.std, b.last.std, rtol=1e-9)


def test_forecast_moves_to_the_send_time() -> None:
    rng = np.random.default_rng(2)
    t, truth = _walk(120, rng)
    smoother = make_smoother_3d()
    for ti, z in zip(t, truth):
        smoother.update(ti, z, np.full(16, 0.9))
    ahead = smoother.forecast(t[-1] + 0.05)
    np.testing.assert_allclose(ahead.position[0] - smoother.last.position[0], [0.06, 0.0, 0.0], atol=0.01)
    assert ahead.t == pytest.approx(t[-1] + 0.05)
    capped = smoother.forecast(t[-1] + 5.0)
    assert capped.t == pytest.approx(t[-1] + KALMAN_3D.max_forecast_s)


def test_3d_filter_is_the_2d_filter_per_axis() -> None:
    """The x and y of a 3D filter equal a 2D filter fed the same x and y (axes are independent)."""
    rng = np.random.default_rng(3)
    t, truth = _walk(50, rng)
    noisy = truth + rng.normal(0, 0.02, truth.shape)
    conf = rng.uniform(0.1, 1.0, (50, 16))
    three, two = make_smoother_3d(), KalmanSmoother(KALMAN_3D)
    for ti, z, c in zip(t, noisy, conf):
        p3 = three.update(ti, z, c)
        p2 = two.update(ti, z[:, :2], c)
    np.testing.assert_allclose(p3.position[:, :2], p2.position, atol=1e-12)
    np.testing.assert_allclose(p3.quality, p2.quality, atol=1e-12)
    with pytest.raises(ValueError, match=r"shape \(16, 3\)"):
        three.update(t[-1] + 1, np.zeros((16, 2)), np.ones(16))
    with pytest.raises(ValueError, match="axes"):
        KalmanSmoother(KalmanConfig(), axes=4)


def test_metre_tuning_is_the_pixel_tuning_scaled() -> None:
    assert KALMAN_3D.measurement_std == pytest.approx(KalmanConfig().measurement_std * 0.004)
    assert make_smoother_3d().config is KALMAN_3D


def test_touchdesigner_axes() -> None:
    up, upstage, stage_left = np.array([0, 0, 1.0]), np.array([0, 1.0, 0]), np.array([1.0, 0, 0])
    np.testing.assert_allclose(to_touchdesigner(up), [0, 1, 0])  # TD is Y up
    np.testing.assert_allclose(to_touchdesigner(upstage), [0, 0, -1])  # away from TD's default camera
    np.testing.assert_allclose(to_touchdesigner(stage_left), [1, 0, 0])
    assert np.linalg.det(TOUCHDESIGNER) == pytest.approx(1.0)  # a rotation: still right-handed, metres


def test_unreal_axes() -> None:
    point = np.array([1.0, 2.0, 0.5])
    np.testing.assert_allclose(to_unreal(point), [100.0, -200.0, 50.0])  # centimetres, Z up
    assert np.linalg.det(UNREAL / 100.0) == pytest.approx(-1.0)  # one mirror: left-handed
    # a right-handed triple in the world (x, y, x cross y = z) is left-handed in Unreal
    x, y = to_unreal(np.array([1.0, 0, 0])), to_unreal(np.array([0, 1.0, 0]))
    assert np.dot(np.cross(x, y), to_unreal(np.array([0, 0, 1.0]))) < 0


def test_convert_keeps_shapes_and_nan() -> None:
    pose = np.random.default_rng(4).normal(size=(2, 16, 3))
    pose[0, 3] = np.nan
    for convention in ("world", "touchdesigner", "unreal"):
        out = convert(pose, convention)
        assert out.shape == pose.shape and np.isnan(out[0, 3]).all() and np.isfinite(out[1]).all()
    assert convert(pose, "world") is not pose
    with pytest.raises(ValueError, match="unknown axis convention"):
        convert(pose, "blender")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="last axis of 3"):
        to_unreal(np.zeros((16, 2)))
