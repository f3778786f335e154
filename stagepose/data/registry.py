"""``build_dataset(spec, ...)``: the one call that turns a spec string into a data set.

Used by ``stagepose train`` configs and ``stagepose eval --data SPEC``. See ``stagepose.data.spec`` for the
grammar; in short::

    mpii:ANNOTATIONS.json[:IMAGE_DIR]   lsp:DIR   lspet:DIR   coco:ANNOTATIONS.json[:IMAGE_DIR]   frames:DIR
    ... [@START:END] [?val=N] [?layout=lsp|lspet] [?category=NAME] [?boxes=FILE.json]

Splits: ``lsp`` keeps the standard halves (val = the last 1,000 images), ``lspet`` holds out the last
500 images as val; ``mpii``, ``coco`` and ``frames`` use the whole file for either split unless
``?val=N`` is given (MPII ships ``train.json`` and ``valid.json``). ``@START:END`` selects exactly those
entries, whatever the split.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from stagepose.codec import HeatmapCodec
from stagepose.data.augment import AugmentConfig
from stagepose.data.dataset import PoseDataset
from stagepose.data.entries import PersonEntry
from stagepose.data.spec import SPEC_HELP, DatasetSpec, Split, parse_spec
from stagepose.data.teacher_labels import TeacherLabels
from stagepose.errors import ConfigError, DataError
from stagepose.sizes import HEATMAP_STRIDE, ImageSize


def build_dataset(
    spec: str | DatasetSpec,
    *,
    split: Split = "train",
    input_size: tuple[int, int] = (256, 256),
    augment: AugmentConfig | None = None,
    codec: HeatmapCodec | None = None,
    seed: int = 0,
    teacher_labels: TeacherLabels | None = None,
) -> PoseDataset:
    """A data set for ``spec``.

    Args:
        spec: spec string (or parsed spec).
        split: "train" or "val": picks the entries (see module docstring).
        input_size: crop (width, height); heatmaps are ``sizes.HEATMAP_STRIDE`` times smaller.
        augment: random changes for training; must be None for "val".
        codec: target encoder; default ``HeatmapCodec.for_input(input_size)``. Its
            ``input_size`` must equal ``input_size``.
        seed: base seed of the per-sample generators.
        teacher_labels: offline teacher keypoints to render into every sample (``teacher_heatmaps``).

    Raises:
        DataError: bad spec (the message lists the allowed forms), missing or malformed files, or no
            usable sample.
        ConfigError: augmentation asked for the val split, or a codec of another input size.
    """
    parsed = parse_spec(spec) if isinstance(spec, str) else spec
    input_size = ImageSize.of(input_size)
    if min(input_size) < HEATMAP_STRIDE or input_size.width % HEATMAP_STRIDE or input_size.height % HEATMAP_STRIDE:
        raise ConfigError(f"input_size {input_size.text()}: width and height must be positive multiples of "
                          f"{HEATMAP_STRIDE}")  # fmt: skip
    if codec is None:
        codec = HeatmapCodec.for_input(input_size)
    elif codec.input_size != input_size:
        raise ConfigError(f"codec input_size {tuple(codec.input_size)} differs from the data input_size {input_size}")
    if split == "val" and augment is not None:
        raise ConfigError(f"{parsed.text}: the val split is never augmented; pass augment=None")
    if split not in ("train", "val"):
        raise ConfigError(f"split must be 'train' or 'val', got {split!r}")
    source = f"{parsed.text} [{split}]"
    entries: list[PersonEntry]
    metric = "pck"
    if parsed.kind in ("lsp", "lspet"):
        from stagepose.data.lsp import DEFAULT_VAL, load_lsp

        indices = partial(parsed.select, split=split, default_val=DEFAULT_VAL[parsed.kind])
        layout = parsed.options.get("layout")
        entries, summary, _ = load_lsp(parsed.path, indices=indices, layout=layout, kind=parsed.kind,  # type: ignore[arg-type]
                                       source=source)  # fmt: skip
    elif parsed.kind == "mpii":
        import numpy as np

        from stagepose.data.mpii import load_mpii

        indices = partial(parsed.select, split=split, default_val=None)
        entries, summary = load_mpii(parsed.path, image_dir=parsed.image_dir, indices=indices, source=source)
        metric = "pckh" if any(np.isfinite(e.head_size) for e in entries) else "pck"
    elif parsed.kind == "coco":
        from stagepose.data.coco import load_coco

        indices = partial(parsed.select, split=split, default_val=None)
        entries, summary = load_coco(parsed.path, image_dir=parsed.image_dir, indices=indices,
                                     category=parsed.options.get("category"), source=source)  # fmt: skip
    elif parsed.kind == "frames":
        from stagepose.data.frames import load_frames

        boxes = parsed.options.get("boxes")
        indices = partial(parsed.select, split=split, default_val=None)
        entries, summary = load_frames(
            parsed.path, aspect=input_size[0] / input_size[1], boxes=Path(boxes) if boxes else None,
            indices=indices, source=source,
        )  # fmt: skip
    else:  # parse_spec only returns known kinds
        raise DataError(f"data spec {parsed.text!r}: unknown kind; {SPEC_HELP}")
    summary.log()
    return PoseDataset(entries, codec=codec, augment=augment, seed=seed, summary=summary,
                       metric=metric, name=source, teacher_labels=teacher_labels)  # type: ignore[arg-type]  # fmt: skip
