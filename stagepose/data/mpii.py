"""MPII Human Pose in the common JSON form (HRNet's and mmpose's ``annot/train.json`` / ``valid.json``).

Each item: ``{"image": "005808361.jpg", "center": [x, y], "scale": s, "joints": [[x, y] x 16],
"joints_vis": [0/1 x 16]}`` in MPII joint order, plus the optional ``"headbox": [x1, y1, x2, y2]``
(written by ``stagepose data convert-mpii``; it gives the PCKh head size). Coordinates are MPII's
MATLAB 1-based pixels; they become 0-based here (minus 1), as HRNet and mmpose do.

Crop convention (HRNet's, documented so results compare): ``scale`` is the person height / 200 px;
the centre moves down by 15 x scale px (MPII's ``objpos`` sits high on the body) and the box is
``scale x 200 x 1.25`` px square, widened to the input aspect. An item whose centre is -1 (no objpos)
gets the labelled joints' bounding box instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from stagepose.data.entries import (
    DataSummary,
    ImageProber,
    PersonEntry,
    Selection,
    check_joint_arrays,
    joint_box,
    mask_outside,
    require_samples,
    resolve_indices,
)
from stagepose.data.jsonfile import choose_image_dir, read_json
from stagepose.errors import DataError
from stagepose.metrics import head_size_from_boxes
from stagepose.transforms import CROP_MARGIN, MPII_SCALE_PX

CENTER_SHIFT_PER_SCALE = 15.0  # px down per unit of scale (HRNet / mmpose)
_REQUIRED = ("image", "center", "scale", "joints", "joints_vis")


def read_mpii_json(path: Path) -> list[dict[str, Any]]:
    """The list of items of an MPII JSON file.

    Raises:
        DataError: missing file, invalid JSON, not a list, or an item without the required keys.
    """
    items = read_json(path, "MPII annotation file")
    if not isinstance(items, list):
        raise DataError(
            f"{path}: expected a JSON list of {{image, center, scale, joints, joints_vis}} items (HRNet/mmpose "
            f"MPII form), got {type(items).__name__}; convert the official .mat with stagepose data convert-mpii"
        )
    for i, item in enumerate(items):
        missing = [k for k in _REQUIRED if not isinstance(item, dict) or k not in item]
        if missing:
            raise DataError(f"{path}: item {i}: missing {', '.join(missing)} (each item needs {', '.join(_REQUIRED)})")
    return items


def _entry(item: dict[str, Any], image: Path, size: tuple[int, int], where: str, summary: DataSummary,
           index: int) -> PersonEntry | None:  # fmt: skip
    try:
        joints = np.asarray(item["joints"], dtype=np.float64) - 1.0
        visible = (np.asarray(item["joints_vis"], dtype=np.float64).reshape(-1) > 0).astype(np.float64)
        center = np.asarray(item["center"], dtype=np.float64).reshape(-1)
        scale = float(item["scale"])
        headbox = None if item.get("headbox") is None else np.asarray(item["headbox"], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{where}: a field is not numeric ({exc})") from None
    check_joint_arrays(joints, visible, where)
    if center.shape != (2,):
        raise DataError(f"{where}: 'center' must be [x, y], got {item['center']!r}")
    if headbox is not None and headbox.shape != (4,):
        raise DataError(f"{where}: 'headbox' must be [x1, y1, x2, y2], got {item['headbox']!r}")
    joints[visible == 0] = np.nan
    joints, visible, outside = mask_outside(joints, visible, size)
    if outside:
        summary.mask("labelled joint far outside the image", where, outside)
    if not visible.any():
        summary.skip("no labelled joints", where)
        return None
    if center[0] == -1 or not np.isfinite(scale) or scale <= 0:
        box = joint_box(joints, visible, CROP_MARGIN)
        if box is None:
            summary.skip("no centre/scale and fewer than 2 labelled joints", where)
            return None
        box_center, box_size = box
    else:
        side = scale * MPII_SCALE_PX * CROP_MARGIN
        box_center = (float(center[0] - 1.0), float(center[1] + CENTER_SHIFT_PER_SCALE * scale - 1.0))
        box_size = (side, side)
    head_size = float("nan")
    if headbox is not None:
        head_size = float(head_size_from_boxes(headbox.reshape(1, 2, 2))[0])
    return PersonEntry(
        image=image, image_size=size, center=box_center, box=box_size, joints=joints, visible=visible,
        head_size=head_size if head_size > 0 else float("nan"), source_id=f"mpii:{item['image']}#{index}",
    )  # fmt: skip


def load_mpii(
    json_path: Path,
    *,
    image_dir: Path | None = None,
    indices: Selection = None,
    source: str = "",
) -> tuple[list[PersonEntry], DataSummary]:
    """Person entries of an MPII JSON file.

    Args:
        json_path: the annotation list.
        image_dir: image folder; None looks beside the file, in ``images/`` and in ``../images``.
        indices: which items (0-based): a range, a function of the item count, or None for all.
        source: spec text for the summary.

    Raises:
        DataError: a missing or malformed file, or no usable sample.
    """
    json_path = Path(json_path)
    items = read_mpii_json(json_path)
    indices = resolve_indices(indices, len(items), str(json_path))
    names = [str(items[i]["image"]) for i in indices]
    resolver = choose_image_dir(json_path, image_dir, names, f"mpii:{json_path}:IMAGE_DIR")
    folder = resolver.image_dir
    prober = ImageProber()
    summary = DataSummary(source=source or f"mpii:{json_path}", entries=len(indices))
    summary.notes.append(f"images from {folder}; centre +15*scale px down, box = scale*200*1.25 (HRNet)")
    entries: list[PersonEntry] = []
    for i in indices:
        item = items[i]
        where = f"{json_path} item {i} ({item['image']})"
        image = resolver.resolve(str(item["image"]))
        size = prober.probe(image) if image is not None else "image file missing"
        if isinstance(size, str):
            summary.skip(size, where)
            continue
        entry = _entry(item, image, size, where, summary, i)  # type: ignore[arg-type]
        if entry is not None:
            entries.append(entry)
    summary.samples = len(entries)
    with_head = sum(np.isfinite(e.head_size) for e in entries)
    summary.notes.append(f"head boxes: {with_head} of {len(entries)} samples (PCKh needs them)")
    require_samples(entries, summary, f"check {json_path} and the image folder {folder}")
    return entries, summary
