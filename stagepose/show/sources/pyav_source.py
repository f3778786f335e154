"""RTSP cameras and video files through PyAV (FFmpeg).

RTSP is opened with FFmpeg's low-latency options and read by a stall watchdog: FFmpeg has no
reconnect for RTSP, so when no frame comes for ``stall_timeout_s`` or a read fails, the stream is
reopened with bounded exponential back-off, forever while the show runs; while the server refuses
connections a cheap TCP probe ends the back-off as soon as it answers again.

A file plays like a camera ("realtime": paced by its PTS, newest-only) or as fast as the consumer
takes frames ("fast": lossless, for offline replay), optionally looping.
"""

from __future__ import annotations

import socket
import time
from fractions import Fraction
from urllib.parse import urlsplit

import av
import numpy as np
from av.codec.context import CodecContext, Flags
from av.container import InputContainer
from av.video.frame import VideoFrame
from av.video.stream import VideoStream

from stagepose.errors import DataError
from stagepose.show.sources.base import ThreadedSource
from stagepose.show.sources.clock import SharedAnchor, StreamClock
from stagepose.show.sources.health import SourceState
from stagepose.show.sources.uri import FileSpec, RtspSpec

# Demuxer options that trade robustness to jitter for latency on a live stream.
LOW_LATENCY_OPTIONS: dict[str, str] = {
    "fflags": "nobuffer",  # hand packets on at once instead of filling the probe buffer first
    "max_delay": "0",  # no reordering wait (RTSP/UDP default: 0.1 s); late packets are lost instead
    "analyzeduration": "500000",  # probe the stream for 0.5 s (in µs) at open, not FFmpeg's 5 s
}
# The reachability probe of a down RTSP server gives up after this long (an unreachable host).
PROBE_TIMEOUT_S = 0.5
# A realtime file that decodes slower than its frame rate re-anchors its clock once it is this late,
# so t_capture stays close to the wall clock (the clip then plays slower than real time).
FILE_MAX_LAG_S = 0.25


def _stream_seconds(frame: VideoFrame, time_base: Fraction | None) -> float | None:
    """A decoded frame's presentation time in seconds on the stream clock, or None if unknown.

    PTS counts ticks of the stream's ``time_base`` (a Fraction of a second: 1/90000 for RTP video,
    1/15360 or 1/30000 in typical MP4s), so seconds = pts * time_base.
    """
    if frame.pts is None or time_base is None:
        return None
    return float(frame.pts * time_base)


def _set_low_delay(ctx: CodecContext, *, live: bool) -> None:
    """Decoder settings, applied before the first packet opens the codec.

    Live streams get LOW_DELAY (output frames as soon as they are decodable, no reorder buffer) and
    slice threading (frame threading holds back one frame per thread, i.e. latency). Files are not
    latency-bound, so they get FFmpeg's automatic frame+slice threading for throughput.
    """
    if live:
        ctx.flags |= Flags.low_delay
        ctx.thread_type = "SLICE"
    else:
        ctx.thread_type = "AUTO"


class _PyAVSource(ThreadedSource):
    """Shared decoding for RTSP and files: packet decode with error counting, BGR conversion."""

    def _decode(self, packet: av.Packet) -> list[VideoFrame]:
        """Decode one packet; a bad packet or a frame the decoder marks corrupt is counted and skipped."""
        try:
            frames = packet.decode()
        except av.FFmpegError as exc:
            self._count_decode_error(f"bad packet (pts {packet.pts}): {exc}")
            return []
        good: list[VideoFrame] = []
        for frame in frames:
            if not isinstance(frame, VideoFrame):
                continue
            if frame.is_corrupt:
                self._count_decode_error(f"corrupt frame (pts {frame.pts}) skipped")
                continue
            good.append(frame)
        return good

    def _to_bgr(self, frame: VideoFrame) -> np.ndarray | None:
        """(H, W, 3) uint8 BGR copy of a decoded frame, or None (counted) if it cannot be converted."""
        try:
            image = frame.to_ndarray(format="bgr24")
        except (av.FFmpegError, ValueError) as exc:
            self._count_decode_error(f"cannot convert {frame.format.name} frame to BGR: {exc}")
            return None
        # Rows may be padded (line size > 3 * width); the consumer gets a compact array.
        return np.ascontiguousarray(image)


