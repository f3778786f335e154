"""NDI sources through the ``ndi-python`` wheel (module ``NDIlib``), which bundles the NDI runtime.

stagepose does not vendor the NDI runtime (its licence does not allow shipping it under MIT): it is
an optional extra, ``pip install 'stagepose[ndi]'``, imported only when a show uses an ``ndi://``
camera.

Why ndi-python and not cyndilib: the receiver thread waits in ``recv_capture`` for the next frame.
ndi-python releases the GIL during that wait; cyndilib 0.1.3's ``Receiver.receive`` keeps it, which
starves the live loop and, measured on loopback, delivered 1-11 of 30 frames per second where
ndi-python delivered all 30.

Discovery: NDI finds senders by mDNS (avahi on Linux). Where mDNS does not reach (another subnet,
multicast filtered, no avahi), ``ndi://NAME?ips=10.0.0.5`` gives the finder the senders' addresses
directly (the SDK's ``extra_ips``). Machine-wide settings can also go in the NDI runtime's config
file, ``$NDI_CONFIG_DIR/ndi-config.v1.json``.
"""

from __future__ import annotations

import time
from types import ModuleType
from typing import Any

import numpy as np

from stagepose.errors import EngineError
from stagepose.show.sources.base import ThreadedSource
from stagepose.show.sources.clock import StreamClock
from stagepose.show.sources.health import SourceState
from stagepose.show.sources.uri import NdiSpec

NDI_INSTALL_HINT = "pip install 'stagepose[ndi]'"
# How long one capture call waits for a frame (the GIL is released meanwhile); bounds how late a
# close or a stall is noticed.
_CAPTURE_TIMEOUT_MS = 100
# NDI timestamps count 100 ns ticks since the Unix epoch.
_TICKS_PER_SECOND = 10_000_000


def import_ndi() -> ModuleType:
    """Import and initialise the NDI wheel, or explain how to install it.

    Raises:
        EngineError: ndi-python is not installed, or its bundled NDI runtime does not start.
    """
    try:
        import NDIlib
    except ImportError as exc:
        raise EngineError(
            f"NDI sources need the ndi-python wheel, which bundles the NDI runtime: {NDI_INSTALL_HINT} "
            f"(import failed: {exc})"
        ) from None
    # initialize() is reference counted by the SDK and cheap after the first call.
    if not NDIlib.initialize():
        raise EngineError("the NDI runtime bundled with ndi-python did not start (this CPU lacks SSE4.2?)")
    return NDIlib


def ndi_seconds(timestamp: int, undefined: int) -> float | None:
    """An NDI frame timestamp in Unix seconds, or None if the sender set none.

    NDI stamps each frame on the *sender's* clock when it is submitted, in 100 ns ticks since the Unix
    epoch, so seconds = ticks / 1e7. ``undefined`` is the SDK's "no timestamp" value (INT64_MAX);
    a sender without a clock may also send 0.
    """
    if timestamp <= 0 or timestamp == undefined:
        return None
    return timestamp / _TICKS_PER_SECOND


