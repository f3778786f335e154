"""Pre-show checks: everything `stagepose live` would refuse, refused by `stagepose check` before the show.

`load_show` validates the file itself (types, ranges, URIs, that named files exist). This module checks
what needs the world outside the file: local clips open and decode (a zero-byte or truncated clip is
refused, its size and frame rate are read), calibrations and zones fit that size, the NDI wheel is
there for ``ndi://`` cameras, the keypoint record can be written, and, with ``model=True``, the model
loads with its sidecar and runs one inference. Each problem is a `StageposeError` naming the show file,
line and field; live feeds (RTSP, webcams) are not opened, since at check time they may not be up yet.
"""

from __future__ import annotations

import errno
import functools
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from stagepose.config import KeyPath, Source, format_path, load_yaml
from stagepose.errors import ConfigError, ModelError, StageposeError
from stagepose.show.config import ShowConfig
from stagepose.show.sources.uri import FileSpec, NdiSpec, parse_source_uri

if TYPE_CHECKING:
    from stagepose.runtime.sidecar import Sidecar

T = TypeVar("T")
PROBE_FRAMES = 3  # frames decoded per clip: enough to prove the codec works, cheap for a 4K clip


@dataclass(frozen=True)
class MediaInfo:
    """What `probe_media` found in a video file.

    Attributes:
        width, height: frame size in pixels.
        fps: the stream's average frame rate.
        packets: video packets in the file (all demuxed, none decoded past ``PROBE_FRAMES``).
    """

    width: int
    height: int
    fps: float
    packets: int


def probe_media(path: Path) -> MediaInfo:
    """Open a video file, read its size and rate, demux it to the end and decode its first frames.

    Demuxing the whole file (no decoding) finds a clip cut short by a failed copy; decoding the first
    frames proves the codec is available.

    Raises:
        ConfigError: the file is empty, not a video, damaged or truncated, or has no frame rate.
    """
    import av

    if path.stat().st_size == 0:
        raise ConfigError(f"{path}: empty file (0 bytes); copy the clip again")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ConfigError(f"{path}: no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            width, height = stream.codec_context.width, stream.codec_context.height
            decoded = 0
            for frame in container.decode(stream):
                width, height = frame.width, frame.height
                decoded += 1
                if decoded >= PROBE_FRAMES:
                    break
            container.seek(0)
            packets = sum(1 for packet in container.demux(stream) if packet.size)
    except StageposeError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as exc:  # av raises subclasses of both
        raise ConfigError(f"{path}: not a readable video (damaged or truncated?): {exc}") from None
    if decoded == 0:
        raise ConfigError(f"{path}: no frame decodes (damaged or truncated clip)")
    if stream.frames and packets < stream.frames:
        raise ConfigError(f"{path}: truncated: {packets} of {stream.frames} frames present; copy the clip again")
    if not rate or not width or not height:
        raise ConfigError(f"{path}: the video stream has no frame rate or size")
    return MediaInfo(width=int(width), height=int(height), fps=float(rate), packets=packets)


def check_show(
    show: ShowConfig, show_path: Path, *, model: bool = False, report: Callable[[str], None] = print
) -> None:
    """Run the pre-show checks on a loaded show; ``report`` gets one line per thing checked.

    Raises:
        StageposeError: the first problem, as ``FILE:LINE: field '...': what is wrong, what to do``.
    """
    _, source = load_yaml(show_path)  # the line of each field, for messages
    for i, camera in enumerate(show.cameras):
        if not camera.enabled:
            continue
        spec = parse_source_uri(camera.uri, base_dir=show.base_dir)
        if isinstance(spec, NdiSpec):
            from stagepose.show.sources.ndi_source import import_ndi

            _named(source, ("cameras", i, "uri"), import_ndi)
            report(f"  camera {camera.id}: NDI runtime ok")
        if not isinstance(spec, FileSpec):
            continue
        info = _named(source, ("cameras", i, "uri"), functools.partial(probe_media, spec.path))
        report(f"  camera {camera.id}: {spec.path.name} {info.width}x{info.height} {info.fps:.2f} fps, "
               f"{info.packets} frames")  # fmt: skip
        _check_fit(show, source, i, (info.width, info.height))
    _check_record(show, source)
    _check_monitor(show, source)
    if model:
        _check_model(show, source, report)


def _named(source: Source, key: KeyPath, check: Callable[[], T]) -> T:
    """Run ``check``; a `StageposeError` from it is re-raised prefixed with the file, line and field."""
    try:
        return check()
    except StageposeError as exc:
        raise type(exc)(f"{source.where(key)}: field '{format_path(key)}': {exc}") from None


def _check_fit(show: ShowConfig, source: Source, i: int, size: tuple[int, int]) -> None:
    """The camera's calibration and its performers' zones against the size its clip delivers (as live will)."""
    from stagepose.calibration.mapper import StageMapper

    camera = show.cameras[i]
    if camera.calibration is not None:
        # the checks PosePipeline runs at start-up: load_checked_calibration, then StageMapper's size check
        _named(source, ("cameras", i, "calibration"), lambda: StageMapper.from_file(
            show.resolve(camera.calibration or ""), size, require_stage=show.needs_stage_calibration))  # fmt: skip
    width, height = size
    for p, performer in enumerate(show.cast):
        zone = performer.zone(camera.id)
        for k, (x, y) in enumerate(zone or []):
            if not (0 <= x <= width and 0 <= y <= height):
                key: KeyPath = ("cameras", i, "zone", k)  # the old form
                if show.performers:
                    key = ("performers", p, "cameras", camera.id, k)
                raise ConfigError(
                    f"{source.where(key)}: field '{format_path(key)}': point [{x:g}, {y:g}] of performer "
                    f"{performer.name!r} is outside the {width}x{height} frame of camera {camera.id!r}'s clip; zone "
                    f"points are pixels in 0..{width} x 0..{height}"
                )


def _check_record(show: ShowConfig, source: Source) -> None:
    """The keypoint record's folder can be created and written, and the file it starts with (with rotation,
    the next part) is a plain file."""
    if show.outputs.record.path is None:
        return
    key: KeyPath = ("outputs", "record", "path")
    where = f"{source.where(key)}: field '{format_path(key)}'"
    from stagepose.show.record import first_file

    path = first_file(show.outputs.record, show.resolve(show.outputs.record.path))  # a part, with rotation
    if path.exists() and not path.is_file():
        kind = "a folder" if path.is_dir() else "a device or special file"
        raise ConfigError(f"{where}: {path} is {kind}, not a file; name a .jsonl file (or null for no record)")
    folder = path.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise ConfigError(f"{where}: cannot create {path.parent}: {folder} is not a folder")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".stagepose-check-") as probe:
            probe.write(b"\0" * 4096)
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as exc:
        reason = "the disk is full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
        raise ConfigError(f"{where}: cannot write the record in {folder}: {reason}") from None


