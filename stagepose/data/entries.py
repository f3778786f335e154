"""What every loader produces: person entries (one training sample each) and a summary of what was skipped.

Loaders validate at construction so that an epoch never stops on bad input: annotation files are parsed
completely, each referenced image is checked to exist and to have a readable header (Pillow reads only
the header: about 0.1 ms per image), and entries that cannot become a sample are skipped and counted by
reason. Labelled joints far outside their image are unlabelled and counted. What can still fail later
(a file truncated after its header) is handled by the data set at ``__getitem__``.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stagepose.errors import DataError
from stagepose.skeleton import NUM_JOINTS
from stagepose.transforms import person_box

logger = logging.getLogger(__name__)

# Labelled joints further outside the image than this fraction of its longer side are unlabelled:
# a few pixels outside is a real annotation of a cut-off limb, tens of percent is a broken label.
OUTSIDE_TOLERANCE = 0.05
_EXAMPLES_PER_REASON = 3
_EXIF_ORIENTATION = 274


@dataclass(frozen=True)
class PersonEntry:
    """One person in one image: everything needed to cut a crop and build its targets.

    Attributes:
        image: image file.
        image_size: (width, height) in pixels, as decoded (EXIF orientation applied).
        center: (x, y) centre of the person box, image pixels (0-based).
        box: (w, h) of the person box in image pixels, margin included; the crop widens it to the
            model input's aspect ratio.
        joints: (16, 2) float64 MPII joints in image pixels, NaN where unlabelled.
        visible: (16,) float64, 1 where labelled, 0 where not.
        head_size: MPII head size (0.6 x head box diagonal) in pixels, NaN where unknown.
        source_id: stable name for reports, for example ``lspet:im00001.jpg``.
        labelled: False for unlabelled venue frames (zero targets, only a teacher teaches there).
    """

    image: Path
    image_size: tuple[int, int]
    center: tuple[float, float]
    box: tuple[float, float]
    joints: np.ndarray
    visible: np.ndarray
    head_size: float
    source_id: str
    labelled: bool = True


@dataclass
class DataSummary:
    """Counts of what a loader read, used and skipped (and why), for logs and ``stagepose data check``.

    Attributes:
        source: the spec or file the data came from.
        entries: entries selected from the file (before skipping).
        samples: entries that became samples.
        skipped: reason -> number of entries skipped.
        masked_joints: reason -> number of labelled joints treated as unlabelled.
        examples: reason -> the first few offending entries (file and entry), for the message.
        load_failures: images that failed to decode at ``__getitem__`` in this process (each was
            replaced by another sample); DataLoader workers count their own.
        notes: facts about how the data were read (layout detected, skeleton mapped, ...).
    """

    source: str
    entries: int = 0
    samples: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    masked_joints: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    load_failures: int = 0
    notes: list[str] = field(default_factory=list)

    def skip(self, reason: str, where: str) -> None:
        """Count one skipped entry and remember the first few places."""
        self.skipped[reason] += 1
        self._example(reason, where)

    def mask(self, reason: str, where: str, count: int = 1) -> None:
        """Count ``count`` labelled joints of one entry that were treated as unlabelled."""
        self.masked_joints[reason] += count
        self._example(reason, where)

    def _example(self, reason: str, where: str) -> None:
        examples = self.examples.setdefault(reason, [])
        if len(examples) < _EXAMPLES_PER_REASON:
            examples.append(where)

    def __str__(self) -> str:
        lines = [f"{self.source}: {self.samples} samples from {self.entries} entries"]
        lines += [f"  {note}" for note in self.notes]
        for reason, count in self.skipped.most_common():
            lines.append(f"  skipped {count}: {reason} (e.g. {'; '.join(self.examples.get(reason, []))})")
        for reason, count in self.masked_joints.most_common():
            lines.append(f"  joints unlabelled {count}: {reason} (e.g. {'; '.join(self.examples.get(reason, []))})")
        if self.load_failures:
            lines.append(f"  images that failed to decode while loading (replaced): {self.load_failures}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, object]:
        """Plain data for a JSON report."""
        return {
            "source": self.source,
            "entries": self.entries,
            "samples": self.samples,
            "skipped": dict(self.skipped),
            "masked_joints": dict(self.masked_joints),
            "examples": self.examples,
            "load_failures": self.load_failures,
            "notes": list(self.notes),
        }

    def log(self) -> None:
        """Log the summary once: a warning if anything was skipped, else info."""
        level = logging.WARNING if (self.skipped or self.masked_joints) else logging.INFO
        logger.log(level, "%s", self)


class ImageProber:
    """Checks image files once each (existence, readable header) and remembers their size.

    Several persons share an image in MPII and COCO files: each file is probed once.
    """

    def __init__(self) -> None:
        self._cache: dict[Path, tuple[int, int] | str] = {}

    def probe(self, path: Path) -> tuple[int, int] | str:
        """(width, height) of the decoded image, or a short reason why it cannot be used."""
        cached = self._cache.get(path)
        if cached is not None:
            return cached
        result = _probe(path)
        self._cache[path] = result
        return result


def _probe(path: Path) -> tuple[int, int] | str:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            width, height = image.size
            try:
                orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
            except Exception:  # noqa: BLE001 - a broken EXIF block does not stop decoding
                orientation = 1
    except FileNotFoundError:
        return "image file missing"
    except (UnidentifiedImageError, OSError, ValueError):
        return "image file unreadable (not an image, or damaged)"
    if width <= 1 or height <= 1:
        return "image file unreadable (not an image, or damaged)"
    # OpenCV decodes with the EXIF rotation applied (as browsers and labelling tools show it).
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    return int(width), int(height)


def mask_outside(
    joints: np.ndarray, visible: np.ndarray, image_size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, int]:
    """Unlabel joints far outside the image (see ``OUTSIDE_TOLERANCE``).

    Args:
        joints: (K, 2) image pixels, NaN where unlabelled (source skeleton: mask before deriving
            mid-points, so a broken hip does not move the pelvis).
        visible: (K,) labels.
        image_size: (width, height).

    Returns:
        joints and visible with the offending joints set to NaN / 0, and how many were changed.
    """
    width, height = image_size
    tol = OUTSIDE_TOLERANCE * max(width, height)
    with np.errstate(invalid="ignore"):
        outside = (
            (joints[:, 0] < -tol) | (joints[:, 0] > width - 1 + tol)
            | (joints[:, 1] < -tol) | (joints[:, 1] > height - 1 + tol)
            | ~np.isfinite(joints).all(axis=1)
        ) & (visible > 0)  # fmt: skip
    count = int(outside.sum())
    if count:
        joints = joints.copy()
        visible = visible.copy()
        joints[outside] = np.nan
        visible[outside] = 0.0
    return joints, visible, count


Box = tuple[tuple[float, float], tuple[float, float]]


def joint_box(joints: np.ndarray, visible: np.ndarray, margin: float) -> Box | None:
    """Centre and (w, h) of the labelled joints' bounding box grown by ``margin``, or None if degenerate.

    A box needs two labelled joints at least 4 px apart; the box itself is ``transforms.person_box``,
    which the live tracker also crops with.
    """
    labelled = (visible > 0) & np.isfinite(joints).all(axis=1)
    if labelled.sum() < 2:
        return None
    pts = joints[labelled]
    if float(np.ptp(pts, axis=0).max()) < 4.0:
        return None
    return person_box(pts, margin)


def check_joint_arrays(joints: np.ndarray, visible: np.ndarray, where: str) -> None:
    """Raise a DataError unless joints is (16, 2) and visible (16,)."""
    if joints.shape != (NUM_JOINTS, 2) or visible.shape != (NUM_JOINTS,):
        raise DataError(
            f"{where}: expected 16 joints as [[x, y] x 16] and 16 visibility flags, got shapes "
            f"{joints.shape} and {visible.shape}"
        )


def require_samples(entries: list[PersonEntry], summary: DataSummary, what_to_do: str) -> None:
    """Raise a DataError (with the summary) when no entry survived validation."""
    if not entries:
        raise DataError(f"no usable samples.\n{summary}\n{what_to_do}")


Selection = range | Callable[[int], range] | None


def resolve_indices(selection: Selection, count: int, where: str) -> range:
    """Entry indices from a range, a function of the entry count (a spec's split), or None (all).

    Raises:
        DataError: indices past the end of the file.
    """
    indices = range(count) if selection is None else selection(count) if callable(selection) else selection
    if indices and (indices[-1] >= count or indices[0] >= count or min(indices) < 0):
        raise DataError(f"{where}: entries {indices.start}..{indices.stop - 1} are outside the file's {count}")
    return indices
