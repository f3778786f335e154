"""What every joint smoother returns, the interface the live loop calls, and the pass-through smoother.

A smoother follows one performer's joints (MPII order) in one coordinate space (image pixels or
stage metres). The live loop calls ``update(t_capture, joints, confidence)`` once per processed frame
with the frame's real capture time; gaps between frames are real gaps (a dropped or late frame grows
the uncertainty), never a nominal frame period.

Missing joints are NaN positions or a confidence below the smoother's threshold, never sentinels.
A joint is *lost* once it has not been measured for the configured time (pass-through: as soon as it
is missing); a lost joint keeps its last known position with quality 0, so outputs can show
confidence 0 at the last place rather than NaN.
"""

from __future__ import annotations

import abc
import logging
import math
from dataclasses import dataclass

import numpy as np

from stagepose.skeleton import NUM_JOINTS

log = logging.getLogger(__name__)


# Time comparisons allow this much float noise: capture times are Unix seconds (~1.8e9), where a frame
# gap of exactly lost_after_s comes out a few 1e-7 s either side depending on when the show started.
TIME_EPS_S = 1e-6


@dataclass(frozen=True)
class SmoothedPose:
    """One performer's smoothed joints at time ``t`` (arrays are fresh copies, never shared state).

    Arrays are read-only; copy them to edit.

    Attributes:
        t: capture time (Unix seconds) this estimate is for; a forecast's target time.
        position: (K, 2) float64 joint positions in the input units; the last known position for a lost
            joint; NaN for a joint never seen since the start (or the last reset).
        velocity: (K, 2) float64 units/s; 0 for lost joints and for the pass-through smoother.
        quality: (K,) float64 in 0..1: how much to trust the joint now (1 fresh and certain, falling
            while a joint is only predicted or held, 0 when lost). Send this as the OSC confidence.
        std: (K,) float64 position standard deviation in units (Kalman only; NaN for the others,
            inf for lost joints).
        measured: (K,) bool, the joint's measurement of this frame was used.
        lost: (K,) bool, the joint has not been measured for longer than the smoother's limit.
    """

    t: float
    position: np.ndarray
    velocity: np.ndarray
    quality: np.ndarray
    std: np.ndarray
    measured: np.ndarray
    lost: np.ndarray

    def __post_init__(self) -> None:
        # Read-only: the same pose is kept as the smoother's ``last``, so a consumer editing it in place
        # would silently change what the next caller sees.
        for name in ("position", "velocity", "quality", "std", "measured", "lost"):
            getattr(self, name).setflags(write=False)

    @property
    def num_tracked(self) -> int:
        """Joints not lost."""
        return int(np.count_nonzero(~self.lost))


def check_inputs(
    t_capture: float, joints: np.ndarray, confidence: np.ndarray, num_joints: int
) -> tuple[float, np.ndarray, np.ndarray]:
    """Validate one frame's inputs and return float64 copies (NaN confidence becomes 0).

    Args:
        t_capture: capture time in seconds (Unix time from the source); must be finite.
        joints: (K, 2) positions; NaN marks a missing joint.
        confidence: (K,) per-joint confidence in 0..1 (values outside are clipped).
        num_joints: K.

    Raises:
        ValueError: a wrong shape or a non-finite time (a bug in the caller, not a show condition).
    """
    t = float(t_capture)
    if not math.isfinite(t):
        raise ValueError(f"t_capture must be a finite time in seconds, got {t_capture!r}")
    z = np.array(joints, dtype=np.float64)
    c = np.asarray(confidence, dtype=np.float64)
    if z.shape != (num_joints, 2):
        raise ValueError(f"joints must have shape ({num_joints}, 2), got {z.shape}")
    if c.shape != (num_joints,):
        raise ValueError(f"confidence must have shape ({num_joints},), got {c.shape}")
    # NaN and values <= 0 become 0, values > 1 become 1 (a fresh array). Not np.clip(np.nan_to_num(c)):
    # the same result at a fifth of the cost, and this runs on every frame for every performer.
    c = np.where(c > 0.0, np.minimum(c, 1.0), 0.0)
    return t, z, c


