"""The terminal status board: one line per camera, refreshed in place on a terminal.

On a terminal the block is redrawn where it stands; when output goes to a file or a pipe (a systemd
journal, CI), each refresh prints plain lines, so the log keeps the history.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO


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


class StatusBoard:
    """Prints camera statuses at most every ``interval_s``; redraws in place on a TTY."""

    def __init__(self, stream: TextIO, interval_s: float = 1.0, enabled: bool = True) -> None:
        self.stream = stream
        self.interval_s = interval_s
        self.enabled = enabled
        self._tty = bool(getattr(stream, "isatty", lambda: False)())
        self._drawn_lines = 0
        self._next = 0.0

    def due(self, now: float | None = None) -> bool:
        return self.enabled and (time.monotonic() if now is None else now) >= self._next

    def show(self, header: str, statuses: Sequence[CameraStatus], backend: str) -> None:
        """Draw the board (call when ``due()``)."""
        self._next = time.monotonic() + self.interval_s
        lines = [header, *(s.line(backend) for s in statuses)]
        if self._tty and self._drawn_lines:
            self.stream.write(f"\x1b[{self._drawn_lines}F")  # cursor up to the board's first line
        for line in lines:
            self.stream.write(("\x1b[2K" if self._tty else "") + line + "\n")
        self.stream.flush()
        self._drawn_lines = len(lines)
