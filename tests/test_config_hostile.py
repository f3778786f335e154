"""Hostile YAML and paths: each is one line of error naming the file (and line), in bounded time and memory.

Before issue 12 an alias bomb of 9 lines took 3.3 GB and 42 s, recursive anchors and deep nesting raised
RecursionError, and duplicate keys were silently accepted (the last one won).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from stagepose.cli import main
from stagepose.config import load_yaml
from stagepose.errors import ConfigError

ALIAS_BOMB = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
show: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""

HOSTILE = {
    "alias bomb": (ALIAS_BOMB, r"show.yaml:1: YAML anchors and aliases"),
    "recursive anchor": ("show: &a [*a]\n", r"show.yaml:1: YAML anchors and aliases"),
    "merge key": ("base: &b {show: x}\nmain:\n  <<: *b\n", r"show.yaml:1: YAML anchors"),
    "10,000 [": ("show: " + "[" * 10_000 + "]" * 10_000 + "\n", r"show.yaml:1: nested deeper than 64 levels"),
    "10,000 {": ("show: " + "{a: " * 10_000 + "1" + "}" * 10_000 + "\n", r"show.yaml:1: nested deeper than 64"),
    "deep block nesting": ("show:\n" + "".join(" " * i + "- \n" for i in range(1, 200)), r"show.yaml:\d+: nested"),
    "duplicate key": ("show: a\ncameras: []\nshow: b\n", r"show.yaml:3: duplicate key 'show' \(first on line 1\)"),
    "nested duplicate key": ("show: a\nmodel:\n  path: x\n  path: y\n", r"show.yaml:4: duplicate key 'path'"),
    "list as key": ("? [a, b]\n: 1\n", r"show.yaml:1: a key must be a plain name"),
    "not UTF-8": (b"show: \xff\xfe\n", r"show.yaml: cannot read: not UTF-8"),
    "too large": ("# " + "x" * (4 * 1024 * 1024) + "\n", r"show.yaml: larger than 4 MiB"),
    "huge integer for a float": ("show: a\ncameras:\n  - {id: c, uri: webcam:0, performer: p, stall_timeout_s: "
                                 + "9" * 400 + "}\nmodel: {path: m.onnx}\n", r"show.yaml:3: .*number too large"),
}  # fmt: skip


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_yaml_is_one_line_bounded(tmp_path, capsys, case) -> None:
    text, message = HOSTILE[case]
    path = tmp_path / "show.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    started = time.perf_counter()
    assert main(["check", "--show", str(path)]) == 2
    assert time.perf_counter() - started < 5.0  # the alias bomb took 42 s
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert re.search(message, err), err


def test_hostile_yaml_is_refused_by_every_loader(tmp_path) -> None:
    """Training configs, calibrations and sidecars share the loader, so they share the limits."""
    path = tmp_path / "experiment.yaml"
    path.write_text(ALIAS_BOMB)
    with pytest.raises(ConfigError, match=r"experiment.yaml:1: YAML anchors"):
        load_yaml(path)


def _symlink_loop(folder: Path) -> Path:
    (folder / "a.yaml").symlink_to(folder / "b.yaml")
    (folder / "b.yaml").symlink_to(folder / "a.yaml")
    return folder / "a.yaml"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda t: t / ("s" * 3000 + ".yaml"), r"\.\.\.s+\.yaml \(\d+ characters\): cannot read: File name too long"),
        (_symlink_loop, r"a.yaml: cannot read: Too many levels of symbolic links"),
        (lambda t: t, r": cannot read: Is a directory"),
        (lambda t: Path("~nosuchuser/show.yaml"), r"~nosuchuser/show.yaml: file not found"),
    ],
    ids=["3000-character path", "symlink loop", "a folder", "~nosuchuser"],
)
def test_hostile_show_path_is_one_line(tmp_path, capsys, make, message) -> None:
    assert main(["check", "--show", str(make(tmp_path))]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert len(err) < 400 and re.search(message, err), err
