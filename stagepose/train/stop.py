"""Stopping a training run on a signal without losing the steps since the last checkpoint.

A long run is usually a background job (``nice stagepose campaign resume > log 2>&1 &``), and such jobs
start with SIGINT ignored, so Ctrl-C never reaches them; they are stopped with ``kill`` (SIGTERM), or by
the end of a session. Without a handler either way the process dies between checkpoints and up to
``train.checkpoint_every`` steps are lost. ``StopSignals`` turns SIGINT and SIGTERM into a request that the
loop honours after the current step (it saves ``last.pt`` and raises ``TrainingStopped``); a second
signal stops at once (KeyboardInterrupt, which the loop also answers by saving).
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType

from stagepose.errors import StageposeError

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingStopped(StageposeError):
    """The run was asked to stop by a signal and saved ``last.pt`` first (the message says how to resume)."""


class StopSignals:
    """Context manager: while active, SIGINT/SIGTERM set ``requested`` (the signal's name) instead of killing.

    Only the main thread can install signal handlers; elsewhere (a test runner's worker thread) this does
    nothing and ``requested`` stays None.
    """

    def __init__(self) -> None:
        self.requested: str | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested is not None:
            raise KeyboardInterrupt  # asked twice: stop now (the loop still saves)
        self.requested = signal.Signals(signum).name

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        self._previous.clear()
