"""Local capture devices (USB cameras, HDMI capture cards) through OpenCV's VideoCapture.

A device that disappears (USB cable pulled) or does not open is retried with back-off like a lost
RTSP stream, so replugging the camera brings it back during the show.
"""

from __future__ import annotations

import time

import cv2
import numpy as np

from stagepose.show.sources.base import ThreadedSource
from stagepose.show.sources.health import SourceState
from stagepose.show.sources.uri import WebcamSpec

# OpenCV's V4L2 backend reports the driver's buffer timestamp (CLOCK_MONOTONIC) as CAP_PROP_POS_MSEC.
# A value this close to time.monotonic() is trusted as that clock; anything else (0, a frame
# counter, another backend's clock) falls back to the time grab() returned.
_MONOTONIC_TOLERANCE_S = 5.0


def capture_time(pos_msec: float, grab_wall: float, grab_mono: float) -> float:
    """Wall-clock capture time of a grabbed webcam frame.

    Args:
        pos_msec: ``CAP_PROP_POS_MSEC`` after ``grab()``: on V4L2 the kernel's capture timestamp in
            milliseconds on the CLOCK_MONOTONIC clock (the moment the frame was filled), which is
            earlier than grab() returning by the driver's buffering.
        grab_wall: ``time.time()`` right after grab() returned.
        grab_mono: ``time.monotonic()`` at the same moment (Python's monotonic is CLOCK_MONOTONIC
            on Linux, the clock V4L2 stamps buffers with).

    Returns:
        Seconds on the ``time.time()`` clock: the driver timestamp moved from the monotonic to the
        wall clock by their offset at grab time, or ``grab_wall`` when the driver gives none.
    """
    driver_mono = pos_msec / 1000.0  # milliseconds -> seconds
    age = grab_mono - driver_mono
    if pos_msec > 0 and 0.0 <= age <= _MONOTONIC_TOLERANCE_S:
        return grab_wall - age
    return grab_wall


class WebcamSource(ThreadedSource):
    """A capture device opened by index, with capture-clock timestamps.

    Args:
        spec: the parsed address (index and optional capture mode).
        camera_id: the show config's camera name.
        stall_timeout_s: no frame for this long reopens the device.
        lossless: deliver every frame instead of newest-only.
    """

    kind = "webcam"

    def __init__(
        self, spec: WebcamSpec, camera_id: str, *, stall_timeout_s: float = 2.0, lossless: bool = False
    ) -> None:
        super().__init__(camera_id, spec.uri, lossless=lossless, stall_timeout_s=stall_timeout_s)
        self._spec = spec

    def _run(self) -> None:
        self._run_reconnecting(self._session)

    def _open(self) -> cv2.VideoCapture | None:
        spec = self._spec
        cap = cv2.VideoCapture(spec.index)
        if not cap.isOpened():
            cap.release()
            self._note_error(f"cannot open webcam {spec.index} (not connected, or in use by another program?)")
            return None
        if spec.width is not None:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, spec.width)
        if spec.height is not None:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, spec.height)
        if spec.fps is not None:
            cap.set(cv2.CAP_PROP_FPS, spec.fps)
        # Keep the driver queue short: a deep queue hands out old frames (latency).
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        return cap

    def _session(self) -> None:
        cap = self._open()
        if cap is None:
            return
        last_frame = time.monotonic()
        try:
            while not self._stop.is_set():
                ok = cap.grab()
                grab_wall, grab_mono = time.time(), time.monotonic()
                if ok:
                    ok, image = cap.retrieve()
                    if not ok or image is None:
                        self._count_decode_error("webcam frame could not be retrieved")
                    else:
                        t_capture = capture_time(cap.get(cv2.CAP_PROP_POS_MSEC), grab_wall, grab_mono)
                        bgr = _as_bgr(image)
                        if bgr is None:
                            self._count_decode_error(f"unexpected webcam frame shape {image.shape}")
                        elif not self._publish(bgr, t_capture):
                            return
                        else:
                            last_frame = grab_mono
                            continue
                silent = time.monotonic() - last_frame
                if silent > self._stall_timeout_s:
                    self._set_state(SourceState.STALLED, f"webcam {self._spec.index}: no frame for {silent:.1f} s")
                    return
                if not ok:
                    self._stop.wait(0.01)  # grab failed at once (device gone): do not spin
        finally:
            cap.release()


def _as_bgr(image: np.ndarray) -> np.ndarray | None:
    """OpenCV delivers BGR already; grey devices are expanded. Anything else is rejected (None)."""
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8:
        return np.ascontiguousarray(image)
    if image.ndim == 3 and image.shape[2] == 4 and image.dtype == np.uint8:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return None
