"""One Euro filter per joint (Casiez, Roussel and Vogel, "1€ Filter", CHI 2012), on real timestamps.

An adaptive low-pass filter: the cutoff frequency rises with the joint's filtered speed, so a still
performer is smoothed hard (little jitter) and a fast gesture follows closely (little lag). Unlike
common ports, the smoothing factor of every step comes from the real time since the joint's
previous measurement, not from a fixed frame rate. The speed is the norm of the 2-D velocity, so x and y of a
joint share one cutoff and a diagonal move is not smoothed differently from a horizontal one.

A joint below ``min_confidence`` (or NaN) holds its last value while its quality fades linearly to 0;
after ``lost_after_s`` it is lost and restarts fresh when measured again.
"""

from __future__ import annotations

import math

import numpy as np

from stagepose.show.filters.base import TIME_EPS_S, JointSmoother, SmoothedPose
from stagepose.show.filters.config import OneEuroConfig
from stagepose.skeleton import NUM_JOINTS


def smoothing_factor(cutoff_hz: np.ndarray | float, dt: np.ndarray | float) -> np.ndarray:
    """Exponential smoothing factor of a first-order low-pass with ``cutoff_hz`` over ``dt`` seconds."""
    tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff_hz, dtype=np.float64))
    return 1.0 / (1.0 + tau / np.asarray(dt, dtype=np.float64))


class OneEuroSmoother(JointSmoother):
    """Vectorised One Euro filtering of one performer's joints (no prediction: ``forecast`` = latest)."""

    def __init__(self, config: OneEuroConfig, num_joints: int = NUM_JOINTS) -> None:
        super().__init__(num_joints)
        self.config = config
        self._reset_state()

    def _reset_state(self) -> None:
        k = self.num_joints
        self._x = np.full((k, 2), np.nan)  # filtered position (held while unmeasured or lost)
        self._dx = np.zeros((k, 2))  # filtered velocity
        self._t_measured = np.full(k, -math.inf)
        self._conf = np.zeros(k)  # confidence of the last measurement
        self._active = np.zeros(k, dtype=bool)

    def _step(self, t: float, z: np.ndarray, c: np.ndarray) -> SmoothedPose:
        cfg = self.config
        valid = np.isfinite(z).all(axis=1) & (c >= cfg.min_confidence) & (c > 0)
        age = t - self._t_measured
        self._active &= ~(age > cfg.lost_after_s + TIME_EPS_S)

        start = valid & ~self._active
        self._x[start] = z[start]
        self._dx[start] = 0.0

        follow = valid & self._active & (age > 0)  # age 0: a duplicate timestamp carries no new information
        if follow.any():
            dt = age[follow][:, None]
            x_prev = self._x[follow]
            a_d = smoothing_factor(cfg.d_cutoff, dt)
            dx = self._dx[follow] + a_d * ((z[follow] - x_prev) / dt - self._dx[follow])
            cutoff = cfg.min_cutoff + cfg.beta * np.linalg.norm(dx, axis=1, keepdims=True)
            a = smoothing_factor(cutoff, dt)
            self._x[follow] = x_prev + a * (z[follow] - x_prev)
            self._dx[follow] = dx

        used = start | follow
        self._active |= start
        self._t_measured[used] = t
        self._conf[used] = c[used]
        age = t - self._t_measured
        fade = np.minimum(np.maximum(1.0 - age / cfg.lost_after_s, 0.0), 1.0)  # np.clip costs 4x more
        active = self._active
        return SmoothedPose(
            t=t,
            position=self._x.copy(),
            velocity=np.where(active[:, None], self._dx, 0.0),
            quality=np.where(active, self._conf * fade, 0.0),
            std=np.where(active, np.nan, np.inf),
            measured=used.copy(),
            lost=~active,
        )