class RtspSource(_PyAVSource):
    """An RTSP camera, reconnecting forever.

    Args:
        spec: the parsed address.
        camera_id: the show config's camera name.
        stall_timeout_s: no frame for this long (or a socket read blocked this long) counts as a lost
            stream and triggers a reopen.
        open_timeout_s: how long opening (connect, DESCRIBE, SETUP, first probe) may take.
        lossless: deliver every frame instead of newest-only (not for live use).
    """

    kind = "rtsp"

    def __init__(
        self,
        spec: RtspSpec,
        camera_id: str,
        *,
        stall_timeout_s: float = 2.0,
        open_timeout_s: float = 5.0,
        lossless: bool = False,
    ) -> None:
        super().__init__(camera_id, spec.uri, lossless=lossless, stall_timeout_s=stall_timeout_s)
        if open_timeout_s <= 0:
            raise ValueError(f"open_timeout_s must be > 0, got {open_timeout_s}")
        self._spec = spec
        self._open_timeout_s = open_timeout_s

    def _options(self) -> dict[str, str]:
        return {
            **LOW_LATENCY_OPTIONS,
            "rtsp_transport": self._spec.transport,
            # Socket I/O timeout of the RTSP demuxer, in microseconds (FFmpeg's unit for it).
            "timeout": str(int(self._stall_timeout_s * 1_000_000)),
        }

    def _run(self) -> None:
        self._run_reconnecting(self._session, probe=self._server_answers)

    def _server_answers(self) -> bool:
        """True when the camera's RTSP port accepts a TCP connection (cheap: no RTSP exchange)."""
        parts = urlsplit(self._spec.url)
        try:
            with socket.create_connection((parts.hostname or "", parts.port or 554), timeout=PROBE_TIMEOUT_S):
                return True
        except (OSError, ValueError):
            return False

    def _session(self) -> None:
        """One connection: open, decode until the stream is lost, return (the caller reconnects)."""
        try:
            # PyAV's timeout (seconds) interrupts a blocked open or read via FFmpeg's interrupt
            # callback; it also covers UDP, where no socket read ever fails on its own.
            container = av.open(
                self._spec.url,
                container_options=self._options(),
                timeout=(self._open_timeout_s, self._stall_timeout_s),
            )
        except av.error.ExitError:
            self._note_error(f"cannot open {self.uri}: no answer within {self._open_timeout_s:.1f} s")
            return
        except av.FFmpegError as exc:
            self._note_error(f"cannot open {self.uri} (camera off, unreachable or refusing?): {exc}")
            return
        with container:
            if not isinstance(container, InputContainer) or not container.streams.video:
                self._note_error(f"{self.uri} has no video track")
                return
            stream = container.streams.video[0]
            _set_low_delay(stream.codec_context, live=True)
            self._read(container, stream)

    def _read(self, container: InputContainer, stream: VideoStream) -> None:
        clock = StreamClock(max_lag_s=1.0)  # new connection, new RTP clock: anchor afresh
        time_base = stream.time_base
        last_frame = time.monotonic()
        try:
            for packet in container.demux(stream):
                if self._stop.is_set():
                    return
                for frame in self._decode(packet):
                    t_capture = clock.to_wall(_stream_seconds(frame, time_base), time.time())
                    image = self._to_bgr(frame)
                    if image is None:
                        continue
                    if not self._publish(image, t_capture):
                        return
                    last_frame = time.monotonic()
                # Stall watchdog: packets that never make a frame (broken keyframes) are a stall too.
                silent = time.monotonic() - last_frame
                if silent > self._stall_timeout_s:
                    self._set_state(SourceState.STALLED, f"no frame for {silent:.1f} s (stall watchdog)")
                    return
        except av.error.ExitError:  # PyAV's read timeout interrupted a blocked read
            self._set_state(SourceState.STALLED, f"no data for {self._stall_timeout_s:.1f} s (read timed out)")
            return
        except av.FFmpegError as exc:
            self._set_state(SourceState.STALLED, f"read failed: {exc}")
            return
        # For a live camera the end of the stream means the server went away, not the end of the show.
        self._note_error("stream ended (the server closed the connection)")


