"""The unit every source delivers: one decoded image with the time it was captured."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Frame:
    """One decoded camera image.

    Attributes:
        image: (H, W, 3) uint8 array, BGR channel order (OpenCV's), C-contiguous. Sources hand over
            a fresh array per frame and never write to it again, so a consumer may keep it.
        t_capture: capture time in seconds on the ``time.time()`` clock (Unix epoch). It comes
            from the stream itself (RTSP/file PTS, NDI timestamp, webcam driver timestamp), anchored to
            the wall clock, so that the Kalman filter's dt reflects when frames were taken rather
            than when they were decoded, and latency can be measured up to the OSC send.
        camera_id: the show config's name for the camera.
        seq: 0-based number of this frame among all frames the source decoded (delivered or not),
            so a gap in ``seq`` is exactly the number of frames dropped in between.
    """

    image: np.ndarray
    t_capture: float
    camera_id: str
    seq: int

    def __post_init__(self) -> None:
        img = self.image
        if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            desc = f"{img.dtype} array of shape {img.shape}" if isinstance(img, np.ndarray) else type(img)
            raise ValueError(f"Frame.image must be an (H, W, 3) uint8 BGR array, got {desc}")
        if self.seq < 0:
            raise ValueError(f"Frame.seq must be >= 0, got {self.seq}")

    @property
    def width(self) -> int:
        """Image width in pixels."""
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        """Image height in pixels."""
        return int(self.image.shape[0])
