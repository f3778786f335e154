"""Kalman filter of all joints at once, with real time steps, confidence-weighted measurements and lost joints.

Every joint has its own filter whose state is position and velocity (constant-velocity model, ``cv``)
or position, velocity and acceleration (``ca``), x and y together: ``[px, py, vx, vy(, ax, ay)]``.
The same filter runs on 3D joints (``axes=3``: x, y, z, e.g. triangulated metres, see
`stagepose.multiview.smoothing`); every axis has the same model and noise, so nothing else changes.
Between frames the state is predicted over the real time step dt from the capture timestamps; the
process noise Q is the continuous white-noise model (acceleration for cv, jerk for ca) integrated over
dt, so two short steps and one long step grow the uncertainty alike and a dropped frame is a longer
step, not a skipped one: no nominal frame rate is assumed anywhere.

The measurement noise R of a joint measured at confidence c is (measurement_std / c)^2 per axis:
a weak heatmap peak moves the estimate less. A joint below ``min_confidence`` (or NaN) is predicted
only. A joint not measured for longer than ``lost_after_s`` is lost: its filter is dropped, its last
position is held with quality 0, and when it is measured again the filter restarts at that
measurement with zero velocity rather than being dragged from the stale state.

All joints are stepped together in numpy (one batched predict and update per frame, no Python loop
over joints). The filters are the same as one ``filterpy.kalman.KalmanFilter`` per joint (the tests
check this to 1e-6): F and Q are ``kron(F1, I2)`` and ``kron(Q1, I2)`` of the one-axis matrices, H
picks the position and R is the same on both axes, so x and y never correlate and share one
covariance. The state is therefore kept per axis: means (K, order, A) with the A axes last and one
(K, order, order) covariance per joint, half the work of the full (K, A*order, A*order) form, which
``_states()`` rebuilds for the offline RTS smoother.
"""

from __future__ import annotations

import math

import numpy as np

from stagepose.show.filters.base import TIME_EPS_S, JointSmoother, SmoothedPose, check_inputs
from stagepose.show.filters.config import KalmanConfig
from stagepose.skeleton import NUM_JOINTS

_EYE2 = np.eye(2)


def model_order(config: KalmanConfig) -> int:
    """Number of state derivatives per axis: 2 (position, velocity) or 3 (+ acceleration)."""
    return 2 if config.model == "cv" else 3


def axis_transition(order: int, dt: float, q: float) -> tuple[np.ndarray, np.ndarray]:
    """One axis's state transition F1 and process noise Q1 over a step of ``dt`` seconds.

    Q1 is the continuous white-noise model integrated over dt, the same numbers as filterpy's
    ``Q_continuous_white_noise(dim=order, dt=dt, spectral_density=q)`` (written out here: filterpy's
    package import costs 1.5 s of scipy, and this runs on every frame).

    Args:
        order: 2 (cv: position, velocity) or 3 (ca: + acceleration).
        dt: time step in seconds (>= 0; 0 gives F1 = I and Q1 = 0).
        q: spectral density of the white noise on the highest derivative.

    Returns:
        F1, Q1: (order, order) each, for the state ``[p, v(, a)]`` of one axis.

    Raises:
        ValueError: an order other than 2 or 3.
    """
    if order == 2:
        f1 = np.array([[1.0, dt], [0.0, 1.0]])
        q1 = np.array([[dt**3 / 3.0, dt**2 / 2.0], [dt**2 / 2.0, dt]])
    elif order == 3:
        f1 = np.array([[1.0, dt, 0.5 * dt * dt], [0.0, 1.0, dt], [0.0, 0.0, 1.0]])
        q1 = np.array(
            [
                [dt**5 / 20.0, dt**4 / 8.0, dt**3 / 6.0],
                [dt**4 / 8.0, dt**3 / 3.0, dt**2 / 2.0],
                [dt**3 / 6.0, dt**2 / 2.0, dt],
            ]
        )
    else:
        raise ValueError(f"order must be 2 (cv) or 3 (ca), got {order}")
    return f1, q1 * q


