"""The keypoint record: every processed frame, appended as one JSON line and flushed often.

JSON Lines survive a crash: at most the line being written is lost, and the file is flushed and
fsynced at least every ``flush_interval_s`` so a power cut loses at most that much. Each line holds
the time, camera, performer, raw and smoothed joints with confidences, so rehearsal footage can be
re-analysed and a show's output audited later.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import numpy as np

from stagepose.errors import ConfigError
from stagepose.skeleton import JOINT_NAMES


@dataclass(frozen=True)
class RecordConfig:
    """Where the record goes (None: no record) and how often it is flushed to disk."""

    path: str | None = None
    flush_interval_s: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.flush_interval_s <= 1.0:
            raise ValueError(f"flush_interval_s must be in (0, 1], got {self.flush_interval_s}")


def _points(values: np.ndarray | None, digits: int = 2) -> list[list[float | None]] | None:
    """(16, 2) -> nested lists, NaN as null (JSON has no NaN)."""
    if values is None:
        return None
    return [[None if not math.isfinite(v) else round(float(v), digits) for v in row] for row in values]


def _scalars(values: np.ndarray | None, digits: int = 3) -> list[float | None] | None:
    if values is None:
        return None
    return [None if not math.isfinite(v) else round(float(v), digits) for v in values]


class KeypointRecorder:
    """Append-only JSON Lines writer; a context manager that closes (and flushes) on exit."""

    def __init__(self, path: str | Path, flush_interval_s: float = 1.0, metadata: dict[str, Any] | None = None):
        self.path = Path(path)
        self.flush_interval_s = flush_interval_s
        self._metadata = metadata or {}
        self._handle: IO[str] | None = None
        self._last_flush = 0.0
        self.lines_written = 0

    def __enter__(self) -> KeypointRecorder:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(self.path, "a", encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"keypoint record {self.path}: cannot open for writing: {exc}") from None
        self._write({"type": "header", "joints": list(JOINT_NAMES), "opened": time.time(), **self._metadata})
        return self

    def write_frame(
        self,
        *,
        t_capture: float,
        camera: str,
        performer: str,
        seq: int,
        status: str,
        raw: np.ndarray,
        raw_confidence: np.ndarray,
        smoothed: np.ndarray | None,
        smoothed_confidence: np.ndarray | None = None,
        stage: tuple[float, float] | None = None,
        latency_ms: float | None = None,
    ) -> None:
        """Append one frame of one performer: joints (16, 2) image pixels, confidences (16,)."""
        self._write(
            {
                "type": "frame",
                "t": round(t_capture, 6),
                "camera": camera,
                "performer": performer,
                "seq": seq,
                "status": status,
                "raw": _points(raw),
                "raw_conf": _scalars(raw_confidence),
                "smoothed": _points(smoothed),
                "smoothed_conf": _scalars(smoothed_confidence),
                "stage": None if stage is None else [round(float(stage[0]), 4), round(float(stage[1]), 4)],
                "latency_ms": None if latency_ms is None else round(latency_ms, 2),
            }
        )

    def write_event(self, kind: str, **fields: Any) -> None:
        """Append a non-frame event (camera lost, reconnect, start, stop) with the wall time."""
        self._write({"type": kind, "t": round(time.time(), 6), **fields})

    def _write(self, record: dict[str, Any]) -> None:
        if self._handle is None:
            raise RuntimeError("KeypointRecorder used outside its `with` block")
        self._handle.write(json.dumps(record, separators=(",", ":")) + "\n")
        self.lines_written += 1
        now = time.monotonic()
        if now - self._last_flush >= self.flush_interval_s:
            self.flush()
            self._last_flush = now

    def flush(self) -> None:
        """Push buffered lines to the disk (not just the OS cache)."""
        if self._handle is not None:
            self._handle.flush()
            os.fsync(self._handle.fileno())

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._handle is not None:
            self.flush()
            self._handle.close()
            self._handle = None


def read_record(path: str | Path) -> list[dict[str, Any]]:
    """All complete lines of a record (a torn last line from a crash is ignored)."""
    out = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out
