"""``stagepose data label``: run a strong pose model ONCE over data sets and write a teacher label file.

The labels (``stagepose.data.teacher_labels``) then teach a student through ``teacher.labels`` in an
experiment config, at no cost during training. Each data spec is read as ``stagepose train`` reads it, in
its TRAINING split, so held-out validation images (``lspet:DIR``'s last 500) are never labelled.

How the model sees an entry (``mode``):

- ``image``: the whole image; the model's own detector picks the most prominent person;
- ``crop``: the entry's person box (already ``CROP_MARGIN`` around the person), squared and grown by
  ``CROP_CONTEXT``, at ``CROP_SIZE`` px: the person the entry means, even in a crowded frame;
- ``both`` (default): both, keeping the one with the higher mean confidence.

MediaPipe's detector needs context around the person: a crop of the plain box found 146 of 200 LSPET
persons, one twice as wide 184 (the whole image: 183). On LSPET training images ``both`` agreed best
with the ground truth (PCK@0.2, training/README.md), at twice the time of one mode.

Long runs lose nothing: the file is rewritten (atomically) every ``save_every_s`` and when the run
stops, Ctrl-C included; running the same command again skips what is already labelled.

Venue frames are cut as a centre crop unless a boxes file names the people in them (``frames:``,
``stagepose.data.frames``); ``write_person_boxes`` writes that file from the labels themselves (the box
of each frame's confident keypoints), so footage needs neither hand labels nor a person detector. The box
keeps the entry's name (``#0``), so the labels still match the entries the boxes make.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import cv2
import numpy as np

from stagepose.data.entries import PersonEntry
from stagepose.data.label_options import MODES, TEACHERS, LabelMode
from stagepose.data.teacher_labels import TeacherInfo, TeacherLabels, read_labels, write_labels
from stagepose.errors import ConfigError, DataError
from stagepose.fileio import atomic_write_text
from stagepose.transforms import apply_affine, box_with_aspect, crop_affine, invert_affine, warp_crop

logger = logging.getLogger(__name__)

CROP_CONTEXT = 2.0
CROP_SIZE = 256
SAVE_EVERY_S = 60.0
BOX_MIN_CONFIDENCE = 0.5  # joints MediaPipe is less sure of are often guesses outside the picture

# An RGB image (H, W, 3) uint8 -> (16, 3) MPII keypoints [x, y, confidence] in its pixels, or None.
KeypointModel = Callable[[np.ndarray], np.ndarray | None]


@dataclass(frozen=True)
class LabelReport:
    """What a labelling run did.

    Attributes:
        out: the label file.
        entries: entries in the data specs.
        labelled: entries labelled in this run (a person found or not).
        found: of those, entries where the model found a person.
        already: entries skipped because the file already labelled them.
        unreadable: images that failed to decode (not written: a rerun retries them).
        seconds: wall time of the labelling loop.
    """

    out: Path
    entries: int
    labelled: int
    found: int
    already: int
    unreadable: int
    seconds: float

    def __str__(self) -> str:
        rate = self.seconds / max(self.labelled, 1)
        return (f"{self.out}: labelled {self.labelled} entries ({self.found} with a person) in {self.seconds:.0f} s "
                f"({rate * 1000:.0f} ms each); {self.already} were already labelled, {self.unreadable} images "
                f"unreadable; {self.entries} entries in the data")  # fmt: skip


@contextmanager
def open_teacher(name: str, mode: LabelMode) -> Iterator[tuple[TeacherInfo, KeypointModel]]:
    """The named teacher model and what to record about it.

    Raises:
        ConfigError: an unknown teacher name.
        EngineError: its package is missing (the message says how to install it).
    """
    if name != "mediapipe":
        raise ConfigError(f"unknown teacher {name!r}; known teachers: {', '.join(TEACHERS)}")
    from stagepose.data.mediapipe_pose import MODEL_NAME, MediaPipePose, landmarks_to_mpii

    with MediaPipePose() as pose:

        def model(image_rgb: np.ndarray) -> np.ndarray | None:
            landmarks = pose(image_rgb)
            return None if landmarks is None else landmarks_to_mpii(landmarks)

        yield TeacherInfo(name=MODEL_NAME, software=f"mediapipe {pose.version}", mode=mode), model


def context_crop(entry: PersonEntry) -> np.ndarray:
    """(2, 3) affine image -> ``CROP_SIZE`` square crop around the entry's box grown by ``CROP_CONTEXT``."""
    side = max(box_with_aspect(entry.box[0], entry.box[1], 1.0)) * CROP_CONTEXT
    return crop_affine(entry.center, (side, side), (CROP_SIZE, CROP_SIZE))


