"""Offline Rauch-Tung-Striebel smoothing for replays: the causal Kalman filter, then a backward pass.

A replay (rehearsal footage, a recorded keypoint file) has the whole sequence, so each frame can use
the frames after it as well: the RTS smoother removes the causal filter's lag and bridges gaps by
interpolation instead of extrapolation. It runs the same ``KalmanSmoother`` forward (same confidence
weighting, gating and lost rule) and then filterpy's ``KalmanFilter.rts_smoother`` over each stretch of
frames where a joint is tracked, with the F and Q of ``transition()`` for each real time step.
Non-causal: never use it in the live loop.
"""

from __future__ import annotations

import numpy as np

from stagepose.show.filters.config import KalmanConfig
from stagepose.show.filters.kalman import KalmanSmoother, model_order, transition


def rts_smooth(
    joints: np.ndarray,
    confidence: np.ndarray,
    timestamps: np.ndarray,
    config: KalmanConfig | None = None,
) -> np.ndarray:
    """Smooth a whole sequence of one performer's joints.

    Args:
        joints: (T, K, 2) measured positions, NaN where missing.
        confidence: (T, K) confidences in 0..1.
        timestamps: (T,) capture times in seconds, non-decreasing.
        config: the Kalman settings (default ``KalmanConfig()``).

    Returns:
        (T, K, 2) float64 smoothed positions; NaN where the joint is lost (not measured for longer than
        ``lost_after_s``) or not yet seen.

    Raises:
        ValueError: mismatched shapes, non-finite or decreasing timestamps.
    """
    config = config or KalmanConfig()
    z = np.asarray(joints, dtype=np.float64)
    c = np.asarray(confidence, dtype=np.float64)
    ts = np.asarray(timestamps, dtype=np.float64)
    if z.ndim != 3 or z.shape[2] != 2:
        raise ValueError(f"joints must have shape (T, K, 2), got {z.shape}")
    n, k = z.shape[:2]
    if c.shape != (n, k):
        raise ValueError(f"confidence must have shape ({n}, {k}), got {c.shape}")
    if ts.shape != (n,):
        raise ValueError(f"timestamps must have shape ({n},), got {ts.shape}")
    if not np.isfinite(ts).all():
        raise ValueError("timestamps must be finite")
    if n > 1 and np.any(np.diff(ts) < 0):
        first = int(np.argmax(np.diff(ts) < 0))
        raise ValueError(f"timestamps must not decrease: frame {first + 1} is earlier than frame {first}")

    from filterpy.kalman import KalmanFilter  # lazily: its package import pulls in scipy.stats

    smoother = KalmanSmoother(config, num_joints=k)
    order = model_order(config)
    dim = 2 * order
    xs = np.zeros((n, k, dim))
    ps = np.zeros((n, k, dim, dim))
    fs = np.zeros((n, dim, dim))  # fs[i], qs[i]: the step from frame i - 1 to frame i (identity, 0 at i = 0)
    qs = np.zeros((n, dim, dim))
    active = np.zeros((n, k), dtype=bool)
    started = np.zeros((n, k), dtype=bool)
    for i in range(n):
        smoother.update(ts[i], z[i], c[i])
        xs[i], ps[i] = smoother._states()
        fs[i], qs[i] = transition(order, ts[i] - ts[i - 1] if i > 0 else 0.0, config.q)
        active[i] = smoother._active
        started[i] = smoother._started

    out = np.full((n, k, 2), np.nan)
    kf = KalmanFilter(dim_x=dim, dim_z=2)  # rts_smoother only uses the matrices passed in
    for j in range(k):
        i = 0
        while i < n:
            if not active[i, j]:
                i += 1
                continue
            end = i + 1  # a tracked stretch: active frames, split where the filter restarted
            while end < n and active[end, j] and not started[end, j]:
                end += 1
            seg_x, _, _, _ = kf.rts_smoother(xs[i:end, j], ps[i:end, j], Fs=fs[i:end], Qs=qs[i:end])
            out[i:end, j] = seg_x[:, 0:2]
            i = end
    return out
