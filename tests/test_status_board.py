"""The live status board on a terminal: log lines print above it, and its last state stays on the screen."""

from __future__ import annotations

import io
import logging
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from show_support import DEMO_CLIP, UdpCollector, base_show, write_show

from stagepose.show.status import CameraStatus, StatusBoard

BACKEND = "onnxruntime cpu fp32"
_CONTROL = re.compile(r"\x1b\[(\d*)([A-Za-z])")


class FakeTty(io.StringIO):
    """A terminal for the board: a string buffer that says it is a TTY."""

    def isatty(self) -> bool:
        return True


def screen(text: str) -> list[str]:
    """What a terminal shows after ``text``: the few VT100 controls the board uses, lines without trailing space.

    Supported: ``ESC[nF`` (cursor to the start of the line n up), ``ESC[2K`` (clear the line), ``ESC[J`` (clear
    from the cursor to the end of the screen) and newlines; characters overwrite what is under the cursor.
    """
    rows: list[list[str]] = [[]]
    row = col = 0
    pos = 0
    while pos < len(text):
        match = _CONTROL.match(text, pos)
        if match:
            count, code = int(match.group(1) or 1), match.group(2)
            if code == "F":
                row, col = max(0, row - count), 0
            elif code == "K" and match.group(1) == "2":
                rows[row] = []
            elif code == "J":
                rows[row] = rows[row][:col]
                del rows[row + 1 :]
            else:
                raise AssertionError(f"unexpected control sequence {match.group(0)!r}")
            pos = match.end()
            continue
        char = text[pos]
        pos += 1
        if char == "\n":
            row, col = row + 1, 0
            if row == len(rows):
                rows.append([])
            continue
        line = rows[row]
        line.extend(" " * (col - len(line)))
        if col < len(line):
            line[col] = char
        else:
            line.append(char)
        col += 1
    lines = ["".join(r).rstrip() for r in rows]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def status(state: str, fps: float = 0.0) -> CameraStatus:
    return CameraStatus("cam1", "performer1", state, fps, 20.0, 40.0, 0, 0, state == "live")


@pytest.fixture
def tty_logging() -> Iterator[FakeTty]:
    """The root logger writes to a fake terminal (as `stagepose` configures it, with a time stamp)."""
    tty = FakeTty()
    handler = logging.StreamHandler(tty)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield tty
    finally:
        root.removeHandler(handler)


def test_screen_emulation_shows_the_overwrite_that_log_lines_suffered() -> None:
    # the board as it drew before: a line written below it is overwritten by the next redraw (cursor up 2)
    text = "\x1b[2Kheader\n\x1b[2Kcam1 connecting\nWARNING camera lost\n\x1b[2F\x1b[2Kheader\n\x1b[2Kcam1 ended\n"
    assert screen(text) == ["header", "header", "cam1 ended"]


def test_log_line_prints_above_the_board_and_the_last_state_stays(tty_logging: FakeTty) -> None:
    log = logging.getLogger("stagepose.show.live")
    with StatusBoard(tty_logging, interval_s=0.0) as board:
        board.show("stagepose live: demo     0.0 s", [status("connecting")], BACKEND)
        log.warning("camera 'cam1' stalled: no frame for 2.0 s")
        board.show("stagepose live: demo     1.0 s", [status("live", 22.0)], BACKEND)
        log.warning("camera 'cam1' ended")
        board.show("stagepose live: demo     2.0 s", [status("ended")], BACKEND)
    tty_logging.write("stopped: sources ended\n")  # what `stagepose live` prints after the board

    shown = screen(tty_logging.getvalue())
    assert shown[:2] == [
        "WARNING stagepose.show.live: camera 'cam1' stalled: no frame for 2.0 s",
        "WARNING stagepose.show.live: camera 'cam1' ended",
    ]
    assert shown[2] == "stagepose live: demo     2.0 s"
    assert shown[3].startswith("cam1       performer1 ended") and "0.0 fps" in shown[3]
    assert shown[4:] == ["stopped: sources ended"]
    assert not any("connecting" in line or " live " in line for line in shown)


def test_log_lines_from_other_threads_are_never_cut(tty_logging: FakeTty) -> None:
    log = logging.getLogger("stagepose.show.sources")
    with StatusBoard(tty_logging, interval_s=0.0) as board:
        board.show("header", [status("live", 30.0)], BACKEND)
        threads = [threading.Thread(target=log.warning, args=(f"message {i} " + "x" * 60,)) for i in range(20)]
        for thread in threads:
            thread.start()
        for i in range(50):
            board.show(f"header {i}", [status("live", 30.0)], BACKEND)
        for thread in threads:
            thread.join()
    shown = screen(tty_logging.getvalue())
    messages = sorted(shown[:-2], key=lambda line: int(line.split()[3]))
    assert messages == [f"WARNING stagepose.show.sources: message {i} " + "x" * 60 for i in range(20)]
    assert shown[-2] == "header 49" and shown[-1].startswith("cam1")


def test_the_handler_gets_its_stream_back() -> None:
    tty = FakeTty()
    handler = logging.StreamHandler(tty)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with StatusBoard(tty):
            assert handler.stream is not tty
        assert handler.stream is tty
    finally:
        root.removeHandler(handler)


def test_plain_output_is_unchanged() -> None:
    plain = io.StringIO()
    handler = logging.StreamHandler(plain)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with StatusBoard(plain, interval_s=0.0) as board:
            assert handler.stream is plain  # not a terminal: logging is left alone
            board.show("header", [status("connecting")], BACKEND)
            logging.getLogger("stagepose").warning("a log line")
            board.show("header", [status("ended")], BACKEND)
    finally:
        root.removeHandler(handler)
    lines = plain.getvalue().splitlines()
    assert "\x1b" not in plain.getvalue()
    assert lines[0] == "header" and "connecting" in lines[1]
    assert lines[2] == "a log line"
    assert lines[3] == "header" and "ended" in lines[4]


def test_live_prints_its_log_lines_above_the_board(tmp_path: Path, small_onnx: Path, tty_logging: FakeTty) -> None:
    from stagepose.show.config import load_show
    from stagepose.show.live import run_live

    collector = UdpCollector()
    config = base_show(small_onnx, f"{DEMO_CLIP}?pacing=realtime", collector.port)
    config["telemetry"] = {"status_interval_s": 0.1}
    show = load_show(write_show(tmp_path, config))
    timer = threading.Timer(0.5, logging.getLogger("stagepose.test").warning, args=("a line while live",))
    timer.start()
    try:
        run_live(show, status_stream=tty_logging)
    finally:
        timer.cancel()
        collector.close()
    shown = screen(tty_logging.getvalue())
    assert "WARNING stagepose.test: a line while live" in shown
    assert shown[-2].startswith("stagepose live: test")
    assert shown[-1].startswith("cam1") and " ended " in shown[-1]
