"""Stream timestamps to wall-clock capture times.

Streams carry their own clocks: an RTSP camera's RTP timestamps (90 kHz), a file's PTS, an NDI
sender's 100 ns ticks. The show needs capture times on this machine's ``time.time()`` clock, so that
latency up to the OSC send can be measured and cameras can be compared. `StreamClock` anchors the
stream clock to the wall clock at the first frame and keeps the mapping honest afterwards.
"""

from __future__ import annotations


class StreamClock:
    """Map stream time (seconds on the stream's own clock) to ``time.time()`` seconds.

    The offset ``wall - stream`` is set at the first frame from its arrival time. Arrival includes
    transport and decode latency, so afterwards the mapping only moves in two cases:

    * a frame would map into the future (it arrived faster than the first one did, or the camera's
      clock runs fast): the offset shrinks so that frame maps to "now". The anchor thus converges
      on the lowest latency seen, the best estimate of when frames are really taken.
    * a frame maps more than ``max_lag_s`` into the past (the camera clock runs slow, drifting over
      hours, or the stream jumped): re-anchor at "now" and count a resync.

    A stream time that goes backwards (camera restarted, counter wrapped) re-anchors as well.

    Args:
        max_lag_s: how far behind "now" a mapped time may fall before re-anchoring; None never
            re-anchors for lag (for replay as fast as possible, where stream time runs ahead).
        clamp_future: move the anchor when a time maps past "now" (False for fast replay).
        absolute_tolerance_s: if set and the first stream time is already within this many seconds
            before "now", the stream clock is taken to be the wall clock itself (offset 0): an NDI
            sender whose clock is NTP-synced with ours gives true capture times that way.
    """

    def __init__(
        self,
        *,
        max_lag_s: float | None = 1.0,
        clamp_future: bool = True,
        absolute_tolerance_s: float | None = None,
    ) -> None:
        if max_lag_s is not None and max_lag_s <= 0:
            raise ValueError(f"max_lag_s must be > 0 or None, got {max_lag_s}")
        self._max_lag_s = max_lag_s
        self._clamp_future = clamp_future
        self._absolute_tolerance_s = absolute_tolerance_s
        self._offset: float | None = None
        self._last_stream_s: float | None = None
        self.resyncs = 0

    def to_wall(self, stream_s: float | None, now: float) -> float:
        """Capture time on the wall clock for a frame with stream time ``stream_s`` arriving at ``now``.

        Args:
            stream_s: the frame's time on the stream clock in seconds, or None if the stream has no
                timestamp for it (then the arrival time is the best estimate).
            now: ``time.time()`` when the frame was decoded.
        """
        if stream_s is None:
            return now
        if self._offset is None or (self._last_stream_s is not None and stream_s < self._last_stream_s):
            lag = now - stream_s
            tol = self._absolute_tolerance_s
            self._offset = 0.0 if tol is not None and 0.0 <= lag <= tol else lag
        self._last_stream_s = stream_s
        t = stream_s + self._offset
        if self._clamp_future and t > now:
            self._offset -= t - now
            return now
        if self._max_lag_s is not None and now - t > self._max_lag_s:
            self._offset += now - t
            self.resyncs += 1
            return now
        return t


class SharedAnchor:
    """One wall-clock anchor for several files played as synchronised cameras (thread-safe).

    A file source anchors its stream time 0 at the wall time its first frame is decoded. Recordings of
    synchronised cameras played that way in a multiview show would each start when its own decoder got
    going, so frames stamped the same instant would show different moments. Files sharing one anchor
    play in lockstep: the first frame decoded of any of them sets it, and when one file falls too far
    behind (decoding slower than real time) it moves the anchor for all of them, so they slow down
    together and stay aligned.
    """

    def __init__(self) -> None:
        import threading

        self._lock = threading.Lock()
        self._value: float | None = None

    def anchor(self, now: float, rel_s: float) -> float:
        """The anchor (wall time of stream time 0); the first caller sets it so that ``rel_s`` is now."""
        with self._lock:
            if self._value is None:
                self._value = now - rel_s
            return self._value

    def catch_up(self, now: float, rel_s: float) -> float:
        """Move the anchor later so that stream time ``rel_s`` is ``now`` (never earlier); the new anchor."""
        with self._lock:
            self._value = max(self._value if self._value is not None else now - rel_s, now - rel_s)
            return self._value
