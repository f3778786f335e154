"""Training checkpoints: crash-safe writes, weights-only reads, student only.

A training checkpoint (``last.pt``, ``best.pt``) is a dict of tensors and plain data written with
``torch.save`` and read with ``torch.load(weights_only=True)`` (no pickle of arbitrary objects):

- ``model``: the student's state dict (unwrapped from DistributedDataParallel; the teacher is never saved)
- ``preset``: its preset name; ``input_size``: "WxH"; ``heatmap_sigma``: the target sigma (decoders need it)
- ``optimizer``, ``scheduler``, ``scaler``: their state dicts (``scaler`` None without AMP)
- ``step``: optimiser steps done; ``epoch``: the epoch in progress (0-based); ``epoch_step``: batches of
  that epoch already done (0 at an epoch boundary)
- ``best_metric``, ``metric``: best validation value so far and its name (None without validation)
- ``config``: the resolved experiment config as plain data
- ``format``, ``version``: "stagepose-train", 1

``best.safetensors`` holds the best student's weights only (via ``models.checkpoint.save_weights``), with
the preset, input size and heatmap sigma in its metadata: that is the file to ship and export.

Every file is written through ``fileio.atomic_write``, so a crash or power cut mid-write leaves the previous
checkpoint intact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from stagepose.errors import ModelError
from stagepose.fileio import atomic_write
from stagepose.models.checkpoint import SIGMA_KEY, save_weights
from stagepose.sizes import ImageSize

FORMAT = "stagepose-train"
VERSION = 1
REQUIRED_KEYS = ("model", "preset", "optimizer", "scheduler", "step", "epoch", "config")


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside DistributedDataParallel (or ``model`` itself)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write a training checkpoint dict crash-safely (see the module docstring for its keys).

    Raises:
        ValueError: a required key is missing (a bug in the caller, not user input).
    """
    missing = [k for k in REQUIRED_KEYS if k not in payload]
    if missing:
        raise ValueError(f"checkpoint payload lacks {missing}")
    data = {"format": FORMAT, "version": VERSION, **payload}
    return atomic_write(path, lambda tmp: torch.save(data, tmp))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a training checkpoint with ``torch.load(weights_only=True)`` onto the CPU.

    Raises:
        ModelError: missing or unreadable file, or not a checkpoint written by ``stagepose train``
            (a ``.safetensors`` file holds weights only and cannot be resumed from).
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: checkpoint not found")
    if path.suffix == ".safetensors":
        raise ModelError(f"{path}: holds weights only; resume from the run's last.pt "
                         "(or start a new run with model.init={path})")  # fmt: skip
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for foreign or truncated files
        raise ModelError(f"{path}: cannot read as a weights-only checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelError(f"{path}: not a training checkpoint written by `stagepose train`")
    if payload.get("version") != VERSION:
        raise ModelError(f"{path}: checkpoint version {payload.get('version')} is not supported (expected {VERSION})")
    missing = [k for k in REQUIRED_KEYS if k not in payload]
    if missing:
        raise ModelError(f"{path}: checkpoint is incomplete (no {', '.join(missing)})")
    return payload


def save_best_weights(
    path: str | Path,
    model: nn.Module,
    preset: str,
    input_size: ImageSize,
    extra: dict[str, str] | None = None,
    *,
    heatmap_sigma: float,
) -> Path:
    """Write the student's weights as safetensors (crash-safe) with preset, input size (w, h) and the
    training targets' ``heatmap_sigma`` in the header (export and evaluation decode with that sigma)."""
    metadata = {"input_size": ImageSize.of(input_size).text(), SIGMA_KEY: repr(float(heatmap_sigma)),
                **(extra or {})}  # fmt: skip
    return atomic_write(path, lambda tmp: save_weights(tmp, unwrap(model), preset, metadata))


def load_student_weights(model: nn.Module, state: dict[str, torch.Tensor], source: str | Path) -> None:
    """Load a state dict strictly into ``model`` (no silently skipped keys: a half-loaded model
    would train or run on with random weights).

    Raises:
        ModelError: missing or unexpected keys, or tensors of another shape.
    """
    try:
        result = unwrap(model).load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatch
        raise ModelError(f"{source}: weights do not fit the model: {str(exc).splitlines()[-1].strip()}") from None
    if result.missing_keys or result.unexpected_keys:
        raise ModelError(
            f"{source}: weights do not fit the model: missing {result.missing_keys[:5]}, "
            f"unexpected {result.unexpected_keys[:5]} (is it another preset?)"
        )
