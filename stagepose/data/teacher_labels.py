"""Offline teacher labels: keypoints a strong model predicted once, stored in a file, read at training time.

They let any model teach (eq. 7) without running beside the training loop: ``stagepose data label``
writes the file, ``teacher.labels`` in an experiment config reads it, and each sample renders the
keypoints as teacher heatmaps in its own augmented crop (``stagepose.data.sample``).

The file is JSON (``.json``; ``.json.gz`` is gzip-compressed JSON), one label per line so that a
technician can read and diff it::

    {"format": "stagepose-teacher-labels", "version": 1,
     "joints": ["r_ankle", "r_knee", ..., "l_wrist"],              # MPII order, checked on reading
     "teacher": {"name": "mediapipe-pose-full", "software": "mediapipe 0.10.21", "mode": "both"},
     "data": ["lspet:../shared/data/lspet"],                         # the specs that were labelled
     "labels": {
      "lspet:im00001.jpg": [[101.2, 71.0, 0.99], ..., null],
      "lspet:im00007.jpg": null,
      ...}}

``labels`` maps a data entry's ``source_id`` (``lspet:im00001.jpg``, ``frames:cam1_t000012.000.jpg#0``,
``coco:frame.jpg#17``: kind, file name and person, so it matches wherever the data folder lies) to 16
joints ``[x, y, confidence]`` in ORIGINAL image pixels, confidence 0..1, or ``null`` for a joint the
teacher has no opinion on. A ``null`` entry means the teacher looked and found nobody; an entry that is
missing was never labelled. Either way that sample gets no teacher term (weight 0).
"""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from stagepose.errors import DataError
from stagepose.fileio import atomic_write_bytes
from stagepose.skeleton import JOINT_NAMES, NUM_JOINTS

FORMAT = "stagepose-teacher-labels"
VERSION = 1


@dataclass(frozen=True)
class TeacherInfo:
    """Which model made the labels and how it was run (a resumed labelling run must match it).

    Attributes:
        name: the model, e.g. ``mediapipe-pose-full``.
        software: package and version, e.g. ``mediapipe 0.10.21``.
        mode: how it saw each entry, e.g. ``crop``, ``image`` or ``both``.
    """

    name: str
    software: str
    mode: str

    def __post_init__(self) -> None:
        for key in ("name", "software", "mode"):
            if not isinstance(getattr(self, key), str) or not getattr(self, key):
                raise ValueError(f"teacher.{key} must be a non-empty string")


def no_opinion() -> np.ndarray:
    """(16, 3) keypoints with no opinion on any joint: NaN coordinates, confidence 0."""
    out = np.full((NUM_JOINTS, 3), np.nan)
    out[:, 2] = 0.0
    return out


@dataclass(frozen=True)
class TeacherLabels:
    """The contents of a label file (see the module docstring).

    Attributes:
        teacher: the model that made them.
        data: the data set specs that were labelled.
        labels: source_id -> (16, 3) float64 [x, y, confidence] (NaN / 0 where no opinion), or None
            where the teacher found nobody.
        source: the file it was read from, for messages ('' for labels made in memory).
    """

    teacher: TeacherInfo
    data: tuple[str, ...] = ()
    labels: Mapping[str, np.ndarray | None] = field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        for key, value in self.labels.items():
            if value is not None and np.shape(value) != (NUM_JOINTS, 3):
                raise ValueError(f"label {key!r} must be (16, 3) [x, y, confidence], got shape {np.shape(value)}")
        object.__setattr__(self, "labels", MappingProxyType(dict(self.labels)))

    def __len__(self) -> int:
        return len(self.labels)

    def keypoints(self, source_id: str) -> np.ndarray | None:
        """(16, 3) [x, y, confidence] of an entry, or None where it has no label with any confidence."""
        value = self.labels.get(source_id)
        if value is None or not (value[:, 2] > 0).any():
            return None
        return value

    def merged(self, new: Mapping[str, np.ndarray | None], data: Iterable[str] = ()) -> TeacherLabels:
        """These labels plus ``new`` ones (which win), with ``data`` specs added to the list."""
        specs = tuple(dict.fromkeys((*self.data, *data)))
        return TeacherLabels(teacher=self.teacher, data=specs, labels={**self.labels, **new}, source=self.source)


# ------------------------------------------------------------------------------------------ writing


def _joint_text(row: np.ndarray) -> str:
    x, y, c = (float(v) for v in row)
    if not (math.isfinite(x) and math.isfinite(y) and math.isfinite(c)):
        return "null"
    return f"[{round(x, 1):g},{round(y, 1):g},{round(min(max(c, 0.0), 1.0), 2):g}]"