def entry_keypoints(
    model: KeypointModel, image_rgb: np.ndarray, entry: PersonEntry, mode: LabelMode
) -> np.ndarray | None:
    """(16, 3) keypoints of ``entry`` in image pixels as ``mode`` sees it (module docstring), or None."""
    results = []
    if mode in ("crop", "both"):
        affine = context_crop(entry)
        found = model(warp_crop(image_rgb, affine, (CROP_SIZE, CROP_SIZE)))
        if found is not None:
            found = found.copy()
            found[:, :2] = apply_affine(found[:, :2], invert_affine(affine))
            results.append(found)
    if mode in ("image", "both"):
        found = model(image_rgb)
        if found is not None:
            results.append(found)
    if not results:
        return None
    return max(results, key=lambda k: float(np.nan_to_num(k[:, 2]).mean()))


def _check_unique(entries: Sequence[PersonEntry]) -> None:
    seen: dict[str, Path] = {}
    for entry in entries:
        other = seen.setdefault(entry.source_id, entry.image)
        if other != entry.image:
            raise DataError(f"two images have the entry name {entry.source_id!r} ({other} and {entry.image}); a label "
                            "file could not tell them apart: label the two folders into separate files")  # fmt: skip


def _start(out: Path, info: TeacherInfo, overwrite: bool) -> TeacherLabels:
    if overwrite or not out.exists():
        return TeacherLabels(teacher=info, source=str(out))
    existing = read_labels(out)
    if existing.teacher != info:
        raise DataError(f"{out} holds labels by {existing.teacher.name} ({existing.teacher.software}, mode "
                        f"{existing.teacher.mode}), not by {info.name} ({info.software}, mode {info.mode}); "
                        "write to another --out, or pass --overwrite to start it afresh")  # fmt: skip
    logger.info("%s: continuing, %d entries already labelled", out, len(existing))
    return existing


def label_entries(
    entries: Sequence[PersonEntry],
    model: KeypointModel,
    info: TeacherInfo,
    out: str | Path,
    *,
    specs: Sequence[str] = (),
    overwrite: bool = False,
    progress: bool = True,
    save_every_s: float = SAVE_EVERY_S,
) -> LabelReport:
    """Label ``entries`` with ``model`` into ``out`` (resuming it; see the module docstring).

    Args:
        entries: the persons to label, keyed in the file by ``source_id``.
        model: the teacher (see ``KeypointModel``).
        info: what to record about it; an existing file must hold labels of the same teacher and mode.
        out: the label file (``.json`` or ``.json.gz``).
        specs: the data specs the entries come from, recorded in the file.
        overwrite: start ``out`` afresh instead of continuing it.
        progress: show a progress bar.
        save_every_s: rewrite the file this often.

    Raises:
        DataError: an unreadable existing file, one by another teacher, or two images with one entry name.
    """
    from tqdm import tqdm

    if info.mode not in MODES:
        raise ConfigError(f"unknown labelling mode {info.mode!r}; modes: {', '.join(MODES)}")
    mode = cast(LabelMode, info.mode)
    out = Path(out)
    _check_unique(entries)
    labels = _start(out, info, overwrite)
    todo = [e for e in entries if e.source_id not in labels.labels]
    new: dict[str, np.ndarray | None] = {}
    unreadable = 0
    start = last_save = time.perf_counter()
    bar = tqdm(todo, desc=f"label {out.name}", unit="img", disable=not progress, dynamic_ncols=True)
    finished = False
    try:
        for entry in bar:
            image = cv2.imread(str(entry.image), cv2.IMREAD_COLOR)
            if image is None:
                unreadable += 1
                logger.warning("%s: cannot decode; not labelled (a rerun retries it)", entry.image)
                continue
            new[entry.source_id] = entry_keypoints(model, cv2.cvtColor(image, cv2.COLOR_BGR2RGB), entry, mode)
            if time.perf_counter() - last_save >= save_every_s:
                write_labels(out, labels.merged(new, specs))
                last_save = time.perf_counter()
        finished = True
    finally:  # Ctrl-C or any failure: keep what was labelled
        bar.close()
        write_labels(out, labels.merged(new, specs))
        if not finished:
            logger.warning("stopped: %d labels saved in %s; the same command continues from there",
                           len(labels) + len(new), out)  # fmt: skip
    return LabelReport(out=out, entries=len(entries), labelled=len(new),
                       found=sum(v is not None for v in new.values()), already=len(entries) - len(todo),
                       unreadable=unreadable, seconds=time.perf_counter() - start)  # fmt: skip


