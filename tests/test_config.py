"""Typed YAML config loading: errors name the file, line and field."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from stagepose.config import load, to_dict
from stagepose.errors import ConfigError


@dataclass(frozen=True)
class Camera:
    id: str
    uri: str
    fps: float = 30.0


@dataclass(frozen=True)
class Show:
    name: str
    cameras: list[Camera]
    backend: Literal["auto", "torch"] = "auto"
    tags: dict[str, int] = field(default_factory=dict)
    zone: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if not self.cameras:
            raise ValueError("at least one camera is needed")


def _write(tmp_path, text: str):
    path = tmp_path / "show.yaml"
    path.write_text(text)
    return path


def test_loads_nested_typed_values(tmp_path) -> None:
    path = _write(tmp_path, "name: x\ncameras:\n  - id: a\n    uri: file://a.mp4\n    fps: 25\nzone: [1, 2]\n")
    show = load(Show, path)
    assert show.cameras[0].fps == 25.0 and isinstance(show.cameras[0].fps, float)
    assert show.zone == (1.0, 2.0)
    assert to_dict(show)["cameras"][0]["uri"] == "file://a.mp4"


def test_unknown_key_names_line_and_allowed(tmp_path) -> None:
    path = _write(tmp_path, "name: x\ncameras:\n  - id: a\n    uri: u\n    fsp: 25\n")
    expected = r"show.yaml:5: field 'cameras\[0\]\.fsp': unknown key; allowed keys: id, uri, fps"
    with pytest.raises(ConfigError, match=expected):
        load(Show, path)


def test_wrong_type_literal_and_missing(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r":4: field 'cameras\[0\]\.fps': expected a number"):
        load(Show, _write(tmp_path, "name: x\ncameras:\n  - id: a\n    fps: fast\n    uri: u\n"))
    with pytest.raises(ConfigError, match=r"field 'backend': got 'cuda'; allowed: 'auto', 'torch'"):
        load(Show, _write(tmp_path, "name: x\ncameras: [{id: a, uri: u}]\nbackend: cuda\n"))
    with pytest.raises(ConfigError, match=r"field 'cameras\[0\]\.uri': required field is missing"):
        load(Show, _write(tmp_path, "name: x\ncameras: [{id: a}]\n"))
    with pytest.raises(ConfigError, match="at least one camera"):
        load(Show, _write(tmp_path, "name: x\ncameras: []\n"))


def test_bad_yaml_and_missing_file(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"show.yaml:\d+: not valid YAML"):
        load(Show, _write(tmp_path, "name: x\ncameras: [\n"))
    with pytest.raises(ConfigError, match="file not found"):
        load(Show, tmp_path / "nope.yaml")


def test_overrides(tmp_path) -> None:
    path = _write(tmp_path, "name: x\ncameras: [{id: a, uri: u}]\n")
    show = load(Show, path, ["backend=torch", "tags.x=3"])
    assert show.backend == "torch" and show.tags == {"x": 3}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        load(Show, path, ["backend"])


def test_unsafe_yaml_tags_are_refused(tmp_path) -> None:
    path = _write(tmp_path, "name: !!python/object/apply:os.system ['true']\ncameras: []\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load(Show, path)


@dataclass(frozen=True)
class Rate:
    lr: float = 0.1
    name: str = "x"


def test_scientific_notation_without_dot_is_a_float(tmp_path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("lr: 1e-4\nname: 2e3\n")
    rate = load(Rate, path)
    assert rate.lr == 1e-4 and rate.name == "2e3"  # strings stay strings
    assert load(Rate, path, ["lr=3E-5"]).lr == 3e-5


def test_override_with_invalid_yaml_is_a_config_error_that_says_how_to_quote() -> None:
    from stagepose.config import apply_overrides

    with pytest.raises(ConfigError, match="not valid YAML.*quote it"):
        apply_overrides({}, ["data.train=[frames:venue/x?boxes=venue/boxes.json]"])
    assert apply_overrides({}, ['data.train=["frames:venue/x?boxes=venue/boxes.json"]']) == {
        "data": {"train": ["frames:venue/x?boxes=venue/boxes.json"]}}
