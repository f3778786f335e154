"""Evaluation: run a model over a data set, decode, score PCKh@0.5 / PCK@0.2, report as the paper's Table 2.

The last stack's heatmaps are decoded by the codec, mapped to ORIGINAL image pixels through each
sample's crop affine and compared with the ground truth there. The metric follows the data: PCKh@0.5
(threshold = half the MPII head size) where samples carry a finite ``head_size``, otherwise PCK@0.2 of the
torso (LSP). With the flip test, each crop is also run mirrored; those heatmaps are mirrored back, their
left/right joints swapped and shifted by the sub-pixel offset a mirror introduces (see ``flip_back``),
then averaged with the plain ones.

Heatmaps are decoded with the sigma the checkpoint records (``heatmap_sigma``, written by ``stagepose
train``; 2.0 for files that predate it): DARK refinement assumes that width. The report says what was
scored: of the samples read, those without the metric's normaliser (for PCK@0.2 a labelled left shoulder
and right hip) are not scored, and each Table 2 column comes from a given number of joints.
"""

from __future__ import annotations

import json
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from stagepose.codec import DEFAULT_SIGMA, HeatmapCodec
from stagepose.errors import DataError
from stagepose.fileio import atomic_write_text
from stagepose.metrics import PCKResult, pck_torso, pckh, table2_counts_row, table2_header, table2_row
from stagepose.sizes import ImageSize
from stagepose.skeleton import flip_permutation

DEFAULT_INPUT_SIZE = ImageSize(256, 256)


def flip_back(heatmaps: Tensor, input_width: int) -> Tensor:
    """Heatmaps of horizontally mirrored crops -> heatmaps of the crops themselves.

    A crop mirrored as ``x' = (w - 1) - x`` (what ``torch.flip`` does to the input) puts joint k's
    partner where k was. Mirroring the heatmap array maps heatmap pixel j to ``W - 1 - j``, but the codec
    places input pixel x at heatmap coordinate ``x / s`` (s = w / W), so the mirrored-back peak lands
    ``d = (w - 1) / s - (W - 1)`` heatmap pixels left of the true one (0.75 px at stride 4; HRNet shifts
    by a whole pixel). This undoes the mirror, swaps left and right and shifts right by ``d`` with linear
    interpolation.

    Args:
        heatmaps: (N, K, H, W) output for mirrored inputs (K = 16, MPII order).
        input_width: model input width w in pixels.

    Returns:
        (N, K, H, W) heatmaps aligned with the un-mirrored crops (a new tensor).
    """
    width = heatmaps.shape[-1]
    perm = torch.as_tensor(flip_permutation(), device=heatmaps.device)
    out = heatmaps.flip(-1).index_select(1, perm)
    stride = input_width / width
    shift = (input_width - 1) / stride - (width - 1)
    whole = int(np.floor(shift))
    frac = shift - whole
    if whole == 0 and frac < 1e-9:
        return out
    # out(j) <- old(j - shift) = (1 - frac) * old(j - whole) + frac * old(j - whole - 1), edges replicated
    pad = whole + 1
    padded = torch.cat([out[..., :1].expand(*out.shape[:-1], pad), out], dim=-1)
    a = padded[..., pad - whole : pad - whole + width]
    b = padded[..., pad - whole - 1 : pad - whole - 1 + width]
    return (1.0 - frac) * a + frac * b


@dataclass(frozen=True)
class Predictions:
    """Decoded predictions and the ground truth they are scored against.

    Attributes:
        coords: (N, 16, 2) predicted joints in original image pixels.
        confidence: (N, 16) heatmap peak values.
        joints: (N, 16, 2) ground truth in image pixels; visible: (N, 16) 1 where labelled.
        head_size: (N,) MPII head sizes (NaN where none).
        source_ids: N sample names.
    """

    coords: np.ndarray
    confidence: np.ndarray
    joints: np.ndarray
    visible: np.ndarray
    head_size: np.ndarray
    source_ids: list[str]


