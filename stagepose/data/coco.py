"""Venue footage labelled in COCO-keypoints JSON, the export format of CVAT ("COCO Keypoints 1.0") and
Label Studio (COCO export of KeyPointLabels).

One sample per person annotation; the person box is the annotation's ``bbox`` [x, y, w, h] grown by
``transforms.CROP_MARGIN`` (or, without a usable bbox, the labelled keypoints' box). Keypoint flags
``v``: 0 not labelled, 1 labelled but hidden, 2 visible; hidden ones keep their targets.

The skeleton is read from the category's keypoint names, so the labelling template may list the
joints in any order: COCO's 17 names map with ``skeleton.COCO_TO_MPII`` (face points dropped); MPII's 16
may be spelled ``r_ankle``, ``right_ankle`` or ``Right ankle``; ``neck`` means MPII's upper neck (as in
LSP) and ``head`` the head top. Pelvis and thorax, if not labelled, become the hip and shoulder
mid-points. A category without names is read by count: 17 as COCO order, 16 as MPII order. Unknown
names are an error (a typo would otherwise drop a joint silently).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from stagepose.data.entries import (
    DataSummary,
    ImageProber,
    PersonEntry,
    Selection,
    joint_box,
    mask_outside,
    require_samples,
    resolve_indices,
)
from stagepose.data.jsonfile import ImageResolver, choose_image_dir, read_json
from stagepose.errors import DataError
from stagepose.skeleton import COCO_KEYPOINT_NAMES, COCO_TO_MPII, Joint, remap_to_mpii
from stagepose.transforms import CROP_MARGIN

_ALIASES: dict[str, Joint] = {j.name: j for j in Joint} | {
    "neck": Joint.upper_neck,
    "head": Joint.head_top,
    "headtop": Joint.head_top,
    "top_of_head": Joint.head_top,
    "mid_hip": Joint.pelvis,
    "hip_center": Joint.pelvis,
    "hip_centre": Joint.pelvis,
    "root": Joint.pelvis,
    "chest": Joint.thorax,
}
# Face points some templates carry (COCO's five, and a few more): not MPII joints, dropped.
_IGNORED = {"nose", "l_eye", "r_eye", "l_ear", "r_ear", "mouth", "chin"}


def normalise_name(name: str) -> str:
    """'Right Ankle' / 'right-ankle' / 'ankle_right' -> 'r_ankle'."""
    text = re.sub(r"[\s\-.]+", "_", str(name).strip().lower())
    text = re.sub(r"^(left|l)_", "l_", text)
    text = re.sub(r"^(right|r)_", "r_", text)
    side = re.match(r"^(.+)_(left|right)$", text)
    if side:
        text = f"{side.group(2)[0]}_{side.group(1)}"
    return text


def skeleton_mapping(names: list[str] | None, count: int, where: str) -> tuple[tuple[Joint | None, ...], str]:
    """Map a category's keypoints onto MPII joints.

    Args:
        names: the category's ``keypoints`` names, or None when it has none.
        count: keypoints per annotation (length of ``keypoints`` / 3).
        where: file and category, for messages.

    Returns:
        for each keypoint the MPII joint or None (dropped), and a description for the summary.

    Raises:
        DataError: unknown names, duplicate joints, a count that fits no skeleton, or no MPII joint.
    """
    if not names:
        if count == len(COCO_TO_MPII):
            return COCO_TO_MPII, "COCO-17 (by count; the category names no keypoints)"
        if count == len(Joint):
            return tuple(Joint), "MPII-16 (by count; the category names no keypoints)"
        raise DataError(
            f"{where}: the category names no keypoints and has {count} per annotation; name them, or use "
            f"COCO's 17 or MPII's 16 in order"
        )
    if len(names) != count:
        raise DataError(f"{where}: the category names {len(names)} keypoints but annotations hold {count}")
    if tuple(n.strip().lower() for n in names) == COCO_KEYPOINT_NAMES:
        return COCO_TO_MPII, "COCO-17 keypoint names"
    mapping: list[Joint | None] = []
    unknown = []
    for name in names:
        key = normalise_name(name)
        if key in _ALIASES:
            mapping.append(_ALIASES[key])
        elif key in _IGNORED:
            mapping.append(None)
        else:
            unknown.append(name)
    if unknown:
        raise DataError(
            f"{where}: unknown keypoint names {unknown}; use MPII names ({', '.join(j.name for j in Joint)}), "
            f"COCO names (left_shoulder ...), or spellings like 'Right ankle'"
        )
    used = [m for m in mapping if m is not None]
    if len(set(used)) != len(used):
        dup = sorted({m.name for m in used if used.count(m) > 1})
        raise DataError(f"{where}: several keypoints name the same joint: {dup}")
    if not used:
        raise DataError(f"{where}: none of the keypoints {names} is an MPII body joint")
    described = "MPII-16 keypoint names" if len(used) == len(Joint) else (
        f"{len(used)} of MPII's 16 joints by name ({len(names) - len(used)} dropped)")  # fmt: skip
    return tuple(mapping), described


def _pick_category(data: dict[str, Any], path: Path, wanted: str | None) -> dict[str, Any]:
    categories = [c for c in data.get("categories") or [] if isinstance(c, dict)]
    if wanted is not None:
        for category in categories:
            if str(category.get("name")) == wanted:
                return category
        raise DataError(f"{path}: no category named {wanted!r}; categories: {[c.get('name') for c in categories]}")
    with_points = [c for c in categories if c.get("keypoints")]
    if len(with_points) == 1:
        return with_points[0]
    if len(with_points) > 1:
        for category in with_points:
            if str(category.get("name")).lower() == "person":
                return category
        raise DataError(
            f"{path}: several keypoint categories {[c.get('name') for c in with_points]}; choose one with "
            f"?category=NAME"
        )
    if len(categories) == 1:
        return categories[0]
    raise DataError(f"{path}: no category with keypoints; is this a COCO keypoints export (not detection)?")


def load_coco(
    json_path: Path,
    *,
    image_dir: Path | None = None,
    indices: Selection = None,
    category: str | None = None,
    source: str = "",
) -> tuple[list[PersonEntry], DataSummary]:
    """Person entries of a COCO-keypoints file.

    Args:
        json_path: the export's annotation file.
        image_dir: image folder; None looks beside the file, in ``images/`` and ``../images``.
        indices: which images (0-based, order of the file's ``images`` list): a range, a function of
            the image count, or None for all.
        category: the category name when the file has several with keypoints.
        source: spec text for the summary.

    Raises:
        DataError: missing or malformed file, unknown skeleton, or no usable sample.
    """
    json_path = Path(json_path)
    data = read_json(json_path, "COCO keypoints file")
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) or not isinstance(
            data.get("annotations"), list):  # fmt: skip
        raise DataError(f"{json_path}: expected a COCO object with 'images', 'annotations' and 'categories' lists")
    cat = _pick_category(data, json_path, category)
    images = data["images"]
    for i, image in enumerate(images):
        if not isinstance(image, dict) or "id" not in image or "file_name" not in image:
            raise DataError(f"{json_path}: images[{i}] needs 'id' and 'file_name'")
    indices = resolve_indices(indices, len(images), str(json_path))
    selected = [images[i] for i in indices]
    by_id = {image["id"]: image for image in selected}
    anns = [a for a in data["annotations"] if isinstance(a, dict) and a.get("category_id") == cat.get("id")]
    if not anns:
        raise DataError(
            f"{json_path}: no annotations of category {cat.get('name')!r}; label the performers' keypoints "
            f"and export again (COCO Keypoints)"
        )
    counts = {len(a.get("keypoints") or []) for a in anns if a.get("keypoints")}
    if len(counts) > 1 or any(c % 3 for c in counts):
        raise DataError(
            f"{json_path}: annotations' 'keypoints' lengths {sorted(counts)} differ or are not x, y, v triples"
        )
    names = [str(n) for n in cat.get("keypoints") or []] or None
    count = counts.pop() // 3 if counts else len(names or [])
    mapping, described = skeleton_mapping(names, count, f"{json_path} category {cat.get('name')!r}")
    resolver = choose_image_dir(json_path, image_dir, [str(i["file_name"]) for i in selected],
                              f"coco:{json_path}:IMAGE_DIR")  # fmt: skip
    folder, prober = resolver.image_dir, ImageProber()
    summary = DataSummary(source=source or f"coco:{json_path}", entries=0)
    summary.notes.append(f"skeleton: {described}; images from {folder}")
    entries: list[PersonEntry] = []
    order = {image_id: n for n, image_id in enumerate(by_id)}
    known = {image["id"] for image in images}
    for ann in anns:
        if ann.get("image_id") not in known:
            summary.skip("annotation of an image_id missing from 'images'", f"{json_path} annotation {ann.get('id')}")
    anns = sorted((a for a in anns if a.get("image_id") in by_id), key=lambda a: order[a["image_id"]])
    summary.entries = len(anns)
    for ann in anns:
        image = by_id[ann["image_id"]]
        where = f"{json_path} annotation {ann.get('id')} ({image['file_name']})"
        entry = _annotation_entry(ann, image, mapping, resolver, prober, summary, where)
        if entry is not None:
            entries.append(entry)
    summary.samples = len(entries)
    require_samples(entries, summary, f"label persons in {json_path} (or check the image folder {folder})")
    return entries, summary


def _annotation_entry(ann: dict[str, Any], image: dict[str, Any], mapping: tuple[Joint | None, ...],
                      resolver: ImageResolver, prober: ImageProber, summary: DataSummary,
                      where: str) -> PersonEntry | None:  # fmt: skip
    if ann.get("iscrowd"):
        summary.skip("crowd annotation", where)
        return None
    raw = ann.get("keypoints") or []
    if not raw:
        summary.skip("no keypoints", where)
        return None
    try:
        points = np.asarray(raw, dtype=np.float64).reshape(-1, 3)
    except (TypeError, ValueError):
        raise DataError(f"{where}: 'keypoints' must be numbers [x, y, v, ...]") from None
    labels = ((points[:, 2] > 0) & np.isfinite(points[:, :2]).all(axis=1)).astype(np.float64)
    if not labels.any():
        summary.skip("no labelled keypoints", where)
        return None
    path = resolver.resolve(str(image["file_name"]))
    size = prober.probe(path) if path is not None else "image file missing"
    if isinstance(size, str):
        summary.skip(size, where)
        return None
    xy, labels, outside = mask_outside(points[:, :2], labels, size)
    if outside:
        summary.mask("labelled joint far outside the image", where, outside)
    joints, visible = remap_to_mpii(xy, labels, mapping, derive_midpoints=True)
    if not visible.any():
        summary.skip("no labelled MPII joints", where)
        return None
    bbox = ann.get("bbox")
    box = None
    if isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, (int, float)) for v in bbox) \
            and bbox[2] > 1 and bbox[3] > 1:  # fmt: skip
        x, y, w, h = (float(v) for v in bbox)
        box = ((x + w / 2.0, y + h / 2.0), (w * CROP_MARGIN, h * CROP_MARGIN))
    else:
        box = joint_box(joints, visible, CROP_MARGIN)
    if box is None:
        summary.skip("no bbox and fewer than 2 labelled joints", where)
        return None
    return PersonEntry(
        image=path, image_size=size, center=box[0], box=box[1], joints=joints, visible=visible,  # type: ignore[arg-type]
        head_size=float("nan"), source_id=f"coco:{image['file_name']}#{ann.get('id')}",
    )  # fmt: skip
