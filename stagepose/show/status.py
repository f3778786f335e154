"""The terminal status board: one line per camera, refreshed in place on a terminal.

On a terminal the block is redrawn where it stands, and while the board is entered (``with board:``) log
lines that go to a terminal print above it (the board is cleared, the line written, the board redrawn
below it), so neither overwrites the other. When output goes to a file or a pipe (a systemd journal, CI),
each refresh prints plain lines and logging is left alone, so the log keeps the history.
"""

from __future__ import annotations

import logging
import math
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Self, TextIO


@dataclass(frozen=True)
class CameraStatus:
    """What one status line shows."""

    camera_id: str
    performer: str
    source_state: str
    fps: float
    latency_p50_ms: float
    latency_p95_ms: float
    dropped: int
    reconnects: int
    tracked: bool
    error: str | None = None

    def line(self, backend: str) -> str:
        pose = "tracked" if self.tracked else "LOST"
        lat = "-" if math.isnan(self.latency_p50_ms) else f"{self.latency_p50_ms:5.1f}/{self.latency_p95_ms:5.1f}"
        text = (
            f"{self.camera_id:<10} {self.performer:<10} {self.source_state:<12} {self.fps:5.1f} fps  "
            f"lat p50/p95 {lat} ms  drops {self.dropped:<5} reconn {self.reconnects:<3} {pose:<7}  [{backend}]"
        )
        return text + (f"  ! {self.error}" if self.error else "")


def _is_tty(stream: object) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except ValueError:  # a closed stream
        return False


class StatusBoard:
    """Prints camera statuses at most every ``interval_s``; redraws in place on a TTY.

    Example:
        >>> with StatusBoard(sys.stderr) as board:        # log lines now print above the board
        ...     board.show(header, statuses, "onnxruntime cpu fp32")
    """

    def __init__(self, stream: TextIO, interval_s: float = 1.0, enabled: bool = True) -> None:
        self.stream = stream
        self.interval_s = interval_s
        self.enabled = enabled
        self._tty = _is_tty(stream)
        self._lines: list[str] = []  # what the board shows now
        self._drawn_lines = 0  # lines of the board on the screen above the cursor
        self._next = 0.0
        self._lock = threading.RLock()  # log lines come from the camera threads too
        self._wrapped: list[tuple[logging.StreamHandler, TextIO]] = []
        self._last_resort: logging.Handler | None = None

    def due(self, now: float | None = None) -> bool:
        return self.enabled and (time.monotonic() if now is None else now) >= self._next

    def show(self, header: str, statuses: Sequence[CameraStatus], backend: str, footer: Sequence[str] = ()) -> None:
        """Draw the board (call when ``due()``); ``footer`` lines go under the cameras (e.g. the 3D line)."""
        self._next = time.monotonic() + self.interval_s
        with self._lock:
            self._lines = [header, *(s.line(backend) for s in statuses), *footer]
            if self._tty and self._drawn_lines:
                self.stream.write(f"\x1b[{self._drawn_lines}F")  # cursor up to the board's first line
            self._draw()

    def _draw(self) -> None:
        for line in self._lines:
            self.stream.write(("\x1b[2K" if self._tty else "") + line + "\n")
        self.stream.flush()
        self._drawn_lines = len(self._lines)

    def write_above(self, stream: TextIO, text: str) -> None:
        """Write ``text`` to ``stream`` (a terminal) above the board: clear the board, write, redraw it below."""
        with self._lock:
            if not (self._tty and self._drawn_lines):
                stream.write(text)
                return
            self.stream.write(f"\x1b[{self._drawn_lines}F\x1b[J")  # up to the board's first line, clear below
            self.stream.flush()
            self._drawn_lines = 0
            stream.write(text)
            if not text.endswith("\n"):
                stream.write("\n")
            stream.flush()
            self._draw()

    def __enter__(self) -> Self:
        """On a terminal, route the log handlers that write to a terminal through `write_above`."""
        if not (self._tty and self.enabled):
            return self
        root = logging.getLogger()
        for handler in root.handlers:
            if type(handler) is logging.StreamHandler and _is_tty(handler.stream):
                self._wrapped.append((handler, handler.stream))
                handler.setStream(_AboveBoard(self, handler.stream))  # type: ignore[arg-type]
        if not root.handlers and logging.lastResort is not None and _is_tty(sys.stderr):
            # logging not configured (a library caller): warnings go to stderr through logging.lastResort
            self._last_resort = logging.lastResort
            logging.lastResort = logging.StreamHandler(_AboveBoard(self, sys.stderr))  # type: ignore[arg-type]
            logging.lastResort.setLevel(self._last_resort.level)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Give the log handlers their streams back; the board's last state stays on the screen."""
        for handler, stream in self._wrapped:
            handler.setStream(stream)
        self._wrapped.clear()
        if self._last_resort is not None:
            logging.lastResort, self._last_resort = self._last_resort, None


class _AboveBoard:
    """A log handler's stream that writes through `StatusBoard.write_above` (``logging.StreamHandler`` writes
    each record, terminator included, in one ``write``)."""

    def __init__(self, board: StatusBoard, stream: TextIO) -> None:
        self._board = board
        self._stream = stream

    def write(self, text: str) -> int:
        self._board.write_above(self._stream, text)
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return True
