"""A real GStreamer RTSP server on loopback for tests (tests/rtsp_server.py under the system python3).

The server runs under the system ``/usr/bin/python3`` (Debian's python3-gi and
gir1.2-gst-rtsp-server-1.0, installed by .ci/run); killing it is a camera dropping off the network,
stopping it (SIGSTOP) is a camera that freezes with its connection still open.
"""

from __future__ import annotations

import os
import selectors
import signal
import socket
import subprocess
from pathlib import Path

import pytest

SYSTEM_PYTHON = "/usr/bin/python3"
SERVER_SCRIPT = Path(__file__).resolve().with_name("rtsp_server.py")
PROBE = (
    "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0');"
    "from gi.repository import Gst, GstRtspServer; Gst.init(None);"
    "import sys; sys.exit(0 if all(Gst.ElementFactory.find(e) for e in "
    "('videotestsrc', 'jpegenc', 'rtpjpegpay')) else 3)"
)


def server_unavailable() -> str | None:
    """Why the GStreamer RTSP server cannot run here, or None if it can."""
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return f"{SYSTEM_PYTHON} not found"
    probe = subprocess.run([SYSTEM_PYTHON, "-c", PROBE], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        return (
            "GStreamer RTSP server not usable (apt-get install python3-gi gir1.2-gst-rtsp-server-1.0 "
            f"gstreamer1.0-plugins-base gstreamer1.0-plugins-good): {probe.stderr.strip()[-200:]}"
        )
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RtspServer:
    """tests/rtsp_server.py in a subprocess, restartable on the same port."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"rtsp://127.0.0.1:{port}/stream"
        self.proc: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 15.0) -> None:
        self.proc = subprocess.Popen(
            [SYSTEM_PYTHON, str(SERVER_SCRIPT), "--port", str(self.port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if not sel.select(timeout):
                self.kill()
                pytest.fail(f"RTSP server did not start within {timeout} s")
        line = self.proc.stdout.readline().strip()
        if line != f"READY {self.url}":
            err = self.proc.stderr.read() if self.proc.poll() is not None and self.proc.stderr else ""
            self.kill()
            pytest.fail(f"RTSP server failed to start: {line!r} {err}")

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a stopped process cannot die until resumed
            self.proc.kill()
            self.proc.wait(5)
        if self.proc is not None:
            for pipe in (self.proc.stdout, self.proc.stderr):
                if pipe is not None:
                    pipe.close()
        self.proc = None
