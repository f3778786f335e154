"""Property: `stagepose check` on a mutated shipped show config exits 0 or 2, never with a traceback.

Hypothesis mutates demo.yaml and symphony.yaml two ways: structurally (a value anywhere replaced by a
hostile one, a key dropped or added) and textually (characters inserted, deleted or cut). Bounded by
``max_examples`` so it stays well under a minute on two busy cores; ``derandomize`` keeps CI repeatable.
"""

from __future__ import annotations

import contextlib
import copy
import io
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from show_support import REPO

from stagepose.cli import main

SHOWS = ("demo.yaml", "symphony.yaml")
FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None, phases=[Phase.generate, Phase.shrink],
                suppress_health_check=[HealthCheck.too_slow])  # fmt: skip

HOSTILE_VALUES = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(10**40), max_value=10**40), st.sampled_from([0, -1, 1, 2**31, 2**63, 10**400]),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([1e308, -1e308, 5e-324]),
    st.text(max_size=40), st.sampled_from(["~nosuchuser/x", "a" * 3000, "/dev/full", "ndi://", "webcam:-1",
                                           "rtsp://", "file://", "cuda:99", "tpu", "\0", "../" * 50]),
    st.lists(st.integers(-5, 5000), max_size=4), st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)  # fmt: skip


@pytest.fixture(scope="module")
def show_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the repo layout the shipped shows point into (../media, ../engines, ../calibration)."""
    root = tmp_path_factory.mktemp("fuzz")
    for name in ("media", "engines", "calibration"):
        (root / name).symlink_to(REPO / name)
    (root / "show_configs").mkdir()
    return root / "show_configs"


def _paths(data: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(data, dict):
        for key, value in data.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            out += _paths(value, (*prefix, i))
    return out


def _set(data: Any, path: tuple, value: Any, mode: str) -> Any:
    if not path:
        return value if mode == "set" else data
    node = data
    for key in path[:-1]:
        node = node[key]
    if mode == "set":
        node[path[-1]] = value
    elif mode == "drop":
        del node[path[-1]]
    elif isinstance(node, dict):
        node[f"unknown_{path[-1]}"] = value
    return data


def _run(folder: Path, text: str) -> tuple[int, str]:
    path = folder / "fuzzed.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["check", "--show", str(path)])  # any exception escaping here is the traceback a user sees
    return code, err.getvalue()


def _assert_clean(code: int, err: str) -> None:
    assert code in (0, 2), err
    assert "Traceback" not in err
    if code == 2:
        assert len(err.strip().splitlines()) == 1, err
        assert "fuzzed.yaml" in err, err


@FUZZ
@given(name=st.sampled_from(SHOWS), data=st.data())
def test_structural_mutations_exit_0_or_2(show_folder, name, data) -> None:
    show = yaml.safe_load((REPO / "show_configs" / name).read_text())
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        path = data.draw(st.sampled_from(_paths(show)), label="path")
        mode = data.draw(st.sampled_from(["set", "set", "drop", "add"]), label="mode")
        show = _set(copy.deepcopy(show), path, data.draw(HOSTILE_VALUES, label="value"), mode)
    try:
        text = yaml.safe_dump(show, allow_unicode=True)
    except (yaml.YAMLError, ValueError):
        return
    _assert_clean(*_run(show_folder, text))


@FUZZ
@given(name=st.sampled_from(SHOWS), data=st.data())
def test_text_mutations_exit_0_or_2(show_folder, name, data) -> None:
    text = (REPO / "show_configs" / name).read_text()
    for _ in range(data.draw(st.integers(1, 4), label="edits")):
        at = data.draw(st.integers(0, len(text)), label="at")
        edit = data.draw(st.sampled_from(["insert", "delete", "cut"]), label="edit")
        if edit == "insert":
            snippet = data.draw(st.one_of(st.text(max_size=8), st.sampled_from(
                ["&a ", "*a", "[", "{", ": ", "\n  - ", "\t", "? ", "!!python/object ", "<<: ", "1e999", ".nan"])))
            text = text[:at] + snippet + text[at:]
        elif edit == "delete":
            text = text[:at] + text[at + data.draw(st.integers(1, 20)):]
        else:
            text = text[:at]
    _assert_clean(*_run(show_folder, text))


def test_fuzz_setup_runs_the_shipped_demo(show_folder) -> None:
    """The fixture layout is right: the unmutated demo passes, so mutations test more than 'file not found'."""
    code, err = _run(show_folder, (REPO / "show_configs" / "demo.yaml").read_text())
    assert code == 0, err
