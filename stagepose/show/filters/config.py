"""Typed settings of the joint smoothers, embedded in the show config under ``smoothing:``.

Every length is in the units of the coordinates the smoother is fed. The defaults are tuned for image
pixels of a 1080p camera with a performer 400-700 px tall; to smooth stage metres (or another image
size) scale the config with ``SmoothingConfig.scaled(metres_per_pixel)`` or set the fields directly.
Times are seconds and come from the frames' capture timestamps, never from a nominal frame rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Literal

# Process noise when ``KalmanConfig.process_noise`` is left empty: spectral density of the white noise
# driving the highest modelled derivative, in px^2/s^3 (cv: acceleration) or px^2/s^5 (ca: jerk).
DEFAULT_PROCESS_NOISE: dict[str, float] = {"cv": 3.0e4, "ca": 3.0e6}


# Upper bounds: beyond these a value is a typo, and squares of it (Kalman covariances) overflow float64.
MAX_LENGTH = 1.0e6  # measurement and velocity std, in coordinate units
MAX_PROCESS_NOISE = 1.0e15
MAX_SECONDS = 3600.0
MAX_HZ = 1000.0


def _check_positive(name: str, value: float, high: float | None = None) -> None:
    if not (math.isfinite(value) and value > 0 and (high is None or value <= high)):
        limit = "" if high is None else f" and <= {high:g}"
        raise ValueError(f"{name} must be a finite number > 0{limit}, got {value}")


def _check_confidence(value: float) -> None:
    if not 0.0 <= value < 1.0:  # NaN fails both comparisons, so it is refused too
        raise ValueError(f"min_confidence must be in [0, 1), got {value}")


@dataclass(frozen=True)
class KalmanConfig:
    """Per-joint Kalman filter (one filter per joint, x and y in one state).

    Attributes:
        model: ``cv`` constant velocity (state: position, velocity) or ``ca`` constant acceleration
            (adds acceleration; follows fast turns with less lag, jitters more).
        process_noise: spectral density q of the continuous white noise on the acceleration (cv, in
            units^2/s^3) or jerk (ca, units^2/s^5). Larger follows faster moves with less lag but
            smooths less. Empty (null) uses ``DEFAULT_PROCESS_NOISE[model]``. The discrete Q is
            derived from the real time step of each frame, so a dropped frame grows the uncertainty.
        measurement_std: standard deviation of a joint measured at confidence 1, in units; a joint at
            confidence c counts as std / c (its variance R grows as 1 / c^2).
        min_confidence: a joint below this confidence (or NaN) is not measured: the filter only
            predicts it and its uncertainty grows.
        lost_after_s: a joint not measured for longer than this is reported lost; when it comes
            back its filter restarts at the new measurement instead of being dragged from a stale state.
        initial_velocity_std: velocity uncertainty (units/s) of a freshly started joint; the
            acceleration of the ca model starts with this value per 0.1 s.
        max_forecast_s: the longest forecast (latency compensation) ever made, so a stalled send
            never extrapolates a joint far off.
    """

    model: Literal["cv", "ca"] = "cv"
    process_noise: float | None = None
    measurement_std: float = 4.0
    min_confidence: float = 0.2
    lost_after_s: float = 0.5
    initial_velocity_std: float = 1000.0
    max_forecast_s: float = 0.2

    def __post_init__(self) -> None:
        if self.model not in DEFAULT_PROCESS_NOISE:
            raise ValueError(f"model must be 'cv' or 'ca', got {self.model!r}")
        if self.process_noise is not None:
            _check_positive("process_noise", self.process_noise, MAX_PROCESS_NOISE)
        _check_positive("measurement_std", self.measurement_std, MAX_LENGTH)
        _check_confidence(self.min_confidence)
        _check_positive("lost_after_s", self.lost_after_s, MAX_SECONDS)
        _check_positive("initial_velocity_std", self.initial_velocity_std, MAX_LENGTH)
        if not (math.isfinite(self.max_forecast_s) and 0.0 <= self.max_forecast_s <= 1.0):
            raise ValueError(f"max_forecast_s must be in [0, 1] s, got {self.max_forecast_s}")

    @property
    def q(self) -> float:
        """The process noise in use: the configured value or the model's default."""
        return DEFAULT_PROCESS_NOISE[self.model] if self.process_noise is None else self.process_noise

    def scaled(self, factor: float) -> KalmanConfig:
        """The same filter for coordinates ``factor`` times the current unit (px -> m: metres per px)."""
        _check_positive("factor", factor)
        return replace(
            self,
            process_noise=self.q * factor**2,
            measurement_std=self.measurement_std * factor,
            initial_velocity_std=self.initial_velocity_std * factor,
        )


