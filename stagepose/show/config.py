"""The show config: one YAML file that says which cameras, model, smoothing and outputs a show uses.

Loaded with ``safe_load`` into frozen dataclasses (``stagepose.config``); anything wrong is a
``ConfigError`` naming the file, line and field and what is allowed. Relative paths (clips, models,
calibration files, the record) are relative to the show file's folder, so a show folder can be
copied between machines. ``stagepose check --show FILE`` runs all of this without starting anything.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from stagepose.config import Source, from_dict, load_yaml
from stagepose.errors import ConfigError
from stagepose.show.filters import SmoothingConfig
from stagepose.show.osc import OscDestinationConfig, validate_performer_name
from stagepose.show.record import RecordConfig
from stagepose.show.sources.uri import parse_source_uri
from stagepose.show.telemetry import TelemetryConfig
from stagepose.show.tracking import TrackingConfig


@dataclass(frozen=True)
class CameraConfig:
    """One camera feed and the performer it follows.

    Attributes:
        id: short name used in logs, telemetry and the record (unique per show).
        uri: the feed: ``rtsp://...``, ``ndi://SOURCE NAME[?ips=...]``, ``file://PATH`` (or a path) with
            ``?loop=true&pacing=realtime|fast``, or ``webcam:0``.
        performer: the performer this camera follows; OSC addresses use it (``/stagepose/<performer>/...``).
        zone: optional image polygon [[x, y], ...] (pixels, 3+ points) where the performer is looked for.
        calibration: optional calibration YAML (``stagepose calibrate``) for undistortion and stage metres.
        stall_timeout_s: no frame for this long reports the camera stalled and reopens live feeds.
        enabled: false leaves the camera out without deleting its section.
    """

    id: str
    uri: str
    performer: str
    zone: list[tuple[float, float]] | None = None
    calibration: str | None = None
    stall_timeout_s: float = 2.0
    enabled: bool = True

    def __post_init__(self) -> None:
        if not self.id or not self.id.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"id {self.id!r} must be letters, digits, '-' or '_'")
        validate_performer_name(self.performer)
        if self.zone is not None and len(self.zone) < 3:
            raise ValueError(f"zone needs at least 3 points [x, y], got {len(self.zone)}")
        if not (math.isfinite(self.stall_timeout_s) and self.stall_timeout_s > 0):
            raise ValueError(f"stall_timeout_s must be > 0, got {self.stall_timeout_s}")


@dataclass(frozen=True)
class ModelConfig:
    """Which model runs and on what.

    Attributes:
        path: the exported model (``NAME.onnx`` with its ``NAME.json`` sidecar; TensorRT engines for
            it are looked up in ``engines_dir``), a built ``.engine``, or ``.safetensors`` weights (torch).
        backend: ``auto`` (TensorRT, then ONNX Runtime on CUDA, PyTorch on CUDA, ONNX Runtime on CPU),
            ``tensorrt``, ``onnxruntime`` or ``torch``.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        fp16: half precision on the GPU (ignored on the CPU).
        cuda_graph: replay CUDA graphs (TensorRT, torch on CUDA).
        threads: CPU threads for inference (null: all usable cores, at most 8).
        engines_dir: where TensorRT engines are cached (null: beside the ONNX file).
        build_engine_if_missing: build a TensorRT engine at start-up when none fits this GPU (minutes).
    """

    path: str
    backend: Literal["auto", "tensorrt", "onnxruntime", "torch"] = "auto"
    device: str = "auto"
    fp16: bool = True
    cuda_graph: bool = False
    threads: int | None = None
    engines_dir: str | None = None
    build_engine_if_missing: bool = False


@dataclass(frozen=True)
class OutputsConfig:
    """Where results go: OSC destinations (several allowed) and the keypoint record."""

    osc: list[OscDestinationConfig] = field(default_factory=list)
    record: RecordConfig = field(default_factory=RecordConfig)

    def __post_init__(self) -> None:
        names = [d.name for d in self.osc]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"osc destination names must be unique, repeated: {duplicates}")


@dataclass(frozen=True)
class RunConfig:
    """How the live loop ends: at the end of file sources, or never (live feeds) unless told."""

    stop_when_sources_end: bool = True
    max_duration_s: float | None = None


@dataclass(frozen=True)
class ShowConfig:
    """A whole show. See ``show_configs/symphony.yaml`` for a commented example."""

    show: str
    cameras: list[CameraConfig]
    model: ModelConfig
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    smoothing: SmoothingConfig = field(default_factory=SmoothingConfig)
    outputs: OutputsConfig = field(default_factory=OutputsConfig)
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig)
    run: RunConfig = field(default_factory=RunConfig)
    base_dir: str = "."

    def __post_init__(self) -> None:
        if not self.cameras:
            raise ValueError("a show needs at least one camera under 'cameras'")
        ids = [c.id for c in self.cameras]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"camera ids must be unique, repeated: {repeated}")
        if not any(c.enabled for c in self.cameras):
            raise ValueError("every camera is disabled (enabled: false): enable at least one")
        followers: dict[str, list[str]] = {}
        for camera in self.active_cameras:
            followers.setdefault(camera.performer, []).append(camera.id)
        shared = {p: ids for p, ids in followers.items() if len(ids) > 1}
        if shared:
            raise ValueError(
                f"each camera follows its own performer, but {shared} share one; give each camera a "
                "distinct performer name (multi-view fusion is not supported)"
            )

    @property
    def active_cameras(self) -> list[CameraConfig]:
        return [c for c in self.cameras if c.enabled]

    def resolve(self, path: str | Path) -> Path:
        """A path from the config, made absolute against the show file's folder."""
        path = Path(path).expanduser()
        return path if path.is_absolute() else Path(os.path.normpath(Path(self.base_dir) / path))

    @property
    def needs_stage_calibration(self) -> bool:
        return any(d.coords == "stage" for d in self.outputs.osc)


