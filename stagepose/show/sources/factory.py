"""One entry point from a camera address to a running source."""

from __future__ import annotations

from pathlib import Path

from stagepose.errors import ConfigError
from stagepose.show.sources.base import ThreadedSource
from stagepose.show.sources.clock import SharedAnchor
from stagepose.show.sources.uri import FileSpec, NdiSpec, RtspSpec, SourceSpec, WebcamSpec, parse_source_uri


def open_source(
    spec_or_uri: SourceSpec | str,
    camera_id: str,
    *,
    base_dir: str | Path | None = None,
    lossless: bool | None = None,
    stall_timeout_s: float = 2.0,
    file_anchor: SharedAnchor | None = None,
) -> ThreadedSource:
    """Open a camera source and start its decoding thread.

    The heavy libraries (PyAV, OpenCV, the NDI wheel) are imported here, only for the kind in use.
    Opening never blocks on the network: connection problems show up in ``health()``.

    Args:
        spec_or_uri: a parsed `SourceSpec` or an address string (see `parse_source_uri`).
        camera_id: the show config's camera name.
        base_dir: folder that relative file paths in ``spec_or_uri`` are relative to.
        lossless: deliver every frame (the decoder waits for the consumer) instead of newest-only.
            None: True for files with ``pacing=fast`` (replay), False otherwise (live).
        stall_timeout_s: no frame for this long reports ``stalled``; live sources then reopen.
        file_anchor: files only: play on this shared clock (recordings of synchronised cameras).

    Returns:
        A started source: use it in ``with``, poll ``latest(timeout)``, or iterate.

    Raises:
        ConfigError: the address is malformed or names a missing file.
        EngineError: an ``ndi://`` source without the NDI wheel installed.
    """
    if isinstance(spec_or_uri, str):
        try:
            spec: SourceSpec = parse_source_uri(spec_or_uri, base_dir=base_dir)
        except ValueError as exc:
            raise ConfigError(f"camera {camera_id!r}: {exc}") from None
    else:
        spec = spec_or_uri
    source: ThreadedSource
    if isinstance(spec, RtspSpec):
        from stagepose.show.sources.pyav_source import RtspSource

        source = RtspSource(spec, camera_id, stall_timeout_s=stall_timeout_s, lossless=bool(lossless))
    elif isinstance(spec, FileSpec):
        from stagepose.show.sources.pyav_source import FileSource

        source = FileSource(spec, camera_id, lossless=lossless, stall_timeout_s=stall_timeout_s, anchor=file_anchor)
    elif isinstance(spec, NdiSpec):
        from stagepose.show.sources.ndi_source import NdiSource

        source = NdiSource(spec, camera_id, stall_timeout_s=stall_timeout_s, lossless=bool(lossless))
    elif isinstance(spec, WebcamSpec):
        from stagepose.show.sources.webcam_source import WebcamSource

        source = WebcamSource(spec, camera_id, stall_timeout_s=stall_timeout_s, lossless=bool(lossless))
    else:
        raise TypeError(f"open_source needs a SourceSpec or an address string, got {type(spec_or_uri).__name__}")
    return source.start()
