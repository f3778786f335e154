"""The GPU recipe (`stagepose recipe gpu`): the time budget that plans a run's steps, the five configs, and the
whole pipeline end to end on the CPU with --tiny on real LSPET images."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from stagepose.cli import main
from stagepose.errors import ConfigError
from stagepose.models import build_model
from stagepose.models.checkpoint import save_weights
from stagepose.runtime.gpu_check import cuda_unavailable, fp16_parity, latency_cases, torch_latency
from stagepose.runtime.sidecar import Sidecar
from stagepose.train.budget import RESERVE, TimeBudget
from stagepose.train.config import config_to_data, load_experiment
from stagepose.train.curves import read_log
from stagepose.train.distill import kd_weights
from stagepose.train.loop import train
from stagepose.train.recipe import STAGES, RecipeSettings, stage_configs, with_range

REPO = Path(__file__).resolve().parents[1]
GPU_CONFIGS = sorted((REPO / "training" / "gpu").glob("*.yaml"))
LSPET = REPO.parent / "shared" / "data" / "lspet"
needs_lspet = pytest.mark.skipif(not (LSPET / "joints.mat").is_file(), reason="../shared/data/lspet is absent")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# ------------------------------------------------------------------------------------------ the budget


def test_budget_plans_the_steps_that_fit_from_the_speed_after_the_first_step() -> None:
    clock = FakeClock()
    budget = TimeBudget(100.0, needs_plan=True, clock=clock)
    clock.now += 10.0  # setup and a slow first step (worker start-up, autotuning): not in the rate
    budget.note_step(1)
    assert not budget.ready_to_plan(epoch_done=False)
    clock.now += 4.0  # 8 more steps at 2 steps/s, then the first epoch ends
    budget.note_step(9)
    assert budget.ready_to_plan(epoch_done=True)
    planned = budget.plan(9, cap=10_000)
    assert planned == 9 + int(2.0 * 86.0 * (1 - RESERVE))  # 86 s left at 2 steps/s, less the reserve
    assert budget.rate_steps_s == pytest.approx(2.0) and budget.planned_at_step == 9
    assert not budget.ready_to_plan(epoch_done=True)  # planned once
    assert budget.plan(9, cap=50) == 50  # never more than the provisional plan (train.epochs)
    clock.now += 86.0
    assert budget.expired()


def test_budget_plans_mid_epoch_after_a_tenth_of_the_time_and_not_without_need() -> None:
    clock = FakeClock()
    budget = TimeBudget(100.0, needs_plan=True, clock=clock)
    clock.now += 30.0  # setup does not count towards the tenth
    budget.note_step(1)
    clock.now += 9.9
    assert not budget.ready_to_plan(epoch_done=False)
    clock.now += 0.2
    assert budget.ready_to_plan(epoch_done=False)
    given = TimeBudget(100.0, needs_plan=False, clock=clock)  # train.max_steps given: a stop only
    given.note_step(1)
    assert not given.ready_to_plan(epoch_done=True)
    assert given.report(planned_steps=40).planned_steps == 40
    with pytest.raises(ValueError, match="> 0"):
        TimeBudget(0.0, needs_plan=True)


def test_budget_of_a_spent_run_plans_no_more_steps() -> None:
    clock = FakeClock()
    budget = TimeBudget(10.0, needs_plan=True, clock=clock)
    clock.now += 12.0
    budget.note_step(1)
    assert budget.plan(1, cap=100) == 1


def test_time_budget_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="time_budget_s"):
        load_experiment(GPU_CONFIGS[0], ["train.time_budget_s=0"])


@needs_lspet
def test_budgeted_distillation_plans_its_steps_and_eq8_follows_the_plan(tmp_path: Path) -> None:
    torch.manual_seed(0)
    teacher = save_weights(tmp_path / "teacher.safetensors", build_model("teacher-hg2"), "teacher-hg2")
    config = {
        "model": {"preset": "lshm-2"},
        "teacher": {"preset": "teacher-hg2", "weights": str(teacher)},
        "data": {"train": f"lspet:{LSPET}@0:8", "input_size": 64, "batch_size": 4, "workers": 0},
        "optim": {"lr": 1.0e-3},
        "schedule": {"kind": "cosine"},
        "train": {"epochs": 1000, "time_budget_s": 10.0, "log_every": 1, "device": "cpu",
                  "out_dir": str(tmp_path / "run")},
    }  # fmt: skip
    path = tmp_path / "kd.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    result = train(load_experiment(path), progress=False)
    report = result.budget
    assert report is not None and report.planned_at_step is not None
    planned = report.planned_steps
    assert planned is not None and planned < 1000 * 2 and result.planned_steps == planned
    assert result.steps == planned or report.stopped_at_deadline
    if not report.stopped_at_deadline:  # (a machine too busy to finish one epoch in 10 s meets the deadline first)
        assert report.planned_at_step == 2  # at the end of the first epoch: 8 images, batch 4
        assert report.elapsed_s < 10.0 + 5.0  # within the budget, but for the final save
    stored = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text(encoding="utf-8"))
    assert stored["train"]["max_steps"] == planned  # a resume continues the same plan
    rows = [r for r in read_log(tmp_path / "run" / "log.csv") if r["loss"] is not None]
    for row in rows:  # the row after step s used the weights of step s - 1: the provisional I, then the plan
        step = int(row["step"])
        total = 2000 if step <= report.planned_at_step else planned
        assert row["w_kd"] == pytest.approx(kd_weights(step - 1, total)[0], abs=1e-5), step


# ------------------------------------------------------------------------------------------ the configs


def test_the_five_configs_are_the_recipes_stages() -> None:
    assert [p.stem for p in GPU_CONFIGS] == sorted(s.name for s in STAGES)
    for path in GPU_CONFIGS:
        config = load_experiment(path)
        assert config.data.size == (256, 256) and config.train.time_budget_s and config.train.max_steps is None
        assert ("_kd-hg8" in path.name) == (config.teacher is not None and config.teacher.preset == "teacher-hg8")
        assert path.name.startswith(config.model.preset.replace("lshm-", "lshm"))


@pytest.mark.parametrize("stage", [s for s in STAGES if s.twin], ids=lambda s: s.name)
def test_each_student_pair_differs_only_by_the_teacher(stage: object) -> None:
    folder = REPO / "training" / "gpu"
    taught = config_to_data(load_experiment(folder / f"{stage.twin}.yaml"))  # type: ignore[attr-defined]
    control = config_to_data(load_experiment(folder / f"{stage.name}.yaml"))  # type: ignore[attr-defined]
    assert taught["teacher"] is not None and control["teacher"] is None
    for data in (taught, control):
        for key in ("teacher", "distill", "name"):
            data.pop(key)
    assert taught == control


def test_recipe_refuses_pairs_that_differ(tmp_path: Path) -> None:
    folder = tmp_path / "gpu"
    folder.mkdir()
    for path in GPU_CONFIGS:
        text = path.read_text(encoding="utf-8")
        if path.stem == "lshm2_lspet_256":
            text = text.replace("lr: 1.0e-3", "lr: 2.0e-3")
        (folder / path.name).write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match="lshm2_lspet_256.yaml must equal lshm2_kd-hg8_lspet_256.yaml.*optim"):
        stage_configs(RecipeSettings(configs_dir=folder, out_dir=tmp_path / "out"))


def test_settings_and_tiny_data_selection(tmp_path: Path) -> None:
    assert with_range("lspet:d", "@0:4") == "lspet:d@0:4"
    assert with_range("lspet:d?layout=lspet", "@-4:") == "lspet:d@-4:?layout=lspet"
    assert with_range("lspet:d@10:20", "@0:4") == "lspet:d@10:20"  # a named range is kept
    assert with_range("lspet:d?val=100", "@0:4") == "lspet:d?val=100"
    configs = stage_configs(RecipeSettings(data="lspet:x", tiny=True, out_dir=tmp_path, workers=3))
    teacher = configs["teacher-hg8_lspet_256"]
    assert teacher.data.train_specs == ("lspet:x@0:4",) and teacher.data.size == (64, 64)
    assert teacher.data.workers == 3 and teacher.out_dir == tmp_path / "teacher-hg8_lspet_256"
    with pytest.raises(ConfigError, match="--reserve-s"):
        RecipeSettings(budget_s=60, reserve_s=90)


# ------------------------------------------------------------------------------------------ latency


def test_latency_cases_and_a_cpu_dry_run(tmp_path: Path) -> None:
    cases = latency_cases((1,))
    assert [c.key for c in cases] == ["fp32/eager/b1", "fp32/graph/b1", "fp16/eager/b1", "fp16/graph/b1"]
    weights = save_weights(tmp_path / "w.safetensors", build_model("lshm-2"), "lshm-2")
    out = torch_latency(weights, input_size=(64, 64), device="cpu", cases=cases[:1], runs=2, warmup=0)
    assert {"p50", "p95", "p99", "images_per_s"} <= set(out["fp32/eager/b1"])
    assert cuda_unavailable("cpu") is not None
    if not torch.cuda.is_available():
        assert "sees no CUDA GPU" in str(cuda_unavailable("cuda"))


@pytest.mark.gpu
def test_cuda_latency_and_fp16_joints_of_a_student(tmp_path: Path) -> None:
    if cuda_unavailable("cuda"):
        pytest.skip(str(cuda_unavailable("cuda")))
    torch.manual_seed(0)
    weights = save_weights(tmp_path / "w.safetensors", build_model("lshm-2"), "lshm-2")
    out = torch_latency(weights, input_size=(256, 256), device="cuda", cases=latency_cases((1,)), runs=20, warmup=5)
    assert set(out) == {"fp32/eager/b1", "fp32/graph/b1", "fp16/eager/b1", "fp16/graph/b1"}
    print(f"\nlshm-2 (random weights) 256x256 batch 1, p50 ms: { {k: v['p50'] for k, v in out.items()} }")
    crops = torch.randn(8, 3, 256, 256).numpy()
    parity = fp16_parity(weights, input_size=(256, 256), device="cuda", crops=crops)
    assert parity["max_abs_diff"] < 0.05


# ------------------------------------------------------------------------------------------ end to end


@pytest.mark.slow
@needs_lspet
def test_tiny_recipe_runs_end_to_end_on_the_cpu(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "recipe"
    args = ["recipe", "gpu", "--data", f"lspet:{LSPET}", "--out", str(out), "--tiny", "--device", "cpu",
            "--no-progress"]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "KD gain lshm-4" in printed and "GPU latency skipped" in printed

    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert [s["name"] for s in summary["stages"]] == [s.name for s in STAGES]
    for stage in summary["stages"]:
        assert stage["steps"] == 2 and stage["planned_steps"] == 2  # 4 images, batch 2, one epoch
        assert stage["metric"] == "PCK@0.2" and stage["scores"]["mean"] is not None
        assert (out / stage["name"] / "eval.json").is_file()
    assert summary["eval_data"] == f"lspet:{LSPET}@-4:"
    for preset in ("lshm-4", "lshm-2"):
        gain = summary["kd_gain"][preset]
        assert gain["same_steps"] and isinstance(gain["mean"], float) and isinstance(gain["limbs"], float)
        assert "LSHM_t" in summary["comparisons"][preset]
    assert (out / "compare.png").is_file() and (out / "summary.md").is_file()

    export = summary["export"]
    assert export["preset"] == "lshm-4" and Path(export["onnx"]).is_file()
    sidecar = Sidecar.read(Path(export["sidecar"]), model_path=Path(export["onnx"]))
    assert sidecar.preset == "lshm-4" and tuple(sidecar.input_size) == (64, 64)
    assert "CUDA" in summary["latency"]["skipped"] or "cpu" in summary["latency"]["skipped"]
    assert set(summary["timings_s"]) == {"train", "eval", "export", "latency", "total"}

    assert main(args) == 2  # a second run into the same folder needs --overwrite
    assert "--overwrite" in capsys.readouterr().err
