"""Convert the official MPII release (``mpii_human_pose_v1_u12_1.mat``) to the common JSON form.

The .mat holds one MATLAB struct ``RELEASE`` with ``annolist`` (per image: ``image.name`` and
``annorect``, per person: head box ``x1, y1, x2, y2``, ``annopoints.point`` with ``id, x, y,
is_visible``, ``objpos.{x, y}`` and ``scale``), ``img_train`` (1 training image, 0 test image, whose
joints are withheld) and ``single_person`` (per image, the 1-based indices of separated persons).

Output: ``OUT/train.json`` and ``OUT/valid.json``, lists of ``{image, center, scale, joints, joints_vis,
headbox, single_person}`` as read by ``stagepose.data.mpii`` (coordinates stay MATLAB 1-based, as in
HRNet's files; ``joints_vis`` is 1 for every annotated joint, whether or not MPII flags it visible).
The validation images are those listed in ``valid_images`` (for HRNet's split, pass its
``valid.json``), otherwise a fixed pseudo-random ``valid_fraction`` of the training images (chosen by a
hash of the image name, so it is the same on every machine). All persons of one image go to one split.
"""

from __future__ import annotations

import json
import logging
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stagepose.errors import DataError
from stagepose.fileio import atomic_write_text
from stagepose.skeleton import NUM_JOINTS

logger = logging.getLogger(__name__)


@dataclass
class ConvertReport:
    """What the conversion wrote and skipped."""

    train_persons: int = 0
    valid_persons: int = 0
    train_images: int = 0
    valid_images: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    files: list[Path] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"train: {self.train_persons} persons in {self.train_images} images",
                 f"valid: {self.valid_persons} persons in {self.valid_images} images"]  # fmt: skip
        lines += [f"skipped {n}: {reason}" for reason, n in self.skipped.most_common()]
        lines += [f"wrote {p}" for p in self.files]
        return "\n".join(lines)


def _items(value: Any) -> list[Any]:
    """A MATLAB struct array / cell as a list (loadmat squeezes 1x1 to the element, 0x0 to empty)."""
    if value is None:
        return []
    if isinstance(value, np.ndarray):
        return [] if value.size == 0 else list(value.reshape(-1))
    return [value]


def _get(struct: Any, name: str) -> Any:
    """Field ``name`` of a struct, or None when absent or empty."""
    value = getattr(struct, name, None)
    if isinstance(value, np.ndarray) and value.size == 0:
        return None
    return value


def _number(value: Any) -> float | None:
    """A scalar from a MATLAB value (number, 1-element array, or numeric string), or None."""
    if value is None:
        return None
    try:
        array = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        return None
    return float(array[0]) if array.size == 1 and np.isfinite(array[0]) else None


def load_release(mat_path: Path) -> Any:
    """The ``RELEASE`` struct of the official annotation file.

    Raises:
        DataError: missing file, not a MATLAB v5 file, or no RELEASE struct.
    """
    import scipy.io
    from scipy.io.matlab import MatReadError

    if not Path(mat_path).is_file():
        raise DataError(f"{mat_path}: not found; download mpii_human_pose_v1_u12_2.zip from "
                        f"human-pose.mpi-inf.mpg.de and unpack mpii_human_pose_v1_u12_1.mat")  # fmt: skip
    try:
        mat = scipy.io.loadmat(str(mat_path), struct_as_record=False, squeeze_me=True)
    except NotImplementedError:
        raise DataError(f"{mat_path}: MATLAB v7.3 (HDF5) files are not read; the official release is v5") from None
    except (OSError, ValueError, TypeError, MatReadError) as exc:
        raise DataError(f"{mat_path}: cannot read as a MATLAB file ({exc})") from None
    release = mat.get("RELEASE")
    if release is None or _get(release, "annolist") is None:
        raise DataError(f"{mat_path}: no RELEASE.annolist struct; is this mpii_human_pose_v1_u12_1.mat?")
    return release


def _person(rect: Any, name: str, singles: set[int], index: int, skipped: Counter[str]) -> dict[str, Any] | None:
    points = _items(_get(_get(rect, "annopoints"), "point")) if _get(rect, "annopoints") is not None else []
    if not points:
        skipped["person without joint annotations"] += 1
        return None
    objpos, scale = _get(rect, "objpos"), _number(_get(rect, "scale"))
    cx, cy = (_number(_get(objpos, "x")), _number(_get(objpos, "y"))) if objpos is not None else (None, None)
    if cx is None or cy is None or scale is None or scale <= 0:
        skipped["person without objpos or scale"] += 1
        return None
    joints = np.full((NUM_JOINTS, 2), -1.0)
    visible = np.zeros(NUM_JOINTS, dtype=int)
    for point in points:
        jid, x, y = _number(_get(point, "id")), _number(_get(point, "x")), _number(_get(point, "y"))
        if jid is None or x is None or y is None or not 0 <= int(jid) < NUM_JOINTS:
            skipped["joint point with a bad id or coordinate"] += 1
            continue
        joints[int(jid)] = (x, y)
        visible[int(jid)] = 1
    if not visible.any():
        skipped["person without joint annotations"] += 1
        return None
    box = [_number(_get(rect, k)) for k in ("x1", "y1", "x2", "y2")]
    return {
        "image": name,
        "center": [cx, cy],
        "scale": scale,
        "joints": joints.tolist(),
        "joints_vis": visible.tolist(),
        "headbox": box if all(v is not None for v in box) else None,
        "single_person": (index + 1) in singles,
    }


