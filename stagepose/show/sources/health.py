"""Source health for telemetry: state, counters, measured frame rate, reconnect back-off."""

from __future__ import annotations

import enum
import random
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any


class SourceState(enum.StrEnum):
    """Where a source is in its life; the value is what telemetry shows.

    ``connecting``: no frame yet since the source was opened (a camera that never answered stays
    here while it is retried).
    ``live``: frames are arriving.
    ``stalled``: no frame came for the stall timeout (shown until the next reopen attempt).
    ``reconnecting``: the stream was lost (error, end of a live stream, stall); reopening with back-off.
    ``ended``: a file reached its end (without loop), or the source was closed.
    ``failed``: the source gave up for good (a file that cannot be decoded, a missing wheel);
    ``SourceHealth.last_error`` says why. Live streams never fail on network errors: they reconnect.
    """

    CONNECTING = "connecting"
    LIVE = "live"
    STALLED = "stalled"
    RECONNECTING = "reconnecting"
    ENDED = "ended"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        """True when no more frames will come."""
        return self in (SourceState.ENDED, SourceState.FAILED)


@dataclass(frozen=True)
class SourceHealth:
    """A snapshot of one source's health, cheap to take every telemetry tick.

    Attributes:
        camera_id: the show config's camera name.
        kind: "rtsp", "ndi", "file" or "webcam".
        uri: the source address, with any password replaced by ``***``.
        state: see `SourceState`.
        frames_received: frames decoded so far (delivered or dropped).
        frames_dropped: frames replaced by a newer one before the consumer took them (stale frames).
        decode_errors: bad packets or frames skipped.
        reconnects: outages so far: times a stream that was delivering frames was lost (ten drops
            are 10, however many reopen attempts each took).
        last_error: the most recent error message, or None.
        fps: frame rate measured over the last ~2 s of arrivals (0.0 with fewer than 2 frames).
        last_frame_age_s: seconds since the last frame arrived, or None before the first.
        attempts: reopen attempts so far (after a loss or a failed open); climbs while a camera is down.
    """

    camera_id: str
    kind: str
    uri: str
    state: SourceState
    frames_received: int
    frames_dropped: int
    decode_errors: int
    reconnects: int
    last_error: str | None
    fps: float
    last_frame_age_s: float | None
    attempts: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (state as its string value)."""
        out = asdict(self)
        out["state"] = self.state.value
        return out


class FpsMeter:
    """Frame rate over a sliding time window of arrival times (not thread-safe: guard it with a lock).

    Args:
        window_s: length of the window; long enough to smooth jitter, short enough to show a drop.
    """

    def __init__(self, window_s: float = 2.0) -> None:
        if window_s <= 0:
            raise ValueError(f"window_s must be > 0, got {window_s}")
        self._window_s = window_s
        self._times: deque[float] = deque()

    def tick(self, t: float) -> None:
        """Record one arrival at monotonic time ``t`` (seconds)."""
        self._times.append(t)
        while self._times and t - self._times[0] > self._window_s:
            self._times.popleft()

    def fps(self, now: float) -> float:
        """Frames per second over the window ending at ``now``; 0.0 once arrivals stop for a window."""
        while self._times and now - self._times[0] > self._window_s:
            self._times.popleft()
        if len(self._times) < 2:
            return 0.0
        span = self._times[-1] - self._times[0]
        return (len(self._times) - 1) / span if span > 0 else 0.0


class Backoff:
    """Exponential reconnect delays with jitter, bounded: first, 2*first, 4*first ... up to max_s.

    Jitter (a random 0.8-1.0 factor) keeps several cameras that drop together (a switch rebooting)
    from hammering it in lockstep.

    Args:
        first_s: delay before the first retry.
        max_s: the bound; retries go on forever at this interval.
        rng: random source (seed it in tests that check the sequence).
    """

    def __init__(self, first_s: float = 0.25, max_s: float = 5.0, rng: random.Random | None = None) -> None:
        if first_s <= 0 or max_s < first_s:
            raise ValueError(f"need 0 < first_s <= max_s, got first_s={first_s}, max_s={max_s}")
        self._first_s = first_s
        self._max_s = max_s
        self._rng = rng or random.Random()
        self._attempt = 0

    def next_delay(self) -> float:
        """The delay before the next retry, in seconds (and count the attempt)."""
        base = min(self._max_s, self._first_s * (2.0 ** min(self._attempt, 30)))
        self._attempt += 1
        return base * self._rng.uniform(0.8, 1.0)

    def reset(self) -> None:
        """Start again from ``first_s`` (after a session that delivered frames)."""
        self._attempt = 0