def _check_monitor(show: ShowConfig, source: Source) -> None:
    """An enabled monitor page can listen where the file says (the port is free, the host is this machine's)."""
    if not show.monitor.enabled:
        return
    from stagepose.show.monitor.net import listen_socket

    key: KeyPath = ("monitor", "port")
    _named(source, key, lambda: listen_socket(show.monitor).close())


def _check_model(show: ShowConfig, source: Source, report: Callable[[str], None]) -> None:
    """Load the model as the live loop does (sidecar, hashes, shapes) and run one inference."""
    import numpy as np

    from stagepose.show.live import open_show_backend

    key: KeyPath = ("model", "path")
    backend = _named(source, key, lambda: open_show_backend(show))
    with backend:
        sidecar = backend.sidecar
        if sidecar is not None:
            _named(source, key, lambda: _check_preset_label(show.resolve(show.model.path), sidecar))
        width, height = backend.input_size
        try:
            heatmaps = backend.infer(np.zeros((1, 3, height, width), np.float32))
        except StageposeError:
            raise
        except Exception as exc:  # noqa: BLE001 - any runtime failure here is what check exists to report
            raise ModelError(f"{source.where(key)}: field 'model.path': one inference failed: "
                             f"{type(exc).__name__}: {str(exc)[:300]}") from None  # fmt: skip
        if heatmaps.shape[:2] != (1, 16) or not np.isfinite(heatmaps).all():
            raise ModelError(f"{source.where(key)}: field 'model.path': one inference gave heatmaps of shape "
                             f"{tuple(heatmaps.shape)} with non-finite values or the wrong joint count")  # fmt: skip
        report(f"  model: {backend.describe()}; one inference ok")


def _check_preset_label(model_path: Path, sidecar: Sidecar) -> None:
    """The preset the sidecar names is the one recorded in the weights beside the model (when they are)."""
    preset = sidecar.preset
    weights = model_path.with_name(sidecar.checkpoint or model_path.with_suffix(".safetensors").name)
    if weights == model_path or weights.suffix != ".safetensors" or not weights.is_file():
        return
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(weights), framework="np") as handle:
            recorded = (handle.metadata() or {}).get("preset")
    except (SafetensorError, OSError) as exc:
        raise ModelError(f"{weights}: not a readable safetensors file: {exc}") from None
    if recorded and recorded != preset:
        raise ModelError(f"sidecar {model_path.with_suffix('.json')} says preset {preset!r} but the weights "
                         f"{weights.name} it was exported from are {recorded!r}; re-export the model")  # fmt: skip
