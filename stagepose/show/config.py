"""The show config: one YAML file that says which cameras, model, smoothing and outputs a show uses.

Loaded with ``safe_load`` into frozen dataclasses (``stagepose.config``); anything wrong is a
``ConfigError`` naming the file, line and field and what is allowed. Every number has a range, so a
value the live loop could not use (``threads: -5``, ``stall_timeout_s: 1e308``) is refused here, not
mid-show. Relative paths (clips, models, calibration files, the record) are relative to the show
file's folder, so a show folder can be copied between machines. ``stagepose check --show FILE`` runs
all of this and the checks that need the media and the model (`stagepose.show.check`).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

from stagepose.config import KeyPath, Source, check_range, format_path, from_dict, load_yaml, resolve_path
from stagepose.errors import ConfigError
from stagepose.runtime.backends.base import BackendConfig, InferenceSettings
from stagepose.show.filters import SmoothingConfig
from stagepose.show.monitor.config import MonitorConfig
from stagepose.show.osc import OscDestinationConfig, validate_performer_name
from stagepose.show.record import RecordConfig
from stagepose.show.sources.uri import parse_source_uri
from stagepose.show.telemetry import TelemetryConfig
from stagepose.show.tracking import TrackingConfig

MAX_STALL_TIMEOUT_S = 3600.0  # longer is "never": the stall watchdog would wait past the show
MAX_ZONE_PX = 100_000.0  # no camera is wider; beyond this a zone point is a typo
log = logging.getLogger(__name__)
_FILE_SCHEME = re.compile(r"^file://", re.IGNORECASE)
_OTHER_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")
_URI_MISSING = (
    "required field is missing: the camera's address (rtsp://, ndi://, a video file or webcam:N); "
    "only `stagepose replay --input VIDEO` runs without one"
)


Zone = list[tuple[float, float]] | Literal["anywhere"]
_ANYWHERE: Literal["anywhere"] = "anywhere"


def _check_zone(zone: list[tuple[float, float]], what: str) -> None:
    if len(zone) < 3:
        raise ValueError(f"{what} needs at least 3 points [x, y], got {len(zone)}")
    for i, point in enumerate(zone):
        if not all(math.isfinite(v) and abs(v) <= MAX_ZONE_PX for v in point):
            raise ValueError(f"{what} point {i} {list(point)} must be finite pixel coordinates")


@dataclass(frozen=True)
class CameraConfig:
    """One camera feed. Who it follows is said under ``performers`` (several per camera allowed).

    Attributes:
        id: short name used in logs, telemetry and the record (unique per show).
        uri: the feed: ``rtsp://...``, ``ndi://SOURCE NAME[?ips=...]``, ``file://PATH`` (or a path) with
            ``?loop=true&pacing=realtime|fast``, or ``webcam:0``. Optional only for ``stagepose replay``,
            whose ``--input`` videos replace the feeds.
        calibration: optional calibration YAML (``stagepose calibrate``) for undistortion and stage metres.
        stall_timeout_s: no frame for this long reports the camera stalled and reopens live feeds
            (at most an hour).
        enabled: false leaves the camera out without deleting its section.
        performer, zone: the old one-performer-per-camera form (a file without ``performers``); it still
            loads, read as one performer per camera, and ``stagepose convert-show`` rewrites it.
    """

    id: str
    uri: str
    calibration: str | None = None
    stall_timeout_s: float = 2.0
    enabled: bool = True
    performer: str | None = None
    zone: list[tuple[float, float]] | None = None

    def __post_init__(self) -> None:
        if not self.id or not self.id.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"id {self.id!r} must be letters, digits, '-' or '_'")
        if self.performer is not None:
            validate_performer_name(self.performer)
        if self.zone is not None:
            _check_zone(self.zone, "zone")
        check_range("stall_timeout_s", self.stall_timeout_s, 0.0, MAX_STALL_TIMEOUT_S, low_open=True, unit=" s")

    @property
    def legacy(self) -> bool:
        """Whether this camera uses the old form (``performer``/``zone`` on the camera)."""
        return self.performer is not None or self.zone is not None


@dataclass(frozen=True)
class PerformerConfig:
    """One named performer and where each camera looks for them.

    Attributes:
        name: the performer's name in logs, the status board and the record.
        osc_name: the name in OSC addresses (``/stagepose/<osc_name>/...``); default: ``name``.
        cameras: camera id -> the image polygon [[x, y], ...] (pixels, 3+ points) where that camera looks
            for this performer, or ``anywhere`` (the whole frame). A pose outside the zone is never this
            performer, so a bystander outside every zone is never named.
    """

    name: str
    cameras: dict[str, Zone]
    osc_name: str | None = None

    def __post_init__(self) -> None:
        validate_performer_name(self.name)
        validate_performer_name(self.address)
        if not self.cameras:
            raise ValueError(f"performer {self.name!r}: cameras must name at least one camera id")
        for camera_id, zone in self.cameras.items():
            if not isinstance(zone, str):
                _check_zone(zone, f"cameras.{camera_id}")

    @property
    def address(self) -> str:
        """The name in OSC addresses and in results (``osc_name`` or ``name``)."""
        return self.osc_name or self.name

    def zone(self, camera_id: str) -> list[tuple[float, float]] | None:
        """The zone polygon in ``camera_id``, None for anywhere (or a camera this performer is not in)."""
        zone = self.cameras.get(camera_id)
        return None if zone is None or isinstance(zone, str) else list(zone)


@dataclass(frozen=True)
class ModelConfig(InferenceSettings):
    """Which model runs and on what: the backend settings (`InferenceSettings`: ``backend``, ``device``,
    ``fp16``, ``cuda_graph``, ``threads``, with the same defaults as `BackendConfig`) plus the files.

    Attributes:
        path: the exported model (``NAME.onnx`` with its ``NAME.json`` sidecar; TensorRT engines for
            it are looked up in ``engines_dir``), a built ``.engine``, or ``.safetensors`` weights (torch).
        engines_dir: where TensorRT engines are cached (null: beside the ONNX file).
        build_engine_if_missing: build a TensorRT engine at start-up when none fits this GPU (minutes).
    """

    path: str
    engines_dir: str | None = None
    build_engine_if_missing: bool = False

    def backend_config(self, resolve: Callable[[str], Path], max_batch: int) -> BackendConfig:
        """The backend settings of this section: the shared fields as they are, paths made absolute.

        Args:
            resolve: makes a path from the show file absolute (`ShowConfig.resolve`).
            max_batch: the largest batch the show runs (its camera count).
        """
        shared = {f.name: getattr(self, f.name) for f in fields(InferenceSettings)}
        return BackendConfig(
            model=resolve(self.path),
            engines_dir=None if self.engines_dir is None else resolve(self.engines_dir),
            build_if_missing=self.build_engine_if_missing,
            max_batch=max_batch,
            **shared,
        )


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

    def __post_init__(self) -> None:
        if self.max_duration_s is not None:
            check_range("max_duration_s", self.max_duration_s, 0.0, 7 * 24 * 3600.0, low_open=True, unit=" s")


MAX_SYNC_WAIT_MS = 100.0  # live multiview never holds the show longer than this for a late camera


@dataclass(frozen=True)
class MultiviewConfig:
    """Several calibrated cameras seeing the same performers, fused into one 3D pose per performer.

    With this section a performer may name several cameras; every active camera then needs a calibration
    file with ``extrinsics`` (all in one world frame). Each frame's 2D poses are associated across cameras,
    triangulated (`stagepose.multiview.triangulate`) and smoothed in metres (`stagepose.multiview.smoothing`).

    Attributes:
        enabled: false turns the fusion off (a performer is then again followed by one camera only).
        min_views: views a joint needs to be triangulated (2 or more).
        max_reprojection_px: a view reprojecting further than this (pixels) is dropped from a joint.
        min_confidence: a view's 2D joint below this heatmap confidence is not used.
        association: how poses of different cameras are found to be one performer: ``by_name`` (the
            performer names the zones under ``performers`` give) or ``epipolar`` (poses grouped by
            epipolar consistency across cameras, each group named by the cameras' vote).
        fix_left_right: read a view whose whole pose has left and right swapped the other way round.
        min_height_m: a joint triangulated lower than this (metres, world z; the calibrations' floor is z = 0)
            is dropped: views that agree on a wrong thing can put a foot under the stage. null: no limit
            (a world frame whose floor is not at z = 0).
        sync_tolerance_ms: live only: frames of different cameras are one time step when their capture
            times are within this; default (null): half the longest frame period of the cameras.
        sync_wait_ms: live only: how long the show waits for a camera whose newest frame is older than
            the others' (its next frame is due); default (null): one frame period of the slowest
            camera, at most ``MAX_SYNC_WAIT_MS``. 0 never waits (that camera then sits out the step).
    """

    enabled: bool = True
    min_views: int = 2
    max_reprojection_px: float = 25.0
    min_confidence: float = 0.2
    association: Literal["by_name", "epipolar"] = "by_name"
    fix_left_right: bool = True
    min_height_m: float | None = -0.5
    sync_tolerance_ms: float | None = None
    sync_wait_ms: float | None = None

    def __post_init__(self) -> None:
        check_range("min_views", self.min_views, 2, 64)
        check_range("max_reprojection_px", self.max_reprojection_px, 0.0, 10_000.0, low_open=True, unit=" px")
        check_range("min_confidence", self.min_confidence, 0.0, 1.0)
        if self.min_height_m is not None:
            check_range("min_height_m", self.min_height_m, -100.0, 100.0, unit=" m")
        if self.sync_tolerance_ms is not None:
            check_range("sync_tolerance_ms", self.sync_tolerance_ms, 0.0, 1000.0, low_open=True, unit=" ms")
        if self.sync_wait_ms is not None:
            check_range("sync_wait_ms", self.sync_wait_ms, 0.0, MAX_SYNC_WAIT_MS, unit=" ms")
        if self.min_confidence >= 1.0:
            raise ValueError(f"min_confidence must be below 1 (no joint would be used), got {self.min_confidence}")


@dataclass(frozen=True)
class ShowConfig:
    """A whole show. See ``show_configs/symphony.yaml`` for a commented example."""

    show: str
    cameras: list[CameraConfig]
    model: ModelConfig
    performers: list[PerformerConfig] = field(default_factory=list)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    smoothing: SmoothingConfig = field(default_factory=SmoothingConfig)
    outputs: OutputsConfig = field(default_factory=OutputsConfig)
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig)
    run: RunConfig = field(default_factory=RunConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    multiview: MultiviewConfig | None = None
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
        legacy = [c.id for c in self.cameras if c.legacy]
        if self.performers and legacy:
            raise ValueError(
                f"cameras {legacy} set performer/zone, but the file has a 'performers' section: say who each "
                "camera follows in one place only (move them under performers)"
            )
        if not self.performers and len(legacy) != len(self.cameras):
            missing = [c.id for c in self.cameras if not c.legacy]
            raise ValueError(f"cameras {missing} follow no performer: add a 'performers' section naming them")
        cast = self.cast
        for what, names in (("name", [p.name for p in cast]), ("osc_name", [p.address for p in cast])):
            repeated = sorted({n for n in names if names.count(n) > 1})
            if repeated:
                raise ValueError(f"performer {what}s must be unique, repeated: {repeated}")
        for performer in cast:
            unknown = sorted(set(performer.cameras) - set(ids))
            if unknown:
                raise ValueError(f"performer {performer.name!r} names cameras {unknown} that the show does not "
                                 f"have; cameras: {ids}")  # fmt: skip
        active = {c.id for c in self.active_cameras}
        shared = {p.name: sorted(set(p.cameras) & active) for p in cast if len(set(p.cameras) & active) > 1}
        if shared and not self.fused:
            raise ValueError(
                f"performers {shared} name several active cameras, which needs a 'multiview:' section "
                "(3D from calibrated cameras); without one, keep one camera per performer"
            )
        if self.fused and len(active) < 2:
            raise ValueError(f"multiview needs at least 2 active cameras, the show has {len(active)}")
        unfollowed = sorted(active - {cid for p in cast for cid in p.cameras})
        if unfollowed:
            raise ValueError(f"active cameras {unfollowed} follow no performer: name them under a performer's "
                             "cameras, or disable them")  # fmt: skip

    @property
    def cast(self) -> list[PerformerConfig]:
        """The performers: the ``performers`` section, or one per camera read from the old form."""
        if self.performers:
            return self.performers
        return [
            PerformerConfig(name=c.performer, cameras={c.id: _ANYWHERE if c.zone is None else c.zone})
            for c in self.cameras
            if c.performer is not None
        ]

    @property
    def fused(self) -> bool:
        """Whether the show fuses its cameras into 3D (a ``multiview`` section that is enabled)."""
        return self.multiview is not None and self.multiview.enabled

    def performers_of(self, camera_id: str) -> list[PerformerConfig]:
        """The performers ``camera_id`` follows, in the order of the file."""
        return [p for p in self.cast if camera_id in p.cameras]

    @property
    def active_cameras(self) -> list[CameraConfig]:
        return [c for c in self.cameras if c.enabled]

    def resolve(self, path: str | Path) -> Path:
        """A path from the config, made absolute against the show file's folder.

        Raises:
            ConfigError: the path cannot be used (unknown ``~user``, symlink loop, too long); `load_show`
                has checked every path of the file, so this only fires for paths from elsewhere.
        """
        try:
            return resolve_path(path, self.base_dir)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    @property
    def needs_stage_calibration(self) -> bool:
        return any(d.coords == "stage" for d in self.outputs.osc)


def load_show(path: str | Path, *, replay_inputs: int = 0) -> ShowConfig:
    """Load and validate a show file: types, ranges, camera URIs, and that every named file exists.

    Args:
        path: the show YAML.
        replay_inputs: number of ``stagepose replay --input`` videos; they replace the feeds of the first
            that many active cameras, which therefore need no (or no reachable) ``uri``.

    Raises:
        ConfigError: with ``FILE:LINE: field '...': what is wrong`` for the first problem found.
    """
    path = Path(path)
    data, source = load_yaml(path)
    if isinstance(data, dict) and "base_dir" in data:
        raise ConfigError(f"{source.where(('base_dir',))}: field 'base_dir': set by stagepose, not in the file")
    _check_cast(data, source)
    _check_multiview_inputs(data, path, replay_inputs)
    replaced = _replaced_cameras(data, replay_inputs)
    for i in replaced:
        data["cameras"][i].setdefault("uri", "")
    config = from_dict(ShowConfig, data, source)
    config = replace(config, base_dir=str(path.resolve().parent))
    if not config.performers:
        log.warning("%s: old one-performer-per-camera form (performer/zone under cameras), read as %d performer(s); "
                    "`stagepose convert-show --show %s` writes the new form with a 'performers' section",
                    path, len(config.cast), path)  # fmt: skip
    _check_files(config, source, replaced)
    return config


def _check_cast(data: Any, source: Source) -> None:
    """Who-follows-whom problems the dataclasses cannot place on a line: mixed forms, unknown cameras."""
    if not isinstance(data, dict) or not isinstance(data.get("cameras"), list):
        return
    cameras = data["cameras"]
    ids = [c.get("id") for c in cameras if isinstance(c, dict)]
    performers = data.get("performers")
    for i, camera in enumerate(cameras):
        if not isinstance(camera, dict):
            continue
        old = [k for k in ("performer", "zone") if k in camera]
        if performers is not None and old:
            raise _field_error(source, ("cameras", i, old[0]),
                               "the file has a 'performers' section, so cameras say no performer or zone: move "
                               "it under that performer's cameras (one form per file)")  # fmt: skip
        if performers is None and "performer" not in camera:
            raise _field_error(source, ("cameras", i),
                               "required field is missing: performer (or give the file a 'performers' section "
                               "saying who each camera follows)")  # fmt: skip
    if not isinstance(performers, list):
        return
    multiview = data.get("multiview")
    fused = isinstance(multiview, dict) and multiview.get("enabled", True) is not False
    active = {c.get("id") for c in cameras if isinstance(c, dict) and c.get("enabled", True) is not False}
    for i, performer in enumerate(performers):
        named = performer.get("cameras") if isinstance(performer, dict) else None
        for camera_id in named if isinstance(named, dict) else ():
            if camera_id not in ids:
                raise _field_error(source, ("performers", i, "cameras", str(camera_id)),
                                   f"no camera has id {camera_id!r}; the show's cameras: {ids}")  # fmt: skip
        seen_by = sorted(str(c) for c in (named if isinstance(named, dict) else ()) if c in active)
        if len(seen_by) > 1 and not fused:
            raise _field_error(source, ("performers", i, "cameras"),
                               f"names {len(seen_by)} active cameras {seen_by}: a performer seen by several "
                               "cameras needs a 'multiview:' section (3D from calibrated cameras, see "
                               "docs/multicamera.md); without one, keep one camera per performer")  # fmt: skip


def _check_multiview_inputs(data: Any, path: Path, replay_inputs: int) -> None:
    """A multiview show's replay needs one synchronised video per active camera."""
    if not replay_inputs or not isinstance(data, dict) or not isinstance(data.get("cameras"), list):
        return
    multiview = data.get("multiview")
    if not isinstance(multiview, dict) or multiview.get("enabled", True) is False:
        return
    active = [c for c in data["cameras"] if isinstance(c, dict) and c.get("enabled", True) is not False]
    if replay_inputs != len(active):
        raise ConfigError(
            f"{path}: {replay_inputs} input videos but the multiview show has {len(active)} active cameras: give "
            "one synchronised video per camera, in the order of 'cameras' in the show file"
        )


def _replaced_cameras(data: Any, replay_inputs: int) -> set[int]:
    """Indexes (in 'cameras') of the active cameras whose feeds the replay inputs replace."""
    cameras = data.get("cameras") if isinstance(data, dict) else None
    if not replay_inputs or not isinstance(cameras, list):
        return set()
    active = [i for i, c in enumerate(cameras) if isinstance(c, dict) and c.get("enabled", True) is not False]
    return set(active[:replay_inputs])


def _field_error(source: Source, key: KeyPath, message: str) -> ConfigError:
    return ConfigError(f"{source.where(key)}: field '{format_path(key)}': {message}")


def _resolve(config: ShowConfig, source: Source, key: KeyPath, value: str) -> Path:
    try:
        return resolve_path(value, config.base_dir)
    except ValueError as exc:
        raise _field_error(source, key, str(exc)) from None


def _check_uri(config: ShowConfig, source: Source, i: int, uri: str) -> None:
    key = ("cameras", i, "uri")
    text = uri.strip()
    if _FILE_SCHEME.match(text) or not _OTHER_SCHEME.match(text):
        # a file: check the path part first, for a clear message on '~user', loops and long paths
        _resolve(config, source, key, _FILE_SCHEME.sub("", text).partition("?")[0] or text)
    try:
        parse_source_uri(uri, base_dir=config.base_dir)  # also checks that a video file exists
    except ValueError as exc:
        raise _field_error(source, key, str(exc)) from None
    except (OSError, RuntimeError) as exc:  # resolving the file failed in a way the checks above missed
        raise _field_error(source, key, f"cannot use {uri[:200]!r}: {exc}") from None


def _check_files(config: ShowConfig, source: Source, replaced: set[int]) -> None:
    """Check URIs and the paths the show names, pointing at the line that names them."""
    for i, camera in enumerate(config.cameras):
        if i not in replaced:
            if not camera.uri.strip():
                raise _field_error(source, ("cameras", i, "uri"), _URI_MISSING)
            _check_uri(config, source, i, camera.uri)
        if camera.calibration is not None:
            calibration = _resolve(config, source, ("cameras", i, "calibration"), camera.calibration)
            if not calibration.is_file():
                raise _field_error(source, ("cameras", i, "calibration"),
                                   f"{calibration} not found; make one with `stagepose calibrate`")  # fmt: skip
    model_path = _resolve(config, source, ("model", "path"), config.model.path)
    if not model_path.is_file():
        raise ConfigError(
            f"{source.where(('model', 'path'))}: field 'model.path': {model_path} not found; "
            "export one with `stagepose export --checkpoint CKPT --out engines/NAME.onnx`"
        )
    if config.model.engines_dir is not None:
        _resolve(config, source, ("model", "engines_dir"), config.model.engines_dir)
    if config.outputs.record.path is not None:
        _resolve(config, source, ("outputs", "record", "path"), config.outputs.record.path)
    if config.fused:
        _check_multiview_calibrations(config, source)
    if config.needs_stage_calibration:
        missing = [c.id for c in config.active_cameras if c.calibration is None]
        if missing:
            raise ConfigError(
                f"{source.where(('outputs', 'osc'))}: an OSC destination uses coords: stage, but cameras "
                f"{missing} have no calibration file; calibrate them or use coords: normalized"
            )


def _check_multiview_calibrations(config: ShowConfig, source: Source) -> None:
    """A multiview show: every active camera has a readable calibration with extrinsics."""
    from stagepose.calibration.files import load_calibration

    for i, camera in enumerate(config.cameras):
        if not camera.enabled:
            continue
        if camera.calibration is None:
            raise _field_error(source, ("cameras", i),
                               "required field is missing: calibration (the show has a 'multiview:' section, "
                               "which triangulates from every camera's calibration with extrinsics)")  # fmt: skip
        key: KeyPath = ("cameras", i, "calibration")
        path = _resolve(config, source, key, camera.calibration)
        try:
            calibration = load_calibration(path)
        except (ConfigError, ValueError, OSError) as exc:
            raise _field_error(source, key, str(exc)) from None
        if calibration.extrinsics is None:
            raise _field_error(source, key,
                               f"{path} has no 'extrinsics' (the camera's place in the world frame), which the "
                               "'multiview:' section needs; run `stagepose calibrate extrinsics` or `stagepose "
                               "calibrate import-qualisys`")  # fmt: skip