def spec_entries(specs: Sequence[str]) -> list[PersonEntry]:
    """The training-split entries of each spec, in order (as ``stagepose train`` reads them).

    Raises:
        DataError: a bad spec or data set (from the loaders).
    """
    from stagepose.data.registry import build_dataset

    entries: list[PersonEntry] = []
    for spec in specs:
        entries.extend(build_dataset(spec, split="train", input_size=(CROP_SIZE, CROP_SIZE)).entries)
    return entries


def label_data(
    specs: Sequence[str],
    out: str | Path,
    *,
    teacher: str = "mediapipe",
    mode: LabelMode = "both",
    overwrite: bool = False,
    progress: bool = True,
    boxes_out: str | Path | None = None,
) -> LabelReport:
    """``stagepose data label``: label the training split of ``specs`` with ``teacher`` into ``out``.

    With ``boxes_out``, also write a person boxes file for the ``frames:`` specs (``write_person_boxes``).

    Raises:
        ConfigError: unknown teacher or mode.
        EngineError: the teacher's package is missing.
        DataError: bad specs, or an ``out`` that cannot be continued (see ``label_entries``).
    """
    if mode not in MODES:
        raise ConfigError(f"unknown labelling mode {mode!r}; modes: {', '.join(MODES)}")
    entries = spec_entries(specs)
    with open_teacher(teacher, mode) as (info, model):
        report = label_entries(entries, model, info, out, specs=specs, overwrite=overwrite, progress=progress)
    if boxes_out is not None:
        count = write_person_boxes(read_labels(out), entries, boxes_out)
        logger.info("%s: %d person boxes; use the frames as frames:DIR?boxes=%s", boxes_out, count, boxes_out)
    return report


def write_person_boxes(labels: TeacherLabels, entries: Sequence[PersonEntry], path: str | Path) -> int:
    """Write a ``frames:`` boxes file with one person box per frame from its labels; returns the boxes written.

    The box is the bounding box of the keypoints with confidence >= ``BOX_MIN_CONFIDENCE`` (all of them
    where fewer than two are), without margin: the frames loader adds ``CROP_MARGIN``. A frame whose
    labels found nobody gets an empty list (nobody there). Entries of other kinds are left out.

    Raises:
        DataError: the file cannot be written.
    """
    import json

    from stagepose.data.entries import joint_box

    boxes: dict[str, list[list[float]]] = {}
    for entry in entries:
        if not entry.source_id.startswith("frames:"):
            continue
        found = boxes.setdefault(entry.image.name, [])
        keypoints = labels.keypoints(entry.source_id)
        if keypoints is None or found:
            continue
        finite = np.isfinite(keypoints[:, :2]).all(axis=1)
        sure = finite & (keypoints[:, 2] >= BOX_MIN_CONFIDENCE)
        box = joint_box(keypoints[:, :2], (sure if sure.sum() >= 2 else finite).astype(float), 1.0)
        if box is not None:
            (cx, cy), (w, h) = box
            found.append([round(cx - w / 2, 1), round(cy - h / 2, 1), round(w, 1), round(h, 1)])
    path = Path(path)
    try:
        atomic_write_text(path, json.dumps(boxes, indent=1))
    except OSError as exc:
        raise DataError(f"{path}: cannot write the boxes file ({exc})") from None
    return sum(len(b) for b in boxes.values())
