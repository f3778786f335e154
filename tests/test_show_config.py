"""Show configs: the shipped ones load, and each kind of mistake gets its own specific message."""

from __future__ import annotations

from pathlib import Path

import pytest
from show_support import DEMO_CLIP, REPO, base_show, write_show

from stagepose.cli import main
from stagepose.errors import ConfigError
from stagepose.show.config import load_show


@pytest.fixture
def show_dict(small_onnx: Path) -> dict:
    return base_show(small_onnx, str(DEMO_CLIP), 9000)


def test_valid_show_resolves_paths_relative_to_the_file(tmp_path, show_dict) -> None:
    show_dict["cameras"][0]["uri"] = "clip.mp4?loop=true"
    (tmp_path / "clip.mp4").write_bytes(DEMO_CLIP.read_bytes())
    show = load_show(write_show(tmp_path, show_dict))
    assert show.resolve("clip.mp4") == tmp_path / "clip.mp4"
    assert show.tracking.min_joints == 1 and show.outputs.osc[0].port == 9000


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["cameras"][0].update(fps=30), r"show.yaml:\d+: field 'cameras\[0\]\.fps': unknown key"),
        (lambda d: d["outputs"]["osc"][0].update(port="seven"), r"field 'outputs.osc\[0\].port': expected an integer"),
        (lambda d: d.update(smoothing={"method": "median"}),
         r"field 'smoothing.method': got 'median'; allowed: 'kalman', 'one_euro', 'none'"),
        (lambda d: d["cameras"][0].update(uri="htp://cam"), r"field 'cameras\[0\]\.uri': .*allowed source forms"),
        (lambda d: d["cameras"][0].update(uri="missing.mp4"), r"field 'cameras\[0\]\.uri': .*video file not found"),
        (lambda d: d["model"].update(path="nope.onnx"), r"field 'model.path': .*nope.onnx not found; export one"),
        (lambda d: d["cameras"][0].update(calibration="cal.yaml"), r"cameras\[0\]\.calibration'.*stagepose calibrate"),
        (lambda d: d["cameras"].append(dict(d["cameras"][0])), r"camera ids must be unique"),
        (lambda d: d["outputs"]["osc"][0].update(coords="stage"), r"coords: stage, but cameras \['cam1'\]"),
        (lambda d: d.pop("model"), r"field 'model': required field is missing"),
        (lambda d: d["cameras"][0].update(performer="bad name"), r"cameras\[0\]"),
    ],
)
def test_each_mistake_has_its_own_message(tmp_path, show_dict, edit, message) -> None:
    edit(show_dict)
    with pytest.raises(ConfigError, match=message):
        load_show(write_show(tmp_path, show_dict))


def test_check_command_reports_errors_without_traceback(tmp_path, show_dict, capsys) -> None:
    show_dict["cameras"][0]["zone"] = [[0, 0], [1, 1]]
    assert main(["check", "--show", str(write_show(tmp_path, show_dict))]) == 2
    err = capsys.readouterr().err
    assert "zone needs at least 3 points" in err and "show.yaml:" in err and "Traceback" not in err
    show_dict["cameras"][0]["zone"] = [[0, 0], [100, 0], [100, 100]]
    assert main(["check", "--show", str(write_show(tmp_path, show_dict)), "--model"]) == 0
    assert "onnxruntime" in capsys.readouterr().out


def test_shipped_show_configs_parse() -> None:
    """symphony.yaml and demo.yaml load whole: the model they name is shipped in engines/."""
    for name in ("demo.yaml", "symphony.yaml"):
        show = load_show(REPO / "show_configs" / name)
        assert show.resolve(show.model.path).is_file()