def _valid_names(valid_images: Path | None) -> set[str] | None:
    if valid_images is None:
        return None
    if valid_images.suffix.lower() == ".json":
        from stagepose.data.jsonfile import read_json

        data = read_json(valid_images, "validation image list")
        if not isinstance(data, list) or not all(isinstance(d, dict) and "image" in d for d in data):
            raise DataError(f"{valid_images}: expected a JSON list of items with 'image' (e.g. HRNet's valid.json)")
        return {str(d["image"]) for d in data}
    try:
        lines = valid_images.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DataError(f"{valid_images}: cannot read the validation image list ({exc})") from None
    return {line.strip() for line in lines if line.strip()}


def is_valid_image(name: str, fraction: float) -> bool:
    """Deterministic pseudo-random choice of validation images (same on every machine)."""
    return zlib.crc32(name.encode("utf-8")) % 100_000 < fraction * 100_000


def convert_mpii(
    mat_path: Path,
    out_dir: Path,
    *,
    valid_fraction: float = 0.1,
    valid_images: Path | None = None,
    single_person_only: bool = False,
) -> ConvertReport:
    """Write ``train.json`` and ``valid.json`` from the official .mat (see module docstring).

    Args:
        mat_path: ``mpii_human_pose_v1_u12_1.mat``.
        out_dir: created if needed.
        valid_fraction: share of training images held out when ``valid_images`` is None.
        valid_images: a .txt (one image name per line) or .json list of items with "image".
        single_person_only: keep only persons MPII marks as separated from others.

    Raises:
        DataError: unreadable input, or no annotated person found.
    """
    if not 0.0 <= valid_fraction < 1.0:
        raise DataError(f"valid fraction must be in [0, 1), got {valid_fraction}")
    release = load_release(Path(mat_path))
    annolist = _items(_get(release, "annolist"))
    img_train = np.asarray(_get(release, "img_train") if _get(release, "img_train") is not None else [],
                           dtype=np.float64).reshape(-1)  # fmt: skip
    single = _items(_get(release, "single_person"))
    if len(img_train) != len(annolist):
        raise DataError(f"{mat_path}: img_train has {len(img_train)} entries for {len(annolist)} images")
    wanted_valid = _valid_names(Path(valid_images) if valid_images else None)
    report = ConvertReport()
    splits: dict[str, list[dict[str, Any]]] = {"train": [], "valid": []}
    images: dict[str, set[str]] = {"train": set(), "valid": set()}
    for i, anno in enumerate(annolist):
        name = _get(_get(anno, "image"), "name")
        if not isinstance(name, str):
            report.skipped["image without a name"] += 1
            continue
        if img_train[i] != 1:
            report.skipped["test image (joints withheld by MPII)"] += 1
            continue
        singles = {int(v) for v in np.asarray(single[i] if i < len(single) else [], dtype=np.float64).reshape(-1)
                   if np.isfinite(v)}  # fmt: skip
        split = "valid" if (name in wanted_valid if wanted_valid is not None
                            else is_valid_image(name, valid_fraction)) else "train"  # fmt: skip
        for r, rect in enumerate(_items(_get(anno, "annorect"))):
            person = _person(rect, name, singles, r, report.skipped)
            if person is None:
                continue
            if single_person_only and not person["single_person"]:
                report.skipped["not a single (separated) person"] += 1
                continue
            splits[split].append(person)
            images[split].add(name)
    if not splits["train"] and not splits["valid"]:
        raise DataError(f"{mat_path}: no annotated person in any training image\n{report}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for split, items in splits.items():
        path = out_dir / f"{split}.json"
        atomic_write_text(path, json.dumps(items))
        report.files.append(path)
    report.train_persons, report.valid_persons = len(splits["train"]), len(splits["valid"])
    report.train_images, report.valid_images = len(images["train"]), len(images["valid"])
    if wanted_valid is not None and not report.valid_persons:
        logger.warning("none of the %d listed validation images is an annotated training image", len(wanted_valid))
    return report