@torch.no_grad()
def predict(
    model: nn.Module,
    loader: DataLoader[Any] | Any,
    codec: HeatmapCodec,
    device: torch.device,
    *,
    flip: bool = False,
    amp: bool = False,
    progress: bool = False,
    desc: str = "eval",
) -> Predictions:
    """Run ``model`` over ``loader`` (batches of the agreed sample dict) and decode to image pixels.

    The model is put in eval mode for the pass and returned to its previous mode afterwards.
    """
    from tqdm import tqdm

    was_training = model.training
    model.eval()
    coords, conf, joints, visible, heads, ids = [], [], [], [], [], []
    autocast = torch.autocast("cuda", dtype=torch.float16) if amp and device.type == "cuda" else nullcontext()
    try:
        for batch in tqdm(loader, desc=desc, disable=not progress, leave=False, unit="batch"):
            images = batch["image"].to(device, non_blocking=True)
            with autocast:
                heatmaps = model(images)[:, -1].float()
                if flip:
                    mirrored = model(images.flip(-1))[:, -1].float()
                    heatmaps = 0.5 * (heatmaps + flip_back(mirrored, images.shape[-1]))
            c, p = codec.decode(heatmaps.cpu().numpy())
            coords.append(codec.heatmap_to_image(c, batch["image_to_input"].numpy().astype(np.float64)))
            conf.append(p)
            joints.append(batch["joints"].numpy())
            visible.append(batch["visible"].numpy())
            heads.append(np.asarray(batch["head_size"], dtype=np.float64).reshape(-1))
            ids.extend(batch["source_id"])
    finally:
        model.train(was_training)
    if not coords:
        raise DataError("evaluation data set is empty")
    return Predictions(np.concatenate(coords), np.concatenate(conf), np.concatenate(joints).astype(np.float64),
                       np.concatenate(visible), np.concatenate(heads), ids)  # fmt: skip


def score(pred: Predictions) -> PCKResult:
    """PCKh@0.5 where any sample has a finite head size (MPII), else PCK@0.2 of the torso (LSP).

    Samples without the normaliser (a head size in an MPII-style set, a torso for PCK) are not scored;
    they are counted in ``samples_skipped`` with the reason in ``skip_reason``.
    """
    if np.isfinite(pred.head_size).any():
        return pckh(pred.coords, pred.joints, pred.visible, pred.head_size)
    return pck_torso(pred.coords, pred.joints, pred.visible)


def make_loader(dataset: Dataset[Any], batch_size: int, workers: int, device: torch.device) -> DataLoader[Any]:
    """An in-order loader for evaluation."""
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers,
                      pin_memory=device.type == "cuda", drop_last=False)  # fmt: skip


@dataclass(frozen=True)
class EvalReport:
    """Result of ``evaluate_checkpoint``: the metric, model size and where it came from.

    ``samples`` counts the samples read; ``result.samples_used`` of them were scored (see the module
    docstring).
    """

    label: str
    checkpoint: str
    preset: str
    data: str
    input_size: ImageSize
    flip: bool
    result: PCKResult
    params_m: float
    gflops: float
    samples: int
    seconds: float
    heatmap_sigma: float = DEFAULT_SIGMA

    def scored_line(self) -> str:
        """'PCK@0.2 scored 371 of 500 samples read (129 not: no torso reference ...)'."""
        result = self.result
        line = f"{result.name} scored {result.samples_used} of {self.samples} samples read"
        if result.samples_skipped:
            line += f" ({result.samples_skipped} not: {result.skip_reason})"
        return line

    def table(self) -> str:
        """The paper's Table 2 header, this row and the joints each column scored, then what was scored."""
        limb = self.result.limb_mean
        limbs = self.result.group_counts["limbs"]
        return "\n".join([
            table2_header(),
            table2_row(self.label, self.result, self.params_m, self.gflops),
            table2_counts_row(self.result),
            f"{self.scored_line()}; input {self.input_size[0]}x{self.input_size[1]}, heatmap sigma "
            f"{self.heatmap_sigma:g}{', flip test' if self.flip else ''}",
            f"limb-joint mean (12 joints, shoulders to ankles, {limbs} scored): "
            + (f"{limb:.1f}%" if np.isfinite(limb) else "-"),
        ])  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        """The report as plain data; ``samples`` (read) stays for ``stagepose eval-compare``."""
        return {
            "label": self.label,
            "checkpoint": self.checkpoint,
            "preset": self.preset,
            "data": self.data,
            "input_size": list(self.input_size),
            "heatmap_sigma": self.heatmap_sigma,
            "flip_test": self.flip,
            "params_m": round(self.params_m, 3),
            "gflops": round(self.gflops, 3),
            "samples": self.samples,
            "samples_read": self.samples,
            "samples_scored": self.result.samples_used,
            "samples_not_scored": self.result.samples_skipped,
            "seconds": round(self.seconds, 2),
            **self.result.to_json(),
        }


