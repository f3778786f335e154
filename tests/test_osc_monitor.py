"""``stagepose osc-monitor``: a real process listening on 127.0.0.1, fed by a real OscSink."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from stagepose.cli import main
from stagepose.show.osc import OscDestinationConfig, OscSink, PerformerFrame

START_TIMEOUT_S = 30.0  # importing the CLI on a loaded 2-core machine
EXIT_TIMEOUT_S = 15.0


def start_monitor(*args: str) -> tuple[subprocess.Popen, int]:
    """Start the monitor on a free port; return the process and the port it printed."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "stagepose.cli", "osc-monitor", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # as from a terminal: Ctrl-C at its default. A child inherits an ignored SIGINT, and in the full suite
        # something earlier leaves the test process so (seen in CI twice; not found yet), which made Ctrl-C a no-op
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + START_TIMEOUT_S
    line = proc.stdout.readline()  # "listening for OSC on 127.0.0.1:PORT (Ctrl-C to stop)"
    if "listening for OSC on 127.0.0.1:" not in line or time.monotonic() > deadline:
        proc.kill()
        pytest.fail(f"monitor did not start: {line!r} {proc.stderr.read()!r}")
    port = int(line.split("127.0.0.1:")[1].split()[0])
    return proc, port


def frame(seq: int) -> PerformerFrame:
    joints = np.tile([[960.0, 540.0]], (16, 1))
    return PerformerFrame("alice", seq, time.time() - 0.02, joints, np.full(16, 0.9), (1920, 1080))


def test_monitor_prints_bundles_and_stops_after_count() -> None:
    proc, port = start_monitor("--count", "5")
    with OscSink([OscDestinationConfig(name="mon", port=port)]) as sink:
        sink.send_performer(frame(0))  # 3 messages: frame, status, pose
        sink.send_performer(frame(1))
    out, err = proc.communicate(timeout=EXIT_TIMEOUT_S)
    assert proc.returncode == 0, err
    assert "bundle" in out and "age" in out
    assert "/stagepose/alice/pose ,ffffffffffffffffffffffffffffffffffffffffffffffff (48) 0.5 0.5 0.9" in out
    assert "/stagepose/alice/status ,ff (2) 1 16" in out
    assert "received 2 datagrams (2 bundles, 6 messages, 0 malformed)" in out


def test_monitor_reports_malformed_datagrams_and_plain_messages() -> None:
    proc, port = start_monitor("--count", "1")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        tx.sendto(b"not osc at all", ("127.0.0.1", port))
        time.sleep(0.1)
    with OscSink([OscDestinationConfig(name="mon", port=port)]) as sink:
        sink.heartbeat(performers_tracked=0, force=True)
    out, err = proc.communicate(timeout=EXIT_TIMEOUT_S)
    assert proc.returncode == 0, err
    assert "malformed datagram of 14 B" in out
    assert "/stagepose/heartbeat ,ff (2)" in out
    assert "1 malformed" in out


def test_monitor_stops_after_seconds_without_traffic() -> None:
    proc, _ = start_monitor("--seconds", "0.5")
    out, err = proc.communicate(timeout=EXIT_TIMEOUT_S)
    assert proc.returncode == 0, err
    assert "received 0 datagrams" in out


def test_monitor_exits_cleanly_on_ctrl_c() -> None:
    proc, _ = start_monitor()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=EXIT_TIMEOUT_S)
    assert proc.returncode == 0
    assert "received 0 datagrams" in out
    assert "Traceback" not in err


def test_monitor_on_a_busy_port_is_a_clear_error(capsys) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", 0))
        port = busy.getsockname()[1]
        assert main(["osc-monitor", "--port", str(port), "--seconds", "1"]) == 2
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err and "pick another --port" in err