class FileSource(_PyAVSource):
    """A video file as a camera: realtime (PTS-paced, newest-only) or fast (lossless), optional loop.

    Capture times are the file's PTS anchored to the wall clock at the first frame (and continued
    across loops), so they are strictly increasing and their differences are the file's own frame
    intervals. In fast pacing they run ahead of the wall clock: that is stream time, as replay wants.

    Args:
        spec: the parsed address (path, loop, pacing).
        camera_id: the show config's camera name.
        lossless: deliver every frame, the decoder waiting for the consumer. Defaults to True for
            fast pacing (replay) and False for realtime (a slow consumer drops stale frames).
        stall_timeout_s: used for the health report only.
        anchor: a `SharedAnchor` for files recorded by synchronised cameras (a multiview show): they then
            play in lockstep, stamped on one clock.
    """

    kind = "file"

    def __init__(
        self,
        spec: FileSpec,
        camera_id: str,
        *,
        lossless: bool | None = None,
        stall_timeout_s: float = 2.0,
        anchor: SharedAnchor | None = None,
    ) -> None:
        if lossless is None:
            lossless = spec.pacing == "fast"
        super().__init__(camera_id, spec.uri, lossless=lossless, stall_timeout_s=stall_timeout_s)
        self._spec = spec
        self._anchor: float | None = None  # wall time of stream time 0 (first frame of the first pass)
        self._shared = anchor  # files of synchronised cameras share one anchor (realtime pacing)
        self._late_warned = False
        self._short_warned = False

    def _run(self) -> None:
        path = self._spec.path
        try:
            container = av.open(str(path))
        except av.FFmpegError as exc:
            raise DataError(f"cannot open video file {path} (not a video, truncated or damaged?): {exc}") from None
        with container:
            if not isinstance(container, InputContainer) or not container.streams.video:
                raise DataError(f"video file {path} has no video stream")
            stream = container.streams.video[0]
            _set_low_delay(stream.codec_context, live=False)
            rate = stream.average_rate
            period = float(1 / rate) if rate else 1 / 30  # used only where PTS are missing
            offset = 0.0  # stream seconds played in earlier loop passes
            while not self._stop.is_set():
                span = self._play_pass(container, stream, offset, period)
                if span is None or self._stop.is_set():
                    return
                if not self._spec.loop:
                    return
                offset += span
                # Back to the first keyframe; PyAV flushes the decoder's buffered frames on seek.
                container.seek(0)

    def _play_pass(self, container: InputContainer, stream: VideoStream, offset: float, period: float) -> float | None:
        """Decode the file once. Returns the pass's duration in stream seconds, None when closing."""
        time_base = stream.time_base
        first_s: float | None = None
        last_s: float | None = None
        count = 0
        try:
            for packet in container.demux(stream):
                for frame in self._decode(packet):
                    stream_s = _stream_seconds(frame, time_base)
                    if stream_s is None:  # no PTS: assume the nominal frame rate
                        stream_s = (last_s + period) if last_s is not None else 0.0
                    if first_s is None:
                        first_s = stream_s
                    image = self._to_bgr(frame)  # before the wait: the frame leaves at its capture time
                    if image is None:
                        continue
                    t_capture = self._pace(offset + stream_s - first_s)
                    if t_capture is None:
                        return None
                    if not self._publish(image, t_capture):
                        return None
                    last_s = stream_s
                    count += 1
        except av.FFmpegError as exc:
            # The container itself is damaged (e.g. truncated): nothing more to read in this pass.
            self._count_decode_error(f"read error after {count} frames of {self._spec.path.name}: {exc}")
        if count == 0 or first_s is None or last_s is None:
            with self._lock:
                why = f" (last error: {self._last_error})" if self._last_error else ""
            raise DataError(f"no frame could be decoded from {self._spec.path}{why}")
        declared = stream.frames  # from the container header; 0 when the container does not say
        if declared and count < declared and not self._short_warned:
            self._note_error(f"{self._spec.path.name} ended after {count} of {declared} frames (truncated?)")
            self._short_warned = True
        return last_s - first_s + period

    def _pace(self, rel_s: float) -> float | None:
        """Capture time for a frame ``rel_s`` stream seconds after the first; waits in realtime mode.

        Returns None if the source was closed while waiting.
        """
        now = time.time()
        if self._shared is not None and self._spec.pacing != "fast":
            self._anchor = self._shared.anchor(now, rel_s)  # another file may have moved it
        elif self._anchor is None:
            self._anchor = now - rel_s  # stream time 0 happens "now" on the wall clock
        t_capture = self._anchor + rel_s
        if self._spec.pacing == "fast":
            return t_capture
        wait = t_capture - now
        if wait > 0:
            if self._stop.wait(wait):
                return None
        elif -wait > FILE_MAX_LAG_S:
            # Decoding cannot keep up with the clip's frame rate: shift the anchor instead of
            # reporting ever older capture times.
            if not self._late_warned:
                self._log.warning("decoding slower than real time (%.2f s late); clip plays slower", -wait)
                self._late_warned = True
            self._anchor += -wait
            if self._shared is not None:
                self._anchor = self._shared.catch_up(now, rel_s)  # the others slow down with this one
            t_capture = now
        return t_capture
