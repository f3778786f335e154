"""Experiment configs: every shipped YAML loads, unknown keys and bad values name file and line, overrides."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stagepose.cli import main
from stagepose.errors import ConfigError
from stagepose.train.config import config_to_data, experiment_from_data, load_experiment

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "training").glob("*.yaml"))

MINIMAL = """\
model:
  preset: lshm-2
data:
  train: lspet:data/lspet
  input_size: 128
"""


def _write(tmp_path: Path, text: str, name: str = "exp.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_shipped_config_loads(path: Path) -> None:
    config = load_experiment(path)
    assert config.name == path.stem
    assert config.out_dir == Path("runs") / path.stem
    # the file name says what it holds: the student preset and, for distillation, the teacher
    student = config.model.preset.replace("-", "")
    assert path.name.startswith(student.replace("teacherhg", "teacher-hg"))
    assert ("_kd-" in path.name or "finetune" in path.name) == (config.teacher is not None)


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_weights_a_config_starts_from_are_shipped(path: Path) -> None:
    # a recipe that starts from engines/ (stage 2, the venue fine-tune) must find those files in the repo
    config = load_experiment(path)
    needed = [config.model.init, config.teacher.weights if config.teacher else None]
    for weights in needed:
        if weights is not None and weights.parts[0] == "engines":
            assert (REPO / weights).is_file(), f"{path.name} needs {weights}, which is not in engines/"


def test_distillation_comparison_differs_only_by_the_teacher() -> None:
    # training/README.md's with/without-teacher comparison: any other difference would be measured too
    taught = config_to_data(load_experiment(REPO / "training" / "lshm2_kd-hg2_lspet_128.yaml"))
    control = config_to_data(load_experiment(REPO / "training" / "lshm2_lspet_128_stage2.yaml"))
    assert taught["teacher"] is not None and control["teacher"] is None
    for key in ("teacher", "distill", "name"):
        taught.pop(key), control.pop(key)
    taught["train"].pop("out_dir"), control["train"].pop("out_dir")
    assert taught == control


def test_paper_defaults(tmp_path: Path) -> None:
    config = load_experiment(_write(tmp_path, MINIMAL))
    assert config.optim.name == "rmsprop" and config.optim.lr == pytest.approx(2.6e-4)
    assert config.data.batch_size == 6
    assert (config.distill.sigma, config.distill.start_kd_weight) == (0.1, 0.6)
    assert config.data.train == ("lspet:data/lspet",) and config.data.size == (128, 128)


def test_unknown_key_is_rejected_with_file_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path, MINIMAL + "optim:\n  name: adam\n  lrr: 0.1\n")
    with pytest.raises(ConfigError) as info:
        load_experiment(path)
    message = str(info.value)
    assert re.search(rf"{re.escape(str(path))}:8: field 'optim.lrr': unknown key", message), message
    assert "lr" in message  # lists the allowed keys


@pytest.mark.parametrize(
    ("extra", "line", "words"),
    [
        ("train:\n  epochs: 0\n", 6, "train.epochs"),
        ("optim:\n  name: sgd\n", 7, "'rmsprop', 'adam', 'adamw'"),
        ("schedule:\n  milestones: [0.9, 0.5]\n", 6, "milestones"),
        ("teacher:\n  preset: teacher-hg9\n  weights: t.safetensors\n", 6, "known presets"),
        ("distill:\n  sigma: 0.5\n", 6, "distill.sigma"),
    ],
)
def test_bad_values_name_the_line(tmp_path: Path, extra: str, line: int, words: str) -> None:
    path = _write(tmp_path, MINIMAL + extra)
    with pytest.raises(ConfigError, match=rf"exp.yaml:{line}:.*{re.escape(words)}"):
        load_experiment(path)


def test_input_size_must_fit_the_model(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"exp.yaml:\d+:.*input_size.*multiples of 64"):
        load_experiment(_write(tmp_path, MINIMAL.replace("input_size: 128", "input_size: 100")))
    config = load_experiment(_write(tmp_path, MINIMAL.replace("input_size: 128", "input_size: [128, 192]")))
    assert config.data.size == (128, 192)


def test_overrides(tmp_path: Path) -> None:
    path = _write(tmp_path, MINIMAL)
    config = load_experiment(path, ["train.epochs=2", "data.train=lspet:elsewhere@0:16", "optim.lr=1e-3",
                                    "teacher.preset=teacher-hg2", "teacher.weights=t.safetensors",
                                    "data.augment=null", "train.out_dir=/tmp/x"])  # fmt: skip
    assert config.train.epochs == 2
    assert config.data.train == ("lspet:elsewhere@0:16",)
    assert config.optim.lr == pytest.approx(1e-3)
    assert config.teacher is not None and config.teacher.weights == Path("t.safetensors")
    assert config.data.augment is None
    assert config.out_dir == Path("/tmp/x")
    with pytest.raises(ConfigError, match="train.epohcs"):
        load_experiment(path, ["train.epohcs=2"])
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        load_experiment(path, ["train.epochs"])


def test_scientific_notation_without_a_dot_is_a_number(tmp_path: Path) -> None:
    # YAML 1.1 reads 5e-4 as a string; a float field takes it as the number a user means
    config = load_experiment(_write(tmp_path, MINIMAL + "optim:\n  lr: 5e-4\n  eps: 1E-6\n"))
    assert config.optim.lr == pytest.approx(5e-4) and config.optim.eps == pytest.approx(1e-6)
    with pytest.raises(ConfigError, match="optim.lr"):
        load_experiment(_write(tmp_path, MINIMAL + "optim:\n  lr: fast\n"))


def test_round_trip_through_plain_data(tmp_path: Path) -> None:
    config = load_experiment(REPO / "training" / "lshm2_venue-finetune.yaml")
    data = config_to_data(config)
    assert isinstance(data["data"]["train"], list) and isinstance(data["model"]["init"], str)
    again = experiment_from_data(data, "ckpt")
    assert again == config
    assert experiment_from_data(data, "ckpt", ["train.epochs=3"]).train.epochs == 3


def test_cli_reports_config_errors_without_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, MINIMAL + "bogus: 1\n")
    assert main(["train", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "exp.yaml:6: field 'bogus': unknown key" in err and "Traceback" not in err
    assert main(["train"]) == 2
    assert "--config" in capsys.readouterr().err
