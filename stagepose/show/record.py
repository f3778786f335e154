"""The keypoint record: every processed frame, appended as one JSON line and flushed often.

JSON Lines survive a crash: at most the line being written is lost, and the file is fsynced at
least every ``flush_interval_s`` so a power cut loses at most that much. The record is a secondary
output: a write error (disk full) is reported and retried, never raised into the show, and the
file keeps whole lines only. Long shows rotate it by size or age (``RecordConfig``). Each line holds
the time, camera, performer, raw and smoothed joints with confidences, so rehearsal footage can be
re-analysed and a show's output audited later.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import math
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import numpy as np

from stagepose.errors import ConfigError
from stagepose.skeleton import JOINT_NAMES

if TYPE_CHECKING:
    from stagepose.show.result import PerformerResult

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecordConfig:
    """Where the record goes (None: no record), how often it is flushed, when it rotates.

    Attributes:
        path: the JSON Lines file. With rotation, parts are written next to it as
            ``<stem>.0001<suffix>``, ``<stem>.0002<suffix>`` ... (numbering continues after the parts
            already there, so a restarted show never appends to an old part); each part starts with
            its own header line.
        flush_interval_s: flush and fsync at least this often (a power cut loses at most this much).
        rotate_mb: start a new part once the current one holds this many megabytes (None: never).
            A camera-hour is about 100 MB.
        rotate_minutes: start a new part once the current one is this old (None: never).
        retry_interval_s: after a write error (disk full, file-size limit) the record is a secondary
            output: lines are dropped and counted, and writing is tried again at most this often.
    """

    path: str | None = None
    flush_interval_s: float = 1.0
    rotate_mb: float | None = None
    rotate_minutes: float | None = None
    retry_interval_s: float = 5.0

    def __post_init__(self) -> None:
        if not 0 < self.flush_interval_s <= 1.0:
            raise ValueError(f"flush_interval_s must be in (0, 1], got {self.flush_interval_s}")
        if self.rotate_mb is not None and not (math.isfinite(self.rotate_mb) and 0.001 <= self.rotate_mb <= 1e6):
            raise ValueError(f"rotate_mb must be in 0.001..1000000 (or null: never), got {self.rotate_mb}")
        if self.rotate_minutes is not None and not (
            math.isfinite(self.rotate_minutes) and 0.01 <= self.rotate_minutes <= 10_080
        ):
            raise ValueError(f"rotate_minutes must be in 0.01..10080 (or null: never), got {self.rotate_minutes}")
        if not (math.isfinite(self.retry_interval_s) and 0.1 <= self.retry_interval_s <= 600):
            raise ValueError(f"retry_interval_s must be in 0.1..600, got {self.retry_interval_s}")

    @property
    def rotates(self) -> bool:
        return self.rotate_mb is not None or self.rotate_minutes is not None


def _rounded(values: np.ndarray, digits: int) -> list[Any]:
    """Rounded nested lists with NaN/inf as null (JSON has no NaN), in one numpy pass."""
    array = np.round(np.asarray(values, dtype=np.float64), digits)
    out = array.tolist()
    finite = np.isfinite(array)
    if not finite.all():
        for index in zip(*np.nonzero(~finite)):
            *outer, last = index
            row = out
            for i in outer:
                row = row[i]
            row[last] = None
    return out


def _points(values: np.ndarray | None, digits: int = 2) -> list[list[float | None]] | None:
    """(16, 2) -> nested lists, NaN as null."""
    return None if values is None else _rounded(values, digits)


def _scalars(values: np.ndarray | None, digits: int = 3) -> list[float | None] | None:
    """(16,) -> a list, NaN as null."""
    return None if values is None else _rounded(values, digits)


class KeypointRecorder:
    """Append-only JSON Lines writer; a context manager that closes (and flushes) on exit.

    Lines go to the file with one unbuffered write each, so a write that fails (disk full, file-size
    limit) is cut back to the last whole line and the file stays valid JSON Lines. After a failure
    the recorder never raises: it drops lines (``lines_lost``), reports (``error``, the log) and tries
    again every ``retry_interval_s``; when writing works again it notes a ``record_resumed`` event.

    Args:
        path: the record file (with rotation: the name its parts are derived from, see `RecordConfig`).
        flush_interval_s: fsync at least this often.
        metadata: extra fields of every header line.
        rotate_bytes, rotate_s: start a new part at this size or age (None: never).
        retry_interval_s: after a write error, the least time between two tries.
        clock: monotonic seconds (tests pass a fake one).
    """

    def __init__(
        self,
        path: str | Path,
        flush_interval_s: float = 1.0,
        metadata: dict[str, Any] | None = None,
        *,
        rotate_bytes: int | None = None,
        rotate_s: float | None = None,
        retry_interval_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.base_path = Path(path)
        self.path = self.base_path
        self.flush_interval_s = flush_interval_s
        self._metadata = metadata or {}
        self._rotate_bytes = rotate_bytes
        self._rotate_s = rotate_s
        self._retry_interval_s = retry_interval_s
        self._clock = clock
        self._entered = False
        self._fd: int | None = None
        self._size = 0  # bytes of whole lines in the current part
        self._opened_at = 0.0
        self._part = 0
        self._last_flush = 0.0
        self._next_retry = 0.0
        self._last_error_log = -math.inf
        self.paths: list[Path] = []
        self.lines_written = 0
        self.lines_lost = 0
        self.write_errors = 0
        self.error: str | None = None  # the current write failure, None while writing works

    @classmethod
    def from_config(cls, path: str | Path, config: RecordConfig, metadata: dict[str, Any] | None = None) -> Self:
        """A recorder with the flush, rotation and retry settings of ``config`` (``path`` resolved)."""
        return cls(
            path,
            config.flush_interval_s,
            metadata,
            rotate_bytes=None if config.rotate_mb is None else int(config.rotate_mb * 1e6),
            rotate_s=None if config.rotate_minutes is None else config.rotate_minutes * 60.0,
            retry_interval_s=config.retry_interval_s,
        )

    @property
    def rotates(self) -> bool:
        return self._rotate_bytes is not None or self._rotate_s is not None

    def __enter__(self) -> Self:
        try:
            self.base_path.parent.mkdir(parents=True, exist_ok=True)
            if self.rotates:
                self._part = _last_part(self.base_path)
            self._open_part()
        except OSError as exc:
            raise ConfigError(f"keypoint record {self.path}: cannot open for writing: {exc}") from None
        self._entered = True
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
        t_pose: float | None = None,
        occluded: np.ndarray | None = None,
    ) -> None:
        """Append one frame of one performer: joints (16, 2) image pixels, confidences (16,).

        ``t`` is the capture time; ``t_pose`` the time ``smoothed`` and ``stage`` are for (the send time
        when forecast; default: the capture time). ``occluded`` (written as the list of joint indexes) are
        the joints found on another performer in front, whose ``raw_conf`` is 0.
        """
        self._write(
            {
                "type": "frame",
                "t": round(t_capture, 6),
                "t_pose": round(t_capture if t_pose is None else t_pose, 6),
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
                "occluded": [] if occluded is None else [int(j) for j in np.flatnonzero(occluded)],
            }
        )

    def write_result(self, result: PerformerResult, latency_ms: float | None = None) -> None:
        """Append one pipeline result as a frame line: what was (or would be) sent, and the raw pose."""
        self.write_frame(
            t_capture=result.t_capture,
            camera=result.camera_id,
            performer=result.performer,
            seq=result.frame_seq,
            status=result.status,
            raw=result.raw_joints,
            raw_confidence=result.raw_confidence,
            smoothed=result.joints,
            smoothed_confidence=result.confidence,
            stage=result.floor,
            latency_ms=latency_ms,
            t_pose=result.t,
            occluded=result.occluded,
        )

    def write_pose3d(
        self,
        *,
        t_capture: float,
        performer: str,
        seq: int,
        joints3d: np.ndarray,
        confidence: np.ndarray,
        raw3d: np.ndarray | None = None,
        raw_confidence: np.ndarray | None = None,
        views: list[list[str]] | None = None,
        reprojection_px: np.ndarray | None = None,
        swapped: list[str] | None = None,
        latency_ms: float | None = None,
        step_cameras: list[str] | None = None,
    ) -> None:
        """Append one performer's 3D pose of one time step (a multiview show).

        Args:
            t_capture: capture time, Unix seconds.
            performer: the performer's name.
            seq: the time step.
            joints3d: (16, 3) smoothed joints, metres in the calibration's world frame, MPII order (NaN: none
                yet); written with ``confidence`` (16,) as ``joints3d``: 16 x [x, y, z, conf] (null coordinates
                where missing).
            raw3d, raw_confidence: the triangulated joints before smoothing (NaN where not triangulated).
            views: per joint, the cameras it was triangulated from.
            reprojection_px: (16,) RMS reprojection error over the views used, pixels (NaN: not triangulated).
            swapped: cameras whose pose was read with left and right exchanged.
            latency_ms: live: capture (the step's time) to OSC send, milliseconds.
            step_cameras: live: the cameras whose frames formed the time step (the others were late).
        """

        def rows(points: np.ndarray, conf: np.ndarray) -> list[list[float | None]]:
            coords = _rounded(np.asarray(points, dtype=np.float64), 4)
            return [[*xyz, round(float(c), 3) if math.isfinite(c) else 0.0] for xyz, c in zip(coords, conf)]

        used = sorted({c for cams in views or [] for c in cams})
        self._write(
            {
                "type": "pose3d",
                "t_capture": round(t_capture, 6),
                "performer": performer,
                "seq": seq,
                "joints3d": rows(joints3d, confidence),
                "raw3d": None if raw3d is None or raw_confidence is None else rows(raw3d, raw_confidence),
                "views": views,
                "views_used": used,
                "reprojection_px": _scalars(reprojection_px, 2),
                "swapped": swapped or [],
                **({} if latency_ms is None else {"latency_ms": round(latency_ms, 2)}),
                **({} if step_cameras is None else {"step_cameras": step_cameras}),
            }
        )

    def write_event(self, kind: str, **fields: Any) -> None:
        """Append a non-frame event (camera lost, reconnect, start, stop) with the wall time."""
        self._write({"type": kind, "t": round(time.time(), 6), **fields})

    def _write(self, record: dict[str, Any]) -> None:
        if not self._entered:
            raise RuntimeError("KeypointRecorder used outside its `with` block")
        now = self._clock()
        if self.error is not None:
            if now < self._next_retry:
                self.lines_lost += 1
                return
            self._next_retry = now + self._retry_interval_s
        try:
            if self._fd is None or self._rotation_due(now):
                self._open_part()
            if self.error is not None:
                lost = self.lines_lost
                self._append({"type": "record_resumed", "t": round(time.time(), 6), "lines_lost": lost,
                              "after_error": self.error})  # fmt: skip
                log.warning("keypoint record %s: writing again (%d lines lost)", self.path, lost)
                self.error = None
            self._append(record)
            if now - self._last_flush >= self.flush_interval_s:
                os.fsync(self._fd)  # type: ignore[arg-type]
                self._last_flush = now
        except OSError as exc:
            self._failed(exc, now)

    def _append(self, record: dict[str, Any]) -> None:
        """Write one whole line or nothing: a partial write is cut back off before raising."""
        if self._fd is None:
            raise OSError(f"{self.path} is not open")
        data = (json.dumps(record, separators=(",", ":")) + "\n").encode("utf-8")
        done = 0
        try:
            while done < len(data):
                n = os.write(self._fd, data[done:])
                if n <= 0:
                    raise OSError(errno.ENOSPC, "no byte written")
                done += n
        except OSError:
            if done:
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, self._size)  # drop the torn line; keep whole lines only
            raise
        self._size += len(data)
        self.lines_written += 1

    def _failed(self, exc: OSError, now: float) -> None:
        self.write_errors += 1
        self.lines_lost += 1
        first = self.error is None
        self.error = f"{type(exc).__name__} {exc.errno}: {exc.strerror or exc}" if exc.errno else str(exc)
        self._next_retry = now + self._retry_interval_s
        if first or now - self._last_error_log >= 60.0:
            log.error(
                "keypoint record %s: write failed (%s); the show goes on without it, retrying every %.0f s",
                self.path, self.error, self._retry_interval_s,
            )  # fmt: skip
            self._last_error_log = now

    def _rotation_due(self, now: float) -> bool:
        return (self._rotate_bytes is not None and self._size >= self._rotate_bytes) or (
            self._rotate_s is not None and now - self._opened_at >= self._rotate_s
        )

    def _open_part(self) -> None:
        """Open the record (or, with rotation, its next part) and write the header line."""
        self._close_fd()
        if self.rotates:
            self._part += 1
            self.path = part_path(self.base_path, self._part)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._size = os.fstat(self._fd).st_size
        self._opened_at = self._clock()
        self.paths.append(self.path)
        header = {"type": "header", "joints": list(JOINT_NAMES), "opened": time.time(), **self._metadata}
        if self.rotates:
            header["part"] = self._part
        try:
            self._append(header)
        except OSError:  # the next try opens the same file again and writes its header first
            self._close_fd()
            self.paths.pop()
            self._part -= 1 if self.rotates else 0
            raise

    def _close_fd(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                os.fsync(fd)
            os.close(fd)

    def flush(self) -> None:
        """Push written lines to the disk (not just the OS cache); errors are reported, not raised."""
        if self._fd is not None:
            try:
                os.fsync(self._fd)
            except OSError as exc:
                self._failed(exc, self._clock())

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._entered = False
        self._close_fd()


def part_path(base: Path, part: int) -> Path:
    """The file of rotation part ``part`` (1-based): ``keypoints.jsonl`` -> ``keypoints.0003.jsonl``."""
    return base.with_name(f"{base.stem}.{part:04d}{base.suffix}")


def first_file(config: RecordConfig, base: Path) -> Path:
    """The file a show starting now writes first: ``base``, or with rotation the part after the last one."""
    return part_path(base, _last_part(base) + 1) if config.rotates else base


def _last_part(base: Path) -> int:
    """The highest part number already next to ``base`` (0 if none)."""
    pattern = re.compile(re.escape(base.stem) + r"\.(\d{4,})" + re.escape(base.suffix) + "$")
    numbers = [int(m.group(1)) for f in base.parent.glob(f"{base.stem}.*") if (m := pattern.match(f.name))]
    return max(numbers, default=0)


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