def _label_text(value: np.ndarray | None) -> str:
    return "null" if value is None else "[" + ",".join(_joint_text(row) for row in value) + "]"


def labels_to_text(labels: TeacherLabels) -> str:
    """The file's JSON text: a header, then one label per line (0.1 px, confidence to 0.01)."""
    header = {"format": FORMAT, "version": VERSION, "joints": list(JOINT_NAMES),
              "teacher": {"name": labels.teacher.name, "software": labels.teacher.software,
                          "mode": labels.teacher.mode},
              "data": list(labels.data)}  # fmt: skip
    lines = [f"{json.dumps(key)}: {_label_text(value)}" for key, value in sorted(labels.labels.items())]
    head = json.dumps(header, indent=1)[:-2]  # drop the closing "\n}"
    return head + ',\n "labels": {\n' + ",\n".join(lines) + "\n }\n}\n"


def write_labels(path: str | Path, labels: TeacherLabels) -> Path:
    """Write ``labels`` to ``path`` (gzip when it ends in ``.gz``) through a temporary file and a rename,
    so an interruption never leaves half a file.

    Raises:
        DataError: the folder cannot be written.
    """
    path = Path(path)
    data = labels_to_text(labels).encode("utf-8")
    if path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    try:
        atomic_write_bytes(path, data)
    except OSError as exc:
        raise DataError(f"{path}: cannot write the label file ({exc})") from None
    return path


# ------------------------------------------------------------------------------------------ reading


def _fail(path: Path, where: str, what: str) -> DataError:
    return DataError(f"{path}: {where}: {what}; make the file with `stagepose data label` (format {FORMAT} "
                     f"version {VERSION}, see stagepose/data/teacher_labels.py)")  # fmt: skip


def _is_joint(value: Any) -> bool:
    """Whether ``value`` is [x, y, c] of three finite numbers (booleans are not numbers here)."""
    return (
        isinstance(value, list)
        and len(value) == 3
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    )


def _parse_label(path: Path, key: str, value: Any) -> np.ndarray | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != NUM_JOINTS:
        raise _fail(path, f"label {key!r}", f"expected null or a list of 16 joints, got {str(value)[:60]}")
    out = no_opinion()
    for k, joint in enumerate(value):
        if joint is None:
            continue
        if not _is_joint(joint) or not 0.0 <= joint[2] <= 1.0:
            raise _fail(path, f"label {key!r} joint {k} ({JOINT_NAMES[k]})",
                        f"expected null or [x, y, confidence 0..1], got {joint!r}")  # fmt: skip
        out[k] = joint
    return out


def _read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: label file not found; make it with "
                        f"`stagepose data label --data SPEC --out {path}`") from None  # fmt: skip
    except OSError as exc:
        raise DataError(f"{path}: cannot read the label file ({exc})") from None
    try:
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        return raw.decode("utf-8")
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable label file ({exc})") from None


def read_labels(path: str | Path) -> TeacherLabels:
    """Read and check a label file (every field; see the module docstring).

    Raises:
        DataError: missing or unreadable file, bad JSON (line and column), another format or version,
            another joint order, or a malformed label (the message names its key and joint).
    """
    path = Path(path)
    try:
        data = json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise _fail(path, "format", f'not a teacher label file (expected "format": "{FORMAT}")')
    if data.get("version") != VERSION:
        raise _fail(path, "version", f"version {data.get('version')!r} is not supported (this stagepose reads "
                    f"{VERSION})")  # fmt: skip
    if data.get("joints") != list(JOINT_NAMES):
        raise _fail(path, "joints", f"expected MPII's 16 joints in order ({', '.join(JOINT_NAMES)})")
    teacher = data.get("teacher")
    try:
        info = TeacherInfo(**teacher) if isinstance(teacher, dict) else None
    except (TypeError, ValueError) as exc:
        raise _fail(path, "teacher", f"{exc}") from None
    if info is None:
        raise _fail(path, "teacher", 'expected {"name": ..., "software": ..., "mode": ...}')
    specs = data.get("data", [])
    if not isinstance(specs, list) or not all(isinstance(s, str) for s in specs):
        raise _fail(path, "data", "expected a list of data set specs")
    raw_labels = data.get("labels")
    if not isinstance(raw_labels, dict):
        raise _fail(path, "labels", "expected an object {source_id: [16 joints] or null}")
    labels = {str(key): _parse_label(path, str(key), value) for key, value in raw_labels.items()}
    return TeacherLabels(teacher=info, data=tuple(specs), labels=labels, source=str(path))
