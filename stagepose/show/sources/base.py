"""What every camera source shares: a decoding thread, a newest-frame slot, health, reconnects.

A source decodes on its own thread so that the live loop can poll several cameras with
``latest(timeout=...)`` and one dead camera never blocks the others. Concrete sources implement
``_run`` (the thread body) and call ``_publish`` for each decoded image; live streams wrap their
read loop in ``_run_reconnecting``, which reopens with bounded exponential back-off forever while
the show runs. A source that can tell cheaply whether its server is back (RTSP: a TCP connect) passes
a probe, so a long back-off is cut short the moment the server answers again.
"""

from __future__ import annotations

import abc
import logging
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import ClassVar, Self

import numpy as np

from stagepose.errors import StageposeError
from stagepose.show.sources.frame import Frame
from stagepose.show.sources.health import Backoff, FpsMeter, SourceHealth, SourceState
from stagepose.show.sources.latest import LatestFrameSlot

log = logging.getLogger("stagepose.show.sources")

# Back-off between reopen attempts of a lost live stream: 0.25 s, 0.5 s, 1 s ... then every 5 s.
BACKOFF_FIRST_S = 0.25
BACKOFF_MAX_S = 5.0
# While a server is down, its probe is tried this often: the wait ends this soon after it is back.
PROBE_INTERVAL_S = 0.2


