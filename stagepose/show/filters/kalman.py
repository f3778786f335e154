"""Per-joint Kalman filter with real time steps, confidence-weighted measurements and lost joints.

Each joint has its own ``filterpy.kalman.KalmanFilter`` whose state is position and velocity
(constant-velocity model, ``cv``) or position, velocity and acceleration (``ca``), x and y together:
``[px, py, vx, vy(, ax, ay)]``. Between frames the state is predicted over the real time step dt
from the capture timestamps; the process noise Q is the continuous white-noise model (acceleration
for cv, jerk for ca) integrated over dt, so two short steps and one long step grow the uncertainty
alike and a dropped frame is a longer step, not a skipped one (trap T9: no nominal frame rate).

The measurement noise R of a joint measured at confidence c is (measurement_std / c)^2 per axis:
a weak heatmap peak moves the estimate less. A joint below ``min_confidence`` (or NaN) is predicted
only. A joint not measured for longer than ``lost_after_s`` is lost: its filter is dropped, its last
position is held with quality 0, and when it is measured again the filter restarts at that
measurement with zero velocity rather than being dragged from the stale state.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from stagepose.show.filters.base import JointSmoother, SmoothedPose
from stagepose.show.filters.config import KalmanConfig
from stagepose.skeleton import NUM_JOINTS

if TYPE_CHECKING:
    from filterpy.kalman import KalmanFilter

# filterpy is imported where it is used: its package imports scipy.stats (1.5 s on a 2-core CPU), which
# `stagepose check` and `--help` (through the show config's smoothing section) must not pay for.

_EYE2 = np.eye(2)


def model_order(config: KalmanConfig) -> int:
    """Number of state derivatives per axis: 2 (position, velocity) or 3 (+ acceleration)."""
    return 2 if config.model == "cv" else 3


def transition(order: int, dt: float, q: float) -> tuple[np.ndarray, np.ndarray]:
    """State transition F and process noise Q over a step of ``dt`` seconds.

    Args:
        order: 2 (cv) or 3 (ca).
        dt: time step in seconds (>= 0).
        q: spectral density of the white noise on the highest derivative.

    Returns:
        F, Q: (2*order, 2*order) each, for the state ``[px, py, vx, vy(, ax, ay)]``.
    """
    f1 = np.eye(order)
    f1[0, 1] = dt
    if order == 3:
        f1[1, 2] = dt
        f1[0, 2] = 0.5 * dt * dt
    if dt > 0:
        from filterpy.common import Q_continuous_white_noise

        q1 = Q_continuous_white_noise(dim=order, dt=dt, spectral_density=q)
    else:
        q1 = np.zeros((order, order))
    return np.kron(f1, _EYE2), np.kron(q1, _EYE2)


class KalmanSmoother(JointSmoother):
    """Causal Kalman smoothing of one performer's joints; ``forecast()`` moves them to a send time.

    Example:
        >>> smoother = KalmanSmoother(KalmanConfig())
        >>> pose = smoother.update(frame.t_capture, joints_px, confidence)   # (16, 2), (16,)
        >>> ahead = smoother.forecast(time.time())                           # latency compensation
    """

    supports_forecast = True

    def __init__(self, config: KalmanConfig, num_joints: int = NUM_JOINTS) -> None:
        super().__init__(num_joints)
        self.config = config
        self._order = model_order(config)
        self._dim = 2 * self._order
        self._q = config.q
        self._filters = [self._new_filter() for _ in range(num_joints)]
        self._reset_state()

    def _new_filter(self) -> KalmanFilter:
        from filterpy.kalman import KalmanFilter

        kf = KalmanFilter(dim_x=self._dim, dim_z=2)
        kf.H = np.zeros((2, self._dim))
        kf.H[0, 0] = kf.H[1, 1] = 1.0
        return kf

    def _reset_state(self) -> None:
        k = self.num_joints
        self._active = np.zeros(k, dtype=bool)  # the joint's filter holds a live state
        self._t_measured = np.full(k, -math.inf)  # last time each joint was measured
        self._held = np.full((k, 2), np.nan)  # last position, reported while lost
        self._started = np.zeros(k, dtype=bool)  # (re)initialised in the latest step (for RTS)
        self._F, self._Q = transition(self._order, 0.0, self._q)

    def _measurement_var(self, confidence: float) -> float:
        return (self.config.measurement_std / confidence) ** 2

    def _start(self, j: int, z: np.ndarray, confidence: float) -> None:
        kf = self._filters[j]
        x = np.zeros((self._dim, 1))
        x[0:2, 0] = z
        p = np.full(self._dim, self.config.initial_velocity_std**2)
        p[0:2] = self._measurement_var(confidence)
        if self._order == 3:
            p[4:6] = (self.config.initial_velocity_std / 0.1) ** 2
        kf.x = x
        kf.P = np.diag(p)

    def _step(self, t: float, z: np.ndarray, c: np.ndarray) -> SmoothedPose:
        cfg = self.config
        dt = t - self._t_state() if self._last is not None else 0.0
        valid = np.isfinite(z).all(axis=1) & (c >= cfg.min_confidence) & (c > 0)
        expired = self._active & (t - self._t_measured > cfg.lost_after_s)
        self._active &= ~expired  # lost: drop the filter; _held keeps the last estimate
        self._F, self._Q = transition(self._order, dt, self._q)
        self._started[:] = False
        for j in range(self.num_joints):
            kf = self._filters[j]
            if self._active[j]:
                if dt > 0:
                    kf.predict(F=self._F, Q=self._Q)
                if valid[j]:
                    kf.update(z[j], R=self._measurement_var(c[j]) * _EYE2)
            elif valid[j]:
                self._start(j, z[j], c[j])
                self._active[j] = True
                self._started[j] = True
        self._t_measured[valid] = t
        pose = self._pose(t, valid, self._states())
        self._held = pose.position.copy()
        return pose

    def _states(self) -> tuple[np.ndarray, np.ndarray]:
        """(K, dim) means and (K, dim, dim) covariances of all filters (stale for inactive joints)."""
        x = np.stack([kf.x[:, 0] for kf in self._filters])
        p = np.stack([kf.P for kf in self._filters])
        return x, p

    def _pose(self, t: float, measured: np.ndarray, states: tuple[np.ndarray, np.ndarray]) -> SmoothedPose:
        x, p = states
        active = self._active
        position = np.where(active[:, None], x[:, 0:2], self._held)
        velocity = np.where(active[:, None], x[:, 2:4], 0.0)
        var = 0.5 * (p[:, 0, 0] + p[:, 1, 1])
        std = np.where(active, np.sqrt(np.maximum(var, 0.0)), np.inf)
        quality = np.where(active, np.clip(self.config.measurement_std / np.maximum(std, 1e-12), 0.0, 1.0), 0.0)
        return SmoothedPose(
            t=t,
            position=position,
            velocity=velocity,
            quality=quality,
            std=std,
            measured=measured & active,
            lost=~active,
        )

    def forecast(self, t_send: float) -> SmoothedPose:
        """Predict every tracked joint to ``t_send`` without changing the filters.

        The horizon is clipped to ``0 .. max_forecast_s``; lost joints stay where they are.

        Args:
            t_send: the time the pose will be sent (Unix seconds, same clock as ``t_capture``).

        Returns:
            The forecast pose; ``t`` is the time actually forecast to, ``measured`` is all False.

        Raises:
            ValueError: before the first update, or a non-finite ``t_send``.
        """
        if self._last is None:
            raise ValueError("forecast() before the first update()")
        if not math.isfinite(t_send):
            raise ValueError(f"t_send must be a finite time in seconds, got {t_send!r}")
        t0 = self._last.t
        dt = min(max(t_send - t0, 0.0), self.config.max_forecast_s)
        if dt == 0.0:
            return self._last
        f, q = transition(self._order, dt, self._q)
        x, p = self._states()
        x = x @ f.T
        p = f @ p @ f.T + q
        return self._pose(t0 + dt, np.zeros(self.num_joints, dtype=bool), (x, p))