def evaluate_checkpoint(
    checkpoint: str | Path,
    data: str,
    *,
    preset: str | None = None,
    input_size: ImageSize | None = None,
    batch_size: int = 32,
    workers: int = 0,
    flip: bool = False,
    device: str = "auto",
    progress: bool = True,
    json_path: str | Path | None = None,
    label: str | None = None,
) -> EvalReport:
    """Evaluate trained weights on the "val" split of a data set spec.

    Args:
        checkpoint: ``.safetensors`` or a training ``.pt`` (preset, input size and heatmap sigma are
            read from it).
        data: data set spec, e.g. ``lspet:data/lspet`` (its val split) or ``mpii:annot/valid.json:images``.
        preset: expected preset (must match what the checkpoint records; needed if it records none).
        input_size: (width, height); default: the size the checkpoint was trained at, else 256x256.
        batch_size, workers: loading.
        flip: add the flip test.
        device: "auto", "cpu" or "cuda".
        progress: show a progress bar.
        json_path: also write the report as JSON here.
        label: row label (default: the preset's name).

    Raises:
        ModelError: unreadable checkpoint or weights that do not fit the preset.
        DataError: bad spec or data.
    """
    from stagepose.data import build_dataset
    from stagepose.models.checkpoint import load_model_and_metadata, recorded_input_size, recorded_sigma
    from stagepose.models.info import measure
    from stagepose.train.distributed import resolve_device

    checkpoint = Path(checkpoint)
    model, spec, metadata = load_model_and_metadata(checkpoint, preset)
    sigma = recorded_sigma(metadata, checkpoint)
    size = ImageSize.of(input_size) if input_size else recorded_input_size(metadata) or DEFAULT_INPUT_SIZE
    multiple = spec.min_input_multiple
    if size[0] % multiple or size[1] % multiple:
        raise DataError(f"input size {size[0]}x{size[1]} must be multiples of {multiple} for preset {spec.name!r}")
    dev = resolve_device(device)
    model.to(dev)
    codec = HeatmapCodec.for_input(size, sigma=sigma)
    dataset = build_dataset(data, split="val", input_size=size, codec=codec)
    start = time.perf_counter()
    pred = predict(model, make_loader(dataset, batch_size, workers, dev), codec, dev, flip=flip,
                   progress=progress, desc=f"eval {spec.name}")  # fmt: skip
    seconds = time.perf_counter() - start
    stats = measure(spec, size)
    report = EvalReport(
        label=label or spec.name, checkpoint=str(checkpoint), preset=spec.name, data=data, input_size=size,
        flip=flip, result=score(pred), params_m=stats.params_m, gflops=stats.gflops, samples=len(pred.source_ids),
        seconds=seconds, heatmap_sigma=sigma,
    )  # fmt: skip
    if json_path is not None:
        atomic_write_text(json_path, json.dumps(report.to_json(), indent=2) + "\n")
    return report