def transition(order: int, dt: float, q: float, axes: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """State transition F and process noise Q of one joint (all axes) over a step of ``dt`` seconds.

    Args:
        order: 2 (cv) or 3 (ca).
        dt: time step in seconds (>= 0).
        q: spectral density of the white noise on the highest derivative.
        axes: coordinates per joint (2: image or floor, 3: world).

    Returns:
        F, Q: (axes*order, axes*order) each, for the state ``[px, py, vx, vy(, ax, ay)]`` (2 axes;
        ``[px, py, pz, vx, ...]`` for 3).
    """
    f1, q1 = axis_transition(order, dt, q)
    eye = _EYE2 if axes == 2 else np.eye(axes)
    return np.kron(f1, eye), np.kron(q1, eye)


class KalmanSmoother(JointSmoother):
    """Causal Kalman smoothing of one performer's joints; ``forecast()`` moves them to a send time.

    Example:
        >>> smoother = KalmanSmoother(KalmanConfig())
        >>> pose = smoother.update(frame.t_capture, joints_px, confidence)   # (16, 2), (16,)
        >>> ahead = smoother.forecast(time.time())                           # latency compensation

    With ``axes=3`` it takes and returns (K, 3) joints (positions, velocities) and is otherwise the same.
    """

    supports_forecast = True

    def __init__(self, config: KalmanConfig, num_joints: int = NUM_JOINTS, axes: int = 2) -> None:
        super().__init__(num_joints)
        if axes not in (2, 3):
            raise ValueError(f"axes must be 2 or 3, got {axes}")
        self.config = config
        self.axes = axes
        self._order = model_order(config)
        self._dim = axes * self._order
        self._q = config.q
        self._eye = np.eye(self._order)
        # Covariance of a freshly started joint, less its position variance (set from the confidence).
        p0 = np.full(self._order, config.initial_velocity_std**2)
        if self._order == 3:
            p0[2] = (config.initial_velocity_std / 0.1) ** 2
        self._p_start = np.diag(p0)
        self._reset_state()

    def _reset_state(self) -> None:
        k, n, a = self.num_joints, self._order, self.axes
        self._x = np.zeros((k, n, a))  # per joint: [p, v(, a)] x [x, y(, z)]; stale while not active
        self._p = np.zeros((k, n, n))  # per joint: the covariance shared by all axes
        self._active = np.zeros(k, dtype=bool)  # the joint's filter holds a live state
        self._t_measured = np.full(k, -math.inf)  # last time each joint was measured
        self._held = np.full((k, a), np.nan)  # last position, reported while lost
        self._started = np.zeros(k, dtype=bool)  # (re)initialised in the latest step (for RTS)

    def _step(self, t: float, z: np.ndarray, c: np.ndarray) -> SmoothedPose:
        cfg = self.config
        dt = t - self._t_state() if self._last is not None else 0.0
        confident = c >= cfg.min_confidence if cfg.min_confidence > 0 else c > 0
        valid = np.isfinite(z).all(axis=1) & confident
        # The others are lost: their filter is dropped.
        active = self._active & (t - self._t_measured <= cfg.lost_after_s + TIME_EPS_S)
        x, p = self._x, self._p

        # Predict over the real time step (a duplicate timestamp predicts nothing). Every joint is
        # predicted, which costs less than picking out the tracked ones: a joint not tracked has no
        # state anyone reads (its held position is reported) and is reinitialised when it restarts.
        if dt > 0:
            f1, q1 = axis_transition(self._order, dt, self._q)
            x = f1 @ x
            p = f1 @ p @ f1.T + q1

        # Update the tracked joints that were measured. The gain is exactly 0 elsewhere, which leaves
        # their mean and covariance bit for bit unchanged, so no joint needs to be picked out.
        update = valid & active
        if update.any():
            r = (cfg.measurement_std / np.where(update, c, 1.0)) ** 2  # (K,) per-axis variance R
            gain = p[:, :, 0] * (update / (p[:, 0, 0] + r))[:, None]  # (K, order)
            innovation = np.where(update[:, None], z - x[:, 0, :], 0.0)  # (K, 2); NaN where not measured
            x = x + gain[:, :, None] * innovation[:, None, :]
            # Joseph form (I - K H) P (I - K H)^T + K R K^T, as filterpy: stays symmetric and positive.
            a = self._eye - gain[:, :, None] * self._eye[0]
            p = a @ p @ a.transpose(0, 2, 1) + r[:, None, None] * (gain[:, :, None] * gain[:, None, :])

        # (Re)start the joints measured while not tracked, at the measurement with zero velocity.
        start = valid & ~active
        if start.any():
            x[start] = 0.0
            x[start, 0, :] = z[start]
            p[start] = self._p_start
            p[start, 0, 0] = (cfg.measurement_std / c[start]) ** 2

        self._x, self._p = x, p
        self._active = active | start
        self._started = start
        self._t_measured = np.where(valid, t, self._t_measured)
        pose = self._pose(t, valid, x, p)
        self._held = pose.position  # read-only, and only ever replaced
        return pose

    def update(self, t_capture: float, joints: np.ndarray, confidence: np.ndarray) -> SmoothedPose:
        """Add one frame's measurements: joints (K, axes), NaN where missing; see `JointSmoother.update`."""
        if self.axes == 2:
            return super().update(t_capture, joints, confidence)
        # The shared check validates the time and confidence; its joint-shape check is for (K, 2) joints.
        z = np.array(joints, dtype=np.float64)
        if z.shape != (self.num_joints, self.axes):
            raise ValueError(f"joints must have shape ({self.num_joints}, {self.axes}), got {z.shape}")
        t, _, c = check_inputs(t_capture, z[:, :2], confidence, self.num_joints)
        if self._last is not None and t < self._t_state():
            self.out_of_order += 1
            return self._last
        self._last = self._step(t, z, c)
        return self._last

    def _states(self) -> tuple[np.ndarray, np.ndarray]:
        """(K, A*order) means and (K, A*order, A*order) covariances in the ``[px, py, vx, vy(, ax, ay)]``
        layout of ``transition()`` (stale for joints not active)."""
        k, n, a = self.num_joints, self._order, self.axes
        eye = _EYE2 if a == 2 else np.eye(a)
        x = self._x.reshape(k, a * n)  # order-major, axis-minor: exactly [px, py, vx, vy, ...]
        p = (self._p[:, :, None, :, None] * eye[None, None, :, None, :]).reshape(k, a * n, a * n)
        return x.copy(), p

    def _pose(self, t: float, measured: np.ndarray, x: np.ndarray, p: np.ndarray) -> SmoothedPose:
        active = self._active
        position = np.where(active[:, None], x[:, 0, :], self._held)
        velocity = np.where(active[:, None], x[:, 1, :], 0.0)
        std = np.where(active, np.sqrt(np.maximum(p[:, 0, 0], 0.0)), np.inf)
        quality = np.minimum(self.config.measurement_std / np.maximum(std, 1e-12), 1.0)  # 0 where std is inf (lost)
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
        f1, q1 = axis_transition(self._order, dt, self._q)
        return self._pose(t0 + dt, np.zeros(self.num_joints, dtype=bool), f1 @ self._x, f1 @ self._p @ f1.T + q1)
