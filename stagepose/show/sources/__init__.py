"""Camera sources for the live show: RTSP, NDI, video files and webcams as threaded frame streams.

Every source decodes on its own thread, keeps only the newest frame (counting the stale ones it
drops), stamps frames with their capture time from the stream's own clock, and reports its health.
Live streams reconnect by themselves; nothing a camera does raises into the show loop.

    from stagepose.show.sources import open_source

    with open_source("rtsp://10.0.0.5/stream1", "stage-left") as cam:
        frame = cam.latest(timeout=0.01)      # Frame or None
        print(cam.health().to_dict())

Importing this package is cheap: PyAV, OpenCV and the NDI wheel load only when a source of that
kind is opened.
"""

from stagepose.show.sources.base import ThreadedSource
from stagepose.show.sources.factory import open_source
from stagepose.show.sources.frame import Frame
from stagepose.show.sources.health import SourceHealth, SourceState
from stagepose.show.sources.uri import (
    ALLOWED_FORMS,
    FileSpec,
    NdiSpec,
    RtspSpec,
    SourceSpec,
    WebcamSpec,
    parse_source_uri,
    redact,
)

__all__ = [
    "ALLOWED_FORMS",
    "FileSpec",
    "Frame",
    "NdiSpec",
    "RtspSpec",
    "SourceHealth",
    "SourceSpec",
    "SourceState",
    "ThreadedSource",
    "WebcamSpec",
    "open_source",
    "parse_source_uri",
    "redact",
]
