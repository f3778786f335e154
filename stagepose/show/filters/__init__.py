"""Joint smoothing for the live loop (Kalman, One Euro, pass-through) and offline RTS smoothing.

The live loop makes one smoother per performer with ``make_smoother(config.smoothing)`` and calls
``update(t_capture, joints (16, 2), confidence (16,))`` once per processed frame; with
``forecast_to_send`` it then calls ``forecast(t_send)`` just before sending.
"""

from __future__ import annotations

from stagepose.show.filters.base import JointSmoother, PassThroughSmoother, SmoothedPose
from stagepose.show.filters.config import DEFAULT_PROCESS_NOISE, KalmanConfig, OneEuroConfig, SmoothingConfig
from stagepose.show.filters.kalman import KalmanSmoother
from stagepose.show.filters.one_euro import OneEuroSmoother
from stagepose.show.filters.rts import rts_smooth
from stagepose.skeleton import NUM_JOINTS


def make_smoother(config: SmoothingConfig, num_joints: int = NUM_JOINTS) -> JointSmoother:
    """A fresh smoother for one performer, as ``config.method`` says.

    Args:
        config: the show's smoothing section.
        num_joints: joints per pose (16 for MPII).

    Returns:
        A ``KalmanSmoother``, ``OneEuroSmoother`` or ``PassThroughSmoother``.
    """
    if config.method == "kalman":
        return KalmanSmoother(config.kalman, num_joints)
    if config.method == "one_euro":
        return OneEuroSmoother(config.one_euro, num_joints)
    return PassThroughSmoother(num_joints)


__all__ = [
    "DEFAULT_PROCESS_NOISE",
    "JointSmoother",
    "KalmanConfig",
    "KalmanSmoother",
    "OneEuroConfig",
    "OneEuroSmoother",
    "PassThroughSmoother",
    "SmoothedPose",
    "SmoothingConfig",
    "make_smoother",
    "rts_smooth",
]
