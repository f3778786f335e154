"""Saving and loading model weights without pickle.

Shipped weights are safetensors with the preset name in the metadata. Training checkpoints are a dict
of tensors and plain data saved with ``torch.save`` and read with ``torch.load(weights_only=True)``; they
hold the student state dict under ``"model"`` and the preset name under ``"preset"``. Loads are strict
(a silently skipped key would leave random weights): a missing or unexpected key is an error naming the keys.

Both kinds also record how the heatmaps must be read: ``input_size`` ("WxH") and ``heatmap_sigma`` (the
Gaussian sigma of the training targets, which DARK decoding depends on). Files written before the sigma
was recorded were all trained with ``codec.DEFAULT_SIGMA``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from stagepose.codec import DEFAULT_SIGMA
from stagepose.errors import ModelError
from stagepose.models.registry import ModelPreset, build_model, get_preset
from stagepose.sizes import ImageSize

SIGMA_KEY = "heatmap_sigma"


def save_weights(path: str | Path, model: nn.Module, preset: str, metadata: dict[str, str] | None = None) -> Path:
    """Write ``model``'s state dict as safetensors with ``preset`` (and ``metadata``) in the header."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata={"preset": preset, **(metadata or {})})
    return path


def load_state(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read weights and metadata from a ``.safetensors`` file or a training checkpoint (``.pt``).

    Returns:
        The state dict and a metadata dict (at least ``preset`` when the file records it).

    Raises:
        ModelError: the file is missing, unreadable or not a stagepose checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: checkpoint not found")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt") as handle:
                metadata = dict(handle.metadata() or {})
                state = {key: handle.get_tensor(key) for key in handle.keys()}
        except (SafetensorError, OSError) as exc:
            raise ModelError(f"{path}: not a readable safetensors file: {exc}") from None
        return state, metadata
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for foreign or corrupt files
        raise ModelError(
            f"{path}: cannot load as a weights-only checkpoint ({type(exc).__name__}: {exc}); "
            "stagepose reads .safetensors or checkpoints written by `stagepose train`"
        ) from None
    if not isinstance(payload, dict) or "model" not in payload:
        raise ModelError(f"{path}: not a stagepose training checkpoint (no 'model' entry)")
    metadata = {k: v for k, v in payload.items() if k != "model" and isinstance(v, (str, int, float))}
    if SIGMA_KEY not in metadata:  # written before the sigma was recorded: the resolved config has it
        config = payload.get("config")
        data = config.get("data") if isinstance(config, dict) else None
        if isinstance(data, dict) and SIGMA_KEY in data:
            metadata[SIGMA_KEY] = data[SIGMA_KEY]
    return payload["model"], metadata


def recorded_sigma(metadata: dict[str, Any], path: str | Path) -> float:
    """The heatmap sigma a checkpoint records (``codec.DEFAULT_SIGMA`` when it records none).

    Raises:
        ModelError: the recorded value is not a finite number > 0 (names the file and the field).
    """
    value = metadata.get(SIGMA_KEY)
    if value is None:
        return DEFAULT_SIGMA
    try:
        sigma = float(value)
    except (TypeError, ValueError):
        sigma = math.nan
    if not (math.isfinite(sigma) and sigma > 0):
        raise ModelError(f"{path}: metadata field '{SIGMA_KEY}' must be a number > 0, got {value!r}; "
                         "re-save the weights from the training run that made them")  # fmt: skip
    return sigma


def recorded_input_size(metadata: dict[str, Any]) -> ImageSize | None:
    """The input size a checkpoint records ("WxH", written by `stagepose train`); None if absent or malformed."""
    try:
        return ImageSize.parse(str(metadata["input_size"]))
    except (KeyError, ValueError):
        return None


def resolve_preset(metadata: dict[str, Any], preset: str | None, path: str | Path) -> ModelPreset:
    """The preset to build: the one the file records, checked against an explicit ``preset``."""
    recorded = metadata.get("preset")
    if preset and recorded and preset != recorded:
        raise ModelError(f"{path}: checkpoint is preset {recorded!r}, but {preset!r} was requested")
    name = preset or recorded
    if not name:
        raise ModelError(f"{path}: checkpoint does not record its preset; pass --preset")
    return get_preset(str(name))


def load_model(path: str | Path, preset: str | None = None) -> tuple[nn.Module, ModelPreset]:
    """Build the recorded preset and load the weights strictly; returns the model in eval mode."""
    model, spec, _ = load_model_and_metadata(path, preset)
    return model, spec


def load_model_and_metadata(
    path: str | Path, preset: str | None = None
) -> tuple[nn.Module, ModelPreset, dict[str, Any]]:
    """`load_model`, plus the file's metadata (input size, heatmap sigma) from the same read."""
    state, metadata = load_state(path)
    spec = resolve_preset(metadata, preset, path)
    model = build_model(spec)
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # tensor shapes differ: weights of another preset under this label
        raise ModelError(
            f"{path}: weights do not fit preset {spec.name!r} (the file or its sidecar names the wrong preset?): "
            f"{str(exc).splitlines()[-1].strip()[:300]}"
        ) from None
    if result.missing_keys or result.unexpected_keys:
        raise ModelError(
            f"{path}: weights do not fit preset {spec.name!r}: "
            f"missing {result.missing_keys[:5]}{'...' if len(result.missing_keys) > 5 else ''}, "
            f"unexpected {result.unexpected_keys[:5]}{'...' if len(result.unexpected_keys) > 5 else ''}"
        )
    return model.eval(), spec, metadata