@dataclass(frozen=True)
class OneEuroConfig:
    """One Euro filter (Casiez, Roussel and Vogel, CHI 2012), applied per joint.

    Attributes:
        min_cutoff: cutoff frequency (Hz) at rest; lower removes more jitter on a still performer.
        beta: cutoff increase per unit/s of joint speed (1/units); higher removes more lag in fast moves.
        d_cutoff: cutoff frequency (Hz) of the speed estimate.
        min_confidence: a joint below this confidence (or NaN) holds its last value.
        lost_after_s: a joint not measured for longer than this is reported lost and restarts fresh.
    """

    min_cutoff: float = 1.0
    beta: float = 0.01
    d_cutoff: float = 1.0
    min_confidence: float = 0.2
    lost_after_s: float = 0.5

    def __post_init__(self) -> None:
        _check_positive("min_cutoff", self.min_cutoff, MAX_HZ)
        if not (math.isfinite(self.beta) and 0 <= self.beta <= MAX_LENGTH):
            raise ValueError(f"beta must be a finite number in 0..{MAX_LENGTH:g}, got {self.beta}")
        _check_positive("d_cutoff", self.d_cutoff, MAX_HZ)
        _check_confidence(self.min_confidence)
        _check_positive("lost_after_s", self.lost_after_s, MAX_SECONDS)

    def scaled(self, factor: float) -> OneEuroConfig:
        """The same filter for coordinates ``factor`` times the current unit (beta is per unit/s)."""
        _check_positive("factor", factor)
        return replace(self, beta=self.beta / factor)


@dataclass(frozen=True)
class SmoothingConfig:
    """Which smoother the live loop runs per performer, and whether it forecasts to the send time.

    Attributes:
        method: ``kalman`` (prediction, dropped-frame bridging, latency compensation), ``one_euro``
            (what creative-coding tools ship; no prediction) or ``none`` (raw joints, same interface).
        kalman: settings used when method is ``kalman``.
        one_euro: settings used when method is ``one_euro``.
        forecast_to_send: forecast each joint from its capture time to the send time by the Kalman
            state (latency compensation); needs method ``kalman``.
    """

    method: Literal["kalman", "one_euro", "none"] = "kalman"
    kalman: KalmanConfig = field(default_factory=KalmanConfig)
    one_euro: OneEuroConfig = field(default_factory=OneEuroConfig)
    forecast_to_send: bool = False

    def __post_init__(self) -> None:
        if self.method not in ("kalman", "one_euro", "none"):
            raise ValueError(f"method must be 'kalman', 'one_euro' or 'none', got {self.method!r}")
        if self.forecast_to_send and self.method != "kalman":
            raise ValueError(
                f"forecast_to_send needs method 'kalman' (method is {self.method!r}, which cannot predict); "
                "set method: kalman or forecast_to_send: false"
            )

    def scaled(self, factor: float) -> SmoothingConfig:
        """Both filters' settings for coordinates ``factor`` times the current unit."""
        return replace(self, kalman=self.kalman.scaled(factor), one_euro=self.one_euro.scaled(factor))