class NdiSource(ThreadedSource):
    """An NDI video source, found by name and rediscovered after a loss.

    Args:
        spec: the parsed address (source name, optional sender IPs).
        camera_id: the show config's camera name.
        stall_timeout_s: no video for this long drops the receiver and rediscovers the source.
        discovery_timeout_s: how long one discovery attempt waits for the name to appear.
        lossless: deliver every frame instead of newest-only.

    Raises:
        EngineError: the NDI wheel is missing (raised here, at show start, not mid-show).
    """

    kind = "ndi"

    def __init__(
        self,
        spec: NdiSpec,
        camera_id: str,
        *,
        stall_timeout_s: float = 2.0,
        discovery_timeout_s: float = 5.0,
        lossless: bool = False,
    ) -> None:
        super().__init__(camera_id, spec.uri, lossless=lossless, stall_timeout_s=stall_timeout_s)
        if discovery_timeout_s <= 0:
            raise ValueError(f"discovery_timeout_s must be > 0, got {discovery_timeout_s}")
        self._spec = spec
        self._discovery_timeout_s = discovery_timeout_s
        self._ndi = import_ndi()

    def _run(self) -> None:
        self._run_reconnecting(self._session)

    def _session(self) -> None:
        ndi = self._ndi
        find_create = ndi.FindCreate()
        find_create.show_local_sources = True
        if self._spec.ips:
            find_create.extra_ips = ",".join(self._spec.ips)  # ask these machines directly, besides mDNS
        finder = ndi.find_create_v2(find_create)
        if finder is None:
            self._note_error("the NDI runtime could not create a finder")
            return
        try:
            source = self._discover(finder)
            if source is None:
                return
            recv_create = ndi.RecvCreateV3()
            recv_create.color_format = ndi.RECV_COLOR_FORMAT_BGRX_BGRA  # 8-bit BGR(A): no YUV maths here
            recv_create.bandwidth = ndi.RECV_BANDWIDTH_HIGHEST
            recv_create.allow_video_fields = False  # whole progressive frames only: no half-height fields
            recv_create.ndi_recv_name = f"stagepose {self.camera_id}"
            receiver = ndi.recv_create_v3(recv_create)
            if receiver is None:
                self._note_error("the NDI runtime could not create a receiver")
                return
            try:
                ndi.recv_connect(receiver, source)
                self._read(receiver)
            finally:
                ndi.recv_destroy(receiver)
        finally:
            ndi.find_destroy(finder)

    def _discover(self, finder: Any) -> Any | None:
        """Wait for the source name to be announced; None (with the names seen) if it is not."""
        ndi = self._ndi
        wanted = self._spec.name
        deadline = time.monotonic() + self._discovery_timeout_s
        names: list[str] = []
        while not self._stop.is_set() and time.monotonic() < deadline:
            ndi.find_wait_for_sources(finder, 250)  # milliseconds
            sources = list(ndi.find_get_current_sources(finder))
            names = [s.ndi_name for s in sources]
            match = next((s for s in sources if s.ndi_name == wanted), None) or next(
                (s for s in sources if s.ndi_name.casefold() == wanted.casefold()), None
            )
            if match is not None:
                return match
        if not self._stop.is_set():
            seen = ", ".join(repr(n) for n in names) if names else "none"
            hint = "" if self._spec.ips else " (no mDNS on this network? add ?ips=SENDER_IP)"
            self._note_error(
                f"NDI source {wanted!r} not found in {self._discovery_timeout_s:.0f} s; seen: {seen}{hint}"
            )
        return None

    def _read(self, receiver: Any) -> None:
        ndi = self._ndi
        bgr_fourccs = {ndi.FOURCC_VIDEO_TYPE_BGRA, ndi.FOURCC_VIDEO_TYPE_BGRX}
        # Trust the sender's clock if it agrees with ours within 1 s (NTP-synced machines); otherwise
        # anchor it to our clock at the first frame.
        clock = StreamClock(max_lag_s=1.0, absolute_tolerance_s=1.0)
        last_frame = time.monotonic()
        while not self._stop.is_set():
            frame_type, video, audio, metadata = ndi.recv_capture_v2(receiver, _CAPTURE_TIMEOUT_MS)
            if frame_type == ndi.FRAME_TYPE_VIDEO:
                now = time.time()
                try:
                    image = self._copy_bgr(video, bgr_fourccs)
                    stream_s = ndi_seconds(int(video.timestamp), ndi.RECV_TIMESTAMP_UNDEFINED)
                finally:
                    ndi.recv_free_video_v2(receiver, video)  # the SDK's buffer: copy first, then free
                if image is not None:
                    if not self._publish(image, clock.to_wall(stream_s, now)):
                        return
                    last_frame = time.monotonic()
                    continue
            elif frame_type == ndi.FRAME_TYPE_AUDIO:
                ndi.recv_free_audio_v2(receiver, audio)
            elif frame_type == ndi.FRAME_TYPE_METADATA:
                ndi.recv_free_metadata(receiver, metadata)
            elif frame_type == ndi.FRAME_TYPE_ERROR:
                self._set_state(SourceState.STALLED, "NDI receiver lost the connection")
                return
            silent = time.monotonic() - last_frame
            if silent > self._stall_timeout_s:
                self._set_state(SourceState.STALLED, f"no NDI video for {silent:.1f} s")
                return

    def _copy_bgr(self, video: Any, bgr_fourccs: set[Any]) -> np.ndarray | None:
        """(H, W, 3) BGR copy of an NDI frame (alpha and row padding dropped), or None (counted)."""
        data = video.data
        if video.FourCC not in bgr_fourccs or not isinstance(data, np.ndarray) or data.ndim != 3:
            self._count_decode_error(f"unexpected NDI frame {video.FourCC!r} {video.xres}x{video.yres}")
            return None
        return np.ascontiguousarray(data[:, :, :3])
