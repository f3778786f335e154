"""A one-frame mailbox between a decoding thread and the live loop.

The live loop wants the newest image of every camera, never a backlog: a queue would add one frame
period of latency per queued frame. So the decoder overwrites the slot and counts the frame it
replaced as dropped. Offline replay is the opposite case (every frame matters, time does not), so
the slot also has a lossless mode where the decoder waits until the consumer took the previous
frame.
"""

from __future__ import annotations

import threading

from stagepose.show.sources.frame import Frame


class LatestFrameSlot:
    """Thread-safe holder of at most one untaken frame.

    Args:
        lossless: if True, `put` blocks until the previous frame was taken (nothing is dropped);
            if False, `put` replaces an untaken frame and counts it in `dropped`.
    """

    def __init__(self, lossless: bool = False) -> None:
        self._lossless = lossless
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self._closed = False
        self._dropped = 0

    @property
    def lossless(self) -> bool:
        """Whether `put` waits for the consumer instead of dropping."""
        return self._lossless

    @property
    def dropped(self) -> int:
        """Frames replaced before the consumer took them."""
        with self._cond:
            return self._dropped

    @property
    def closed(self) -> bool:
        """True once the producer said no more frames will come."""
        with self._cond:
            return self._closed

    def put(self, frame: Frame) -> bool:
        """Offer a frame (producer side).

        Returns:
            False if the slot was closed (the frame was not stored), else True.
        """
        with self._cond:
            if self._lossless:
                # Wait for the consumer; `abandon` wakes us when nobody will ever take it.
                self._cond.wait_for(lambda: self._frame is None or self._closed)
            if self._closed:
                return False
            if self._frame is not None:
                self._dropped += 1
            self._frame = frame
            self._cond.notify_all()
            return True

    def take(self, timeout: float | None = 0.0) -> Frame | None:
        """Take the newest untaken frame (consumer side).

        Args:
            timeout: seconds to wait for a frame; 0 polls, None waits until a frame or `close`.

        Returns:
            The frame, or None if none came in time or the slot is closed and empty.
        """
        with self._cond:
            if self._frame is None and not self._closed and timeout != 0:
                self._cond.wait_for(lambda: self._frame is not None or self._closed, timeout)
            frame, self._frame = self._frame, None
            if frame is not None:
                self._cond.notify_all()
            return frame

    def close(self) -> None:
        """Producer side: no more frames. A frame already in the slot can still be taken."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def abandon(self) -> None:
        """Consumer side: nobody will take frames any more; wake a producer blocked in `put`."""
        with self._cond:
            self._closed = True
            self._frame = None
            self._cond.notify_all()