def load_show(path: str | Path) -> ShowConfig:
    """Load and validate a show file: types, camera URIs, and that every named file exists.

    Raises:
        ConfigError: with ``FILE:LINE: field '...': what is wrong`` for the first problem found.
    """
    path = Path(path)
    data, source = load_yaml(path)
    if isinstance(data, dict) and "base_dir" in data:
        raise ConfigError(f"{source.where(('base_dir',))}: field 'base_dir': set by stagepose, not in the file")
    config = from_dict(ShowConfig, data, source)
    config = replace(config, base_dir=str(path.resolve().parent))
    _check_files(config, source)
    return config


def _check_files(config: ShowConfig, source: Source) -> None:
    """Check URIs and that files the show names exist, pointing at the line that names them."""
    for i, camera in enumerate(config.cameras):
        where = source.where(("cameras", i, "uri"))
        try:
            parse_source_uri(camera.uri, base_dir=config.base_dir)  # also checks that a video file exists
        except ValueError as exc:
            raise ConfigError(f"{where}: field 'cameras[{i}].uri': {exc}") from None
        if camera.calibration is not None and not config.resolve(camera.calibration).is_file():
            raise ConfigError(
                f"{source.where(('cameras', i, 'calibration'))}: field 'cameras[{i}].calibration': "
                f"{config.resolve(camera.calibration)} not found; make one with `stagepose calibrate`"
            )
    model_path = config.resolve(config.model.path)
    if not model_path.is_file():
        raise ConfigError(
            f"{source.where(('model', 'path'))}: field 'model.path': {model_path} not found; "
            "export one with `stagepose export --checkpoint CKPT --out engines/NAME.onnx`"
        )
    if config.needs_stage_calibration:
        missing = [c.id for c in config.active_cameras if c.calibration is None]
        if missing:
            raise ConfigError(
                f"{source.where(('outputs', 'osc'))}: an OSC destination uses coords: stage, but cameras "
                f"{missing} have no calibration file; calibrate them or use coords: normalized"
            )