class ThreadedSource(abc.ABC):
    """Base of all camera sources: a context manager and an iterator of `Frame`.

    Use it as::

        with open_source("rtsp://10.0.0.5/stream1", "cam1") as src:
            frame = src.latest(timeout=0.005)   # newest untaken frame, or None
            print(src.health().state)

    or, when every frame matters (offline replay with ``lossless=True``)::

        with open_source("clip.mp4?pacing=fast", "cam1", lossless=True) as src:
            for frame in src:
                ...

    Args:
        camera_id: the show config's camera name, copied into every frame and health snapshot.
        uri: the address for logs and telemetry (already redacted).
        lossless: deliver every frame (the decoder waits for the consumer) instead of newest-only.
        stall_timeout_s: a live stream with no frame for this long is reported stalled (and the
            live sources reopen it).
    """

    kind: ClassVar[str] = "source"

    def __init__(self, camera_id: str, uri: str, *, lossless: bool = False, stall_timeout_s: float = 2.0) -> None:
        if not camera_id:
            raise ValueError("camera_id must be a non-empty string")
        if stall_timeout_s <= 0:
            raise ValueError(f"stall_timeout_s must be > 0, got {stall_timeout_s}")
        self._camera_id = camera_id
        self._uri = uri
        self._stall_timeout_s = stall_timeout_s
        self._slot = LatestFrameSlot(lossless=lossless)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._log = log.getChild(camera_id)
        # Guarded by _lock:
        self._state = SourceState.CONNECTING
        self._frames_received = 0
        self._decode_errors = 0
        self._reconnects = 0
        self._attempts = 0
        self._last_error: str | None = None
        self._last_frame_mono: float | None = None
        self._last_t_capture: float | None = None
        self._fps = FpsMeter()

    # ------------------------------------------------------------------ consumer API

    @property
    def camera_id(self) -> str:
        """The show config's camera name."""
        return self._camera_id

    @property
    def uri(self) -> str:
        """The source address (password redacted)."""
        return self._uri

    @property
    def state(self) -> SourceState:
        """Current state; shorthand for ``health().state``."""
        return self.health().state

    def start(self) -> Self:
        """Start the decoding thread (idempotent). Returns self, so ``src = open_source(...).start()``."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._thread_main, name=f"source-{self._camera_id}", daemon=True)
            self._thread.start()
        return self

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread and release the stream. Safe to call twice and from ``__exit__``.

        Args:
            timeout: seconds to wait for the thread; a thread stuck in a network read is a daemon
                and is left to finish its read timeout on its own.
        """
        self._stop.set()
        self._slot.abandon()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
            if self._thread.is_alive():
                self._log.warning("source thread still in a blocking read after %.1f s; left to time out", timeout)
        with self._lock:
            if not self._state.finished:
                self._state = SourceState.ENDED

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def latest(self, timeout: float | None = 0.0) -> Frame | None:
        """The newest frame not yet taken, or None (never raises for stream problems).

        Args:
            timeout: seconds to wait for a new frame; 0 polls without blocking; None waits until a
                frame comes or the source finishes.

        Returns:
            A frame newer than any returned before, or None if none came in time (see `health`).

        Raises:
            RuntimeError: the source was not started (use ``with`` or `start`).
        """
        if self._thread is None:
            raise RuntimeError(f"source {self._camera_id!r} is not started: use 'with' or call start()")
        return self._slot.take(timeout)

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> Frame:
        """Block until the next frame; stop when the source ended, failed or was closed."""
        frame = self.latest(timeout=None)
        if frame is None:
            raise StopIteration
        return frame

    def health(self) -> SourceHealth:
        """A consistent snapshot of state and counters for telemetry (cheap, thread-safe)."""
        now = time.monotonic()
        with self._lock:
            state = self._state
            age = None if self._last_frame_mono is None else now - self._last_frame_mono
            # The decoding thread may be blocked in a read: judge a stall from the consumer's side too.
            if state is SourceState.LIVE and age is not None and age > self._stall_timeout_s:
                state = SourceState.STALLED
            return SourceHealth(
                camera_id=self._camera_id,
                kind=self.kind,
                uri=self._uri,
                state=state,
                frames_received=self._frames_received,
                frames_dropped=self._slot.dropped,
                decode_errors=self._decode_errors,
                reconnects=self._reconnects,
                attempts=self._attempts,
                last_error=self._last_error,
                fps=self._fps.fps(now),
                last_frame_age_s=age,
            )

    # ------------------------------------------------------------------ for subclasses

    @abc.abstractmethod
    def _run(self) -> None:
        """Thread body: open, decode, `_publish`; return when finished or when `_stop` is set.

        Raising ends the source as ``failed`` with the exception's message (a `StageposeError`
        message is shown as is, others with their type name).
        """

    def _publish(self, image: np.ndarray, t_capture: float) -> bool:
        """Hand one decoded image to the consumer.

        Args:
            image: (H, W, 3) uint8 BGR, owned by the frame from now on.
            t_capture: capture time on the ``time.time()`` clock.

        Returns:
            False when the source is closing and the thread should return.
        """
        if self._stop.is_set():
            return False
        now = time.monotonic()
        with self._lock:
            # Consumers (the Kalman filter) need strictly increasing times; a clock step or a PTS
            # glitch that goes backwards is nudged forward by a microsecond instead.
            if self._last_t_capture is not None and t_capture <= self._last_t_capture:
                t_capture = self._last_t_capture + 1e-6
            self._last_t_capture = t_capture
            seq = self._frames_received
            self._frames_received += 1
            self._last_frame_mono = now
            self._fps.tick(now)
            became_live = self._state is not SourceState.LIVE
            self._state = SourceState.LIVE
        if became_live:
            self._log.info("live (%s)", self._uri)
        frame = Frame(image=image, t_capture=t_capture, camera_id=self._camera_id, seq=seq)
        return self._slot.put(frame)

    def _set_state(self, state: SourceState, error: str | None = None) -> None:
        """Change state (and remember ``error`` as the last error), logging the transition."""
        with self._lock:
            changed = state is not self._state
            self._state = state
            if error is not None:
                self._last_error = error
        if changed:
            level = logging.INFO if state in (SourceState.LIVE, SourceState.ENDED) else logging.WARNING
            self._log.log(level, "%s%s", state.value, f": {error}" if error else "")

    def _note_error(self, message: str) -> None:
        """Remember an error message for telemetry without changing state."""
        with self._lock:
            repeated = message == self._last_error
            self._last_error = message
        if not repeated:  # a camera that stays off does not fill the log with the same line
            self._log.warning("%s", message)

    def _count_decode_error(self, message: str) -> None:
        """Count one bad packet or frame that was skipped."""
        with self._lock:
            self._decode_errors += 1
            self._last_error = message
            count = self._decode_errors
        # Log the first few and then every 100th, so a broken stream does not flood the show log.
        if count <= 3 or count % 100 == 0:
            self._log.warning("decode error #%d skipped: %s", count, message)

    def _frames_so_far(self) -> int:
        with self._lock:
            return self._frames_received

    def _run_reconnecting(self, session: Callable[[], None], probe: Callable[[], bool] | None = None) -> None:
        """Run ``session`` (open, read until loss) again and again with back-off until closed.

        ``session`` returns (or raises) when the stream is lost; it should record why with
        `_note_error` before returning. A `StageposeError` (something only the user can fix, such as
        a missing NDI wheel) is not retried: it propagates and the source fails. ``probe`` (cheap,
        True when the server answers) cuts a back-off wait short once a server that was down is back.
        """
        backoff = Backoff(BACKOFF_FIRST_S, BACKOFF_MAX_S)
        first = True
        while not self._stop.is_set():
            if not first:
                with self._lock:
                    stalled = self._state is SourceState.STALLED
                if stalled:  # the stall was shown for one back-off period; now actively reopening
                    self._set_state(SourceState.RECONNECTING)
            first = False
            before = self._frames_so_far()
            try:
                session()
            except StageposeError:
                raise
            except Exception as exc:  # noqa: BLE001 - a show must survive any stream error
                self._note_error(f"{type(exc).__name__}: {exc}")
            if self._stop.is_set():
                return
            delivered = self._frames_so_far() > before
            if delivered:
                backoff.reset()  # the last session worked: retry quickly
            with self._lock:
                self._attempts += 1
                self._reconnects += int(delivered)  # an outage begins; its failed reopens are attempts
                state, error = self._state, self._last_error
            # A stream that was live and is lost shows "reconnecting"; one that stalled stays
            # "stalled" until the next attempt; one that never came up stays "connecting".
            if state is SourceState.LIVE:
                self._set_state(SourceState.RECONNECTING, error)
            if self._wait_retry(backoff.next_delay(), probe):
                return

    def _wait_retry(self, delay: float, probe: Callable[[], bool] | None) -> bool:
        """Wait ``delay`` before the next reopen; with a probe, stop waiting as soon as a server that
        did not answer answers again. Returns True when the source is closing."""
        if probe is None or probe():  # no probe, or the server answers but the stream failed: full back-off
            return self._stop.wait(delay)
        deadline = time.monotonic() + delay
        while (remaining := deadline - time.monotonic()) > 0:
            if self._stop.wait(min(PROBE_INTERVAL_S, remaining)):
                return True
            if probe():
                return False
        return self._stop.is_set()

    def _thread_main(self) -> None:
        try:
            self._run()
        except StageposeError as exc:
            self._set_state(SourceState.FAILED, str(exc))
        except Exception as exc:  # noqa: BLE001 - reported in health, never raised into the show
            self._log.exception("source failed")
            self._set_state(SourceState.FAILED, f"{type(exc).__name__}: {exc}")
        else:
            with self._lock:
                failed = self._state is SourceState.FAILED
            if not failed:
                self._set_state(SourceState.ENDED)
        finally:
            self._slot.close()
