"""Leeds Sports Pose (LSP, 2,000 images) and LSP-extended (LSPET, 10,000) from their ``joints.mat``.

Layouts: LSP stores ``joints`` as (3, 14, N) whose third row flags OCCLUDED joints (every joint is
labelled, occluded ones at a guessed place); LSPET stores (14, 3, N) whose third column flags LABELLED
(visible) joints, the others holding junk coordinates. The layout is detected from the shape; an explicit
``layout`` override reads the flags that way whichever way round the array was saved.

The 14 joints map onto MPII's 16 with ``skeleton.LSP_TO_MPII``; pelvis and thorax become the hip and
shoulder mid-points where both ends are labelled, and stay unlabelled otherwise. Images are about one
person tall, so the person box is the labelled joints' bounding box grown by ``transforms.CROP_MARGIN``
(the same rule a runtime crop from the previous frame's pose uses).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

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
from stagepose.errors import DataError
from stagepose.skeleton import LSP_TO_MPII, remap_to_mpii
from stagepose.transforms import CROP_MARGIN

Layout = Literal["lsp", "lspet"]
DEFAULT_VAL = {"lsp": 1000, "lspet": 500}  # LSP: the standard test half; LSPET: a held-out tail
_IMAGE_NAME = re.compile(r"^im(\d+)\.(jpg|jpeg|png)$", re.IGNORECASE)


def read_joints_mat(path: Path, layout: Layout | None = None) -> tuple[np.ndarray, Layout, str]:
    """Read ``joints.mat`` as (N, 14, 3) [x, y, flag] and say which layout it is.

    Args:
        path: the .mat file.
        layout: force "lsp" or "lspet" flag semantics; None detects from the shape.

    Returns:
        joints (N, 14, 3) float64, the layout, and a note for the summary.

    Raises:
        DataError: missing or unreadable file, no ``joints`` array, or a shape of neither layout.
    """
    import scipy.io
    from scipy.io.matlab import MatReadError

    if not path.is_file():
        raise DataError(
            f"{path}: joints.mat not found; an LSP or LSPET folder holds joints.mat and images/ "
            f"(im0001.jpg or im00001.jpg ...)"
        )
    try:
        mat = scipy.io.loadmat(str(path))
    except (OSError, ValueError, NotImplementedError, TypeError, MatReadError) as exc:
        raise DataError(f"{path}: cannot read as a MATLAB file ({exc}); expected LSP's joints.mat") from None
    if "joints" not in mat:
        keys = [k for k in mat if not k.startswith("__")]
        raise DataError(f"{path}: no 'joints' array (found: {', '.join(keys) or 'nothing'})")
    raw = np.asarray(mat["joints"], dtype=np.float64)
    if raw.ndim != 3 or not ({raw.shape[0], raw.shape[1]} == {3, 14}):
        raise DataError(
            f"{path}: 'joints' has shape {raw.shape}; expected (3, 14, N) for LSP or (14, 3, N) for LSPET"
        )
    stored: Layout = "lsp" if raw.shape[0] == 3 else "lspet"
    data = raw.transpose(2, 1, 0) if stored == "lsp" else raw.transpose(2, 0, 1)  # -> (N, 14, 3)
    if layout is None:
        return data, stored, f"layout {stored} detected from shape {raw.shape}"
    return data, layout, f"layout {layout} (given; the array was stored as {raw.shape})"


def lsp_labels(data: np.ndarray, layout: Layout) -> tuple[np.ndarray, np.ndarray]:
    """(..., 14, 3) [x, y, flag] -> (..., 14, 2) coordinates and (..., 14) labels (1 labelled, 0 not)."""
    xy = data[..., :2]
    finite = np.isfinite(xy).all(axis=-1)
    if layout == "lsp":
        return xy, finite.astype(np.float64)  # the flag marks occlusion; every joint is labelled
    return xy, ((data[..., 2] > 0) & finite).astype(np.float64)


def image_names(root: Path) -> tuple[Path, dict[int, str]]:
    """The image folder (``root/images`` or ``root``) and its files by number (im00042.jpg -> 42)."""
    folder = root / "images" if (root / "images").is_dir() else root
    if not folder.is_dir():
        raise DataError(f"{root}: not a folder; an LSP or LSPET folder holds joints.mat and images/")
    names: dict[int, str] = {}
    for name in sorted(p.name for p in folder.iterdir()):
        match = _IMAGE_NAME.match(name)
        if match:
            names.setdefault(int(match.group(1)), name)
    return folder, names


def load_lsp(
    root: Path,
    *,
    indices: Selection = None,
    layout: Layout | None = None,
    kind: str = "lspet",
    source: str = "",
) -> tuple[list[PersonEntry], DataSummary, Layout]:
    """Person entries of an LSP or LSPET folder.

    Args:
        root: folder with ``joints.mat`` and ``images/``.
        indices: which images (0-based, joints.mat order): a range, a function of the image count, or
            None for all.
        layout: force the flag semantics (see module docstring); None detects.
        kind: "lsp" or "lspet", the prefix of source ids.
        source: spec text for the summary.

    Returns:
        entries, summary, and the layout used.

    Raises:
        DataError: missing joints.mat or images, or no usable sample.
    """
    root = Path(root)
    data, layout_used, note = read_joints_mat(root / "joints.mat", layout)
    folder, names = image_names(root)
    summary = DataSummary(source=source or f"{kind}:{root}")
    summary.notes.append(note)
    indices = resolve_indices(indices, len(data), f"{source or root} (joints.mat)")
    xy_all, labels_all = lsp_labels(data[list(indices)], layout_used)
    prober = ImageProber()
    entries: list[PersonEntry] = []
    summary.entries = len(indices)
    for row, i in enumerate(indices):
        name = names.get(i + 1)
        where = f"{root / 'joints.mat'} image {i} ({name or f'im{i + 1:05d}.jpg'})"
        if name is None:
            summary.skip("image file missing", where)
            continue
        size = prober.probe(folder / name)
        if isinstance(size, str):
            summary.skip(size, where)
            continue
        xy, labels, outside = mask_outside(xy_all[row], labels_all[row], size)
        if outside:
            summary.mask("labelled joint far outside the image", where, outside)
        joints, visible = remap_to_mpii(xy, labels, LSP_TO_MPII, derive_midpoints=True)
        box = joint_box(joints, visible, CROP_MARGIN)
        if box is None:
            summary.skip("fewer than 2 labelled joints (no person box)", where)
            continue
        entries.append(PersonEntry(
            image=folder / name, image_size=size, center=box[0], box=box[1], joints=joints,
            visible=visible, head_size=float("nan"), source_id=f"{kind}:{name}",
        ))  # fmt: skip
    summary.samples = len(entries)
    require_samples(entries, summary, f"check that {folder} holds the images named in joints.mat")
    return entries, summary, layout_used
