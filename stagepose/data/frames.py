"""Unlabelled venue footage: a folder of frames, for distillation (only the teacher teaches there).

Samples have ``labelled=False`` and zero targets and weights. Without boxes, each frame gives one sample:
the largest box of the model input's aspect ratio centred in the frame (a centre crop, nothing
stretched). With a boxes file, each box gives one sample (grown by ``transforms.CROP_MARGIN``); the file
is a JSON object from frame file name (relative to the folder) to a list of person boxes
``[x, y, w, h]`` in pixels, for example the output of a person detector run over the frames::

    {"rehearsal_t000012.500.jpg": [[812, 140, 220, 610]], "rehearsal_t000013.000.jpg": []}

Frames missing from the boxes file are skipped (and counted); an empty list means nobody is there.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stagepose.data.entries import DataSummary, ImageProber, PersonEntry, Selection, require_samples, resolve_indices
from stagepose.data.jsonfile import read_json
from stagepose.errors import DataError
from stagepose.skeleton import NUM_JOINTS
from stagepose.transforms import CROP_MARGIN

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def list_frames(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name.

    Raises:
        DataError: the folder does not exist.
    """
    if not folder.is_dir():
        raise DataError(f"{folder}: frame folder not found (make one with stagepose data extract-frames)")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def read_boxes(path: Path) -> dict[str, list[tuple[float, float, float, float]]]:
    """The boxes file (see module docstring).

    Raises:
        DataError: not a mapping of names to lists of [x, y, w, h].
    """
    data = read_json(path, "boxes file")
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object {{frame name: [[x, y, w, h], ...]}}")
    out: dict[str, list[tuple[float, float, float, float]]] = {}
    for name, boxes in data.items():
        if not isinstance(boxes, list) or not all(
            isinstance(b, list) and len(b) == 4 and all(isinstance(v, (int, float)) for v in b) for b in boxes
        ):
            raise DataError(f"{path}: entry {name!r} must be a list of [x, y, w, h] boxes, got {boxes!r}")
        out[name] = [tuple(float(v) for v in b) for b in boxes]  # type: ignore[misc]
    return out


def centre_box(size: tuple[int, int], aspect: float) -> tuple[tuple[float, float], tuple[float, float]]:
    """The largest (w, h) box of ``aspect`` = w / h centred in an image of ``size`` (w, h)."""
    width, height = size
    w = min(float(width), height * aspect)
    return ((width - 1) / 2.0, (height - 1) / 2.0), (w, w / aspect)


def load_frames(
    folder: Path,
    *,
    aspect: float = 1.0,
    boxes: Path | None = None,
    indices: Selection = None,
    source: str = "",
) -> tuple[list[PersonEntry], DataSummary]:
    """Unlabelled entries of a frame folder.

    Args:
        folder: the frames (jpg, png, bmp; not recursive).
        aspect: model input width / height, for the centre crop.
        boxes: optional boxes file.
        indices: which frames (0-based, sorted by name): a range, a function of the frame count, or
            None for all.
        source: spec text for the summary.

    Raises:
        DataError: missing folder or boxes file, or no usable frame.
    """
    folder = Path(folder)
    frames = list_frames(folder)
    indices = resolve_indices(indices, len(frames), str(folder))
    box_map = read_boxes(boxes) if boxes is not None else None
    prober = ImageProber()
    summary = DataSummary(source=source or f"frames:{folder}", entries=len(indices))
    summary.notes.append("unlabelled: " + (f"person boxes from {boxes}" if box_map is not None
                                           else "whole frames, centre-cropped to the input aspect"))  # fmt: skip
    nan_joints = np.full((NUM_JOINTS, 2), np.nan)
    entries: list[PersonEntry] = []
    for i in indices:
        path = frames[i]
        where = f"{path}"
        size = prober.probe(path)
        if isinstance(size, str):
            summary.skip(size, where)
            continue
        if box_map is None:
            crops = [centre_box(size, aspect)]
        elif path.name not in box_map:
            summary.skip("frame not in the boxes file", where)
            continue
        else:
            crops = [((x + w / 2.0, y + h / 2.0), (w * CROP_MARGIN, h * CROP_MARGIN))
                     for x, y, w, h in box_map[path.name] if w > 1 and h > 1]  # fmt: skip
        for k, (center, box) in enumerate(crops):
            entries.append(PersonEntry(
                image=path, image_size=size, center=center, box=box, joints=nan_joints,
                visible=np.zeros(NUM_JOINTS), head_size=float("nan"),
                source_id=f"frames:{path.name}#{k}", labelled=False,
            ))  # fmt: skip
    summary.samples = len(entries)
    require_samples(entries, summary, f"put frames (jpg/png) in {folder}, with boxes for the people in them")
    return entries, summary