class JointSmoother(abc.ABC):
    """Per-performer smoother; state lives in the instance (one instance per performer and space).

    Frames must come in capture order. A frame older than the previous one (out of order: a
    reconnecting stream replaying its buffer) is ignored and counted in ``out_of_order``; the
    previous estimate is returned.
    """

    supports_forecast: bool = False

    def __init__(self, num_joints: int = NUM_JOINTS) -> None:
        if num_joints < 1:
            raise ValueError(f"num_joints must be >= 1, got {num_joints}")
        self.num_joints = num_joints
        self.out_of_order = 0
        self._last: SmoothedPose | None = None

    @property
    def last(self) -> SmoothedPose | None:
        """The latest estimate (None before the first frame)."""
        return self._last

    def update(self, t_capture: float, joints: np.ndarray, confidence: np.ndarray) -> SmoothedPose:
        """Add one frame's measurements and return the smoothed pose at ``t_capture``.

        Args:
            t_capture: the frame's capture time in seconds (Unix, from the source's clock).
            joints: (K, 2) measured positions, NaN where the model found nothing.
            confidence: (K,) heatmap confidence in 0..1.

        Returns:
            The estimate at ``t_capture`` (or the previous one for an out-of-order frame).

        Raises:
            ValueError: wrong array shapes or a non-finite ``t_capture``.
        """
        t, z, c = check_inputs(t_capture, joints, confidence, self.num_joints)
        if self._last is not None and t < self._t_state():
            self.out_of_order += 1
            if self.out_of_order == 1 or self.out_of_order % 100 == 0:
                log.warning(
                    "frame at t=%.3f is %.1f ms older than the previous one; ignored (%d so far)",
                    t,
                    (self._t_state() - t) * 1e3,
                    self.out_of_order,
                )
            return self._last
        self._last = self._step(t, z, c)
        return self._last

    def forecast(self, t_send: float) -> SmoothedPose:
        """The estimate moved to ``t_send`` (latency compensation); unchanged where not supported.

        Raises:
            ValueError: no frame has been seen yet.
        """
        if self._last is None:
            raise ValueError("forecast() before the first update()")
        return self._last

    def reset(self) -> None:
        """Forget every joint (a new performer, a scene change)."""
        self._last = None
        self._reset_state()

    def _t_state(self) -> float:
        return self._last.t if self._last is not None else -math.inf

    @abc.abstractmethod
    def _step(self, t: float, z: np.ndarray, c: np.ndarray) -> SmoothedPose:
        """Advance to ``t`` (>= the previous time) with validated measurements."""

    @abc.abstractmethod
    def _reset_state(self) -> None:
        """Drop all per-joint state."""


class PassThroughSmoother(JointSmoother):
    """Method ``none``: the raw joints with the smoothers' interface.

    A joint is lost in any frame where it is missing (NaN or confidence 0) and keeps its last position;
    quality is the raw confidence; velocity is 0.
    """

    def __init__(self, num_joints: int = NUM_JOINTS) -> None:
        super().__init__(num_joints)
        self._held = np.full((num_joints, 2), np.nan)

    def _reset_state(self) -> None:
        self._held = np.full((self.num_joints, 2), np.nan)

    def _step(self, t: float, z: np.ndarray, c: np.ndarray) -> SmoothedPose:
        valid = np.isfinite(z).all(axis=1) & (c > 0)
        self._held = np.where(valid[:, None], z, self._held)
        k = self.num_joints
        return SmoothedPose(
            t=t,
            position=self._held.copy(),
            velocity=np.zeros((k, 2)),
            quality=np.where(valid, c, 0.0),
            std=np.full(k, np.nan),
            measured=valid.copy(),
            lost=~valid,
        )
