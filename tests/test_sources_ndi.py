"""NDI sources: a real NDI sender and the stagepose receiver on loopback.

Needs the optional NDI wheel (``pip install 'stagepose[ndi]'``, i.e. ndi-python, which bundles the
NDI runtime); skipped without it. CI machines run no mDNS daemon, so the receiver finds the sender
through the IP hint ``?ips=127.0.0.1`` (the finder's extra IPs), as on a venue network without mDNS.
"""

from __future__ import annotations

import sys
import threading
import time
import uuid
from types import ModuleType

import numpy as np
import pytest
from show_support import collect_frames

from stagepose.errors import EngineError
from stagepose.show.sources import SourceState, open_source, parse_source_uri
from stagepose.show.sources.ndi_source import NdiSource, import_ndi, ndi_seconds
from stagepose.show.sources.uri import NdiSpec

pytestmark = pytest.mark.ndi

WIDTH, HEIGHT = 160, 90
FPS = 30
# NDI compresses video (SpeedHQ): allowed mean difference per channel, in 8-bit levels.
TOL_LEVELS = 16


@pytest.fixture(scope="module")
def ndi() -> ModuleType:
    try:
        return import_ndi()
    except Exception as exc:  # noqa: BLE001 - any failure to load the wheel is a skip reason
        pytest.skip(f"NDI wheel not usable here: {exc}")


class LoopbackSender:
    """An NDI sender on a thread: a left-blue / right-red BGRX test card at 30 fps."""

    def __init__(self, ndi: ModuleType, name: str | None = None) -> None:
        self._ndi = ndi
        self.name = name or f"stagepose-test-{uuid.uuid4().hex[:8]}"
        create = ndi.SendCreate()
        create.ndi_name = self.name
        create.clock_video = True  # the SDK paces send_send_video_v2 at the frame rate
        self._sender = ndi.send_create(create)
        if self._sender is None:
            pytest.skip("the NDI runtime could not create a sender here")
        # "HOST (name)", as receivers see it. Read once: the name's memory belongs to the SDK.
        self.full_name = str(ndi.send_get_source_name(self._sender).ndi_name)
        if not self.full_name.endswith(f"({self.name})"):
            raise RuntimeError(f"unexpected NDI sender name {self.full_name!r}")
        image = np.zeros((HEIGHT, WIDTH, 4), np.uint8)
        image[:, : WIDTH // 2] = (200, 40, 40, 255)  # B, G, R, X: blue
        image[:, WIDTH // 2 :] = (40, 40, 200, 255)  # red
        self._frame = ndi.VideoFrameV2()
        self._frame.data = image
        self._frame.FourCC = ndi.FOURCC_VIDEO_TYPE_BGRX
        self._frame.frame_rate_N, self._frame.frame_rate_D = FPS, 1
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._send, daemon=True)

    def __enter__(self) -> LoopbackSender:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2.0)
        self._ndi.send_destroy(self._sender)

    def _send(self) -> None:
        while not self._stop.is_set():
            self._ndi.send_send_video_v2(self._sender, self._frame)


def test_ndi_sender_to_receiver_on_loopback(ndi: ModuleType) -> None:
    with LoopbackSender(ndi) as sender:
        uri = f"ndi://{sender.full_name}?ips=127.0.0.1"
        assert parse_source_uri(uri) == NdiSpec(name=sender.full_name, ips=("127.0.0.1",))
        with open_source(uri, "ndi-cam") as src:
            assert isinstance(src, NdiSource)
            frames = collect_frames(src, 10, timeout=15.0)
            time.sleep(1.0)  # let the frame-rate window fill
            health = src.health()
    times = np.array([f.t_capture for f in frames])
    assert np.all(np.diff(times) > 0)
    assert times[-1] <= time.time() and time.time() - times[-1] < 3.0
    image = frames[-1].image
    assert image.shape == (HEIGHT, WIDTH, 3) and image.dtype == np.uint8 and image.flags["C_CONTIGUOUS"]
    # Away from the colour edge, each half keeps its colour (BGR order, alpha dropped).
    left = image[:, : WIDTH // 2 - 8].reshape(-1, 3).mean(axis=0)
    right = image[:, WIDTH // 2 + 8 :].reshape(-1, 3).mean(axis=0)
    assert np.all(np.abs(left - (200, 40, 40)) < TOL_LEVELS), left
    assert np.all(np.abs(right - (40, 40, 200)) < TOL_LEVELS), right
    assert health.state is SourceState.LIVE and health.kind == "ndi"
    assert health.fps > 20  # the receiver keeps up with the 30 fps sender
    assert health.decode_errors == 0


def test_ndi_sender_restart_stalls_then_recovers(ndi: ModuleType) -> None:
    name = f"stagepose-test-{uuid.uuid4().hex[:8]}"
    first = LoopbackSender(ndi, name)
    with open_source(f"ndi://{first.full_name}?ips=127.0.0.1", "ndi-restart", stall_timeout_s=1.0) as src:
        with first:
            last = collect_frames(src, 5, timeout=15.0)[-1]
        # The sender is gone (its machine rebooted): the source notices and keeps looking for it.
        deadline = time.monotonic() + 5.0
        seen: set[SourceState] = set()
        while time.monotonic() < deadline and not seen & {SourceState.STALLED, SourceState.RECONNECTING}:
            seen.add(src.health().state)
            time.sleep(0.02)
        assert seen & {SourceState.STALLED, SourceState.RECONNECTING}, seen
        src.latest(timeout=0)
        with LoopbackSender(ndi, name):
            after = collect_frames(src, 5, timeout=20.0)
            health = src.health()
    assert after[0].seq > last.seq and after[0].t_capture > last.t_capture
    assert health.state is SourceState.LIVE and health.reconnects >= 1


def test_ndi_unknown_source_reports_what_it_saw(ndi: ModuleType) -> None:
    with LoopbackSender(ndi) as sender:
        spec = NdiSpec(name="NO-SUCH-PC (nothing)", ips=("127.0.0.1",))
        with NdiSource(spec, "missing", discovery_timeout_s=1.5) as src:
            deadline = time.monotonic() + 10.0
            while time.monotonic() < deadline and sender.full_name not in (src.health().last_error or ""):
                time.sleep(0.05)
            health = src.health()
            assert src.latest(timeout=0) is None
    assert health.state is SourceState.CONNECTING
    assert "NDI source 'NO-SUCH-PC (nothing)' not found" in (health.last_error or "")
    assert sender.full_name in (health.last_error or "")  # lists the sources it did see


def test_ndi_timestamp_conversion() -> None:
    undefined = 2**63 - 1
    # 100 ns ticks since the Unix epoch -> seconds.
    assert ndi_seconds(17_000_000_000_000_000, undefined) == pytest.approx(1_700_000_000.0)
    assert ndi_seconds(undefined, undefined) is None
    assert ndi_seconds(0, undefined) is None


def test_missing_ndi_wheel_is_a_clear_engine_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules makes `import NDIlib` fail exactly as on a machine without the wheel.
    monkeypatch.setitem(sys.modules, "NDIlib", None)
    with pytest.raises(EngineError, match=r"pip install 'stagepose\[ndi\]'"):
        open_source("ndi://STAGE-PC (Cam 1)", "cam1")
