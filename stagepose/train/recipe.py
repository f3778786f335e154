"""The GPU recipe: a teacher, two students with and without it, their scores and a show model, in one time budget.

``run_gpu_recipe(settings)`` (``stagepose recipe gpu``) runs on one GPU within ``budget_s`` seconds of wall
time in all (10 minutes by default):

1. teacher-hg8 at 256x256 on LSPET (``training/gpu/teacher-hg8_lspet_256.yaml``);
2. lshm-4 taught by it (LSHM_t4), then lshm-4 alone (LSHM_4) for the same number of steps;
3. the same pair for lshm-2: each pair differs only by the teacher, the paper's comparison;
4. after each run, ``stagepose eval`` on the held-out split; at the end the eval-compare tables, a chart
   and the KD gain per student;
5. ONNX export (with sidecar) of the better-scoring lshm-4, for GPU show machines;
6. PyTorch CUDA latency of both students (FP32/FP16, eager/CUDA graphs, batch 1) and FP16 accuracy;
   skipped, with the reason recorded, where torch sees no GPU.

The time: ``reserve_s`` is kept for evaluation, export and latency (evaluation between runs is taken
from it), the rest is training time, shared by weight (``Stage.share``: the teacher 0.4, since the
students learn from it, each student 0.15). A run gets its weight's part of the training time left when
it starts, so time a run does not use passes on. Each run plans its own step count from its measured speed
(``stagepose.train.budget``), except the untaught students: they train for exactly the steps of their
taught twin (same I, same schedule), with at least the twin's time as their stop; without the teacher's
forward pass a step is never slower, so they normally finish early and leave time to the next runs.

``summary.json`` and ``summary.md`` (``recipe_report``) are rewritten after every run, so a recipe that is
stopped part-way still leaves the numbers of the runs it finished.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from stagepose.errors import ConfigError
from stagepose.train.config import ExperimentConfig, config_to_data, load_experiment
from stagepose.train.recipe_report import RecipeSummary, StageResult, write_summary

if TYPE_CHECKING:
    from stagepose.train.compare import SavedReport

CONFIGS_DIR = Path("training") / "gpu"
DEFAULT_OUT = Path("runs") / "gpu_recipe"


@dataclass(frozen=True)
class Stage:
    """One training run of the recipe.

    Attributes:
        name: its config ``<configs_dir>/<name>.yaml`` and its folder ``<out>/<name>``.
        label: its row in the tables (the paper's name).
        share: its weight in the training time (see the module docstring).
        twin: for an untaught student, the taught run whose step count it copies.
    """

    name: str
    label: str
    share: float
    twin: str | None = None


TEACHER = "teacher-hg8_lspet_256"
STAGES: tuple[Stage, ...] = (
    Stage(TEACHER, "Teacher_8", 0.40),
    Stage("lshm4_kd-hg8_lspet_256", "LSHM_t4", 0.15),
    Stage("lshm4_lspet_256", "LSHM_4", 0.15, twin="lshm4_kd-hg8_lspet_256"),
    Stage("lshm2_kd-hg8_lspet_256", "LSHM_t2", 0.15),
    Stage("lshm2_lspet_256", "LSHM_2", 0.15, twin="lshm2_kd-hg8_lspet_256"),
)
EXPORT_PRESET = "lshm-4"
LATENCY_PRESETS = ("lshm-4", "lshm-2")

# --tiny: the whole pipeline on a CPU in about a minute (4 training images, 4 eval images, 64x64)
TINY_OVERRIDES = ("data.input_size=64", "data.batch_size=2", "data.val_batch_size=4", "data.workers=0",
                  "train.epochs=1", "train.log_every=1")  # fmt: skip
TINY_TRAIN_RANGE, TINY_EVAL_RANGE = "@0:4", "@-4:"


@dataclass(frozen=True, kw_only=True)
class RecipeSettings:
    """What ``stagepose recipe gpu`` is asked for (its command-line options).

    Attributes:
        data: training data spec (its train split); None: the configs' own, ``lspet:../shared/data/lspet``.
        eval_data: spec whose val split every run is scored on; None: ``data``'s (LSPET: images 8500-8999).
        out_dir: where the five runs, the export and the summary go.
        configs_dir: the five experiment YAMLs (``STAGES``).
        budget_s: wall-clock seconds for everything.
        reserve_s: the part of it kept for evaluation, export and latency.
        workers: DataLoader workers per run; None: the configs' 12 (a 16-core GPU machine).
        device: "auto", "cpu" or "cuda".
        tiny: shrink everything for a CPU proof: ``TINY_OVERRIDES``, and the first 4 training images and
            the last 4 eval images unless a spec names its own range.
        overrides: ``KEY=VALUE`` for all five configs alike (e.g. ``data.batch_size=32``).
        overwrite: replace a previous recipe run in ``out_dir``.
        latency_runs, latency_warmup: timed and untimed calls per latency case.
        parity_crops: eval crops for the FP16 vs FP32 joint comparison.
        progress: progress bars while training and evaluating.
    """

    data: str | None = None
    eval_data: str | None = None
    out_dir: Path = DEFAULT_OUT
    configs_dir: Path = CONFIGS_DIR
    budget_s: float = 600.0
    reserve_s: float = 90.0
    workers: int | None = None
    device: Literal["auto", "cpu", "cuda"] = "auto"
    tiny: bool = False
    overrides: tuple[str, ...] = ()
    overwrite: bool = False
    latency_runs: int = 200
    latency_warmup: int = 20
    parity_crops: int = 64
    progress: bool = True

    def __post_init__(self) -> None:
        if not (self.budget_s > 0 and 0 <= self.reserve_s < self.budget_s):
            raise ConfigError(f"--budget-s {self.budget_s:g} must be > 0 and --reserve-s {self.reserve_s:g} at least "
                              "0 and below it")  # fmt: skip
        if self.workers is not None and self.workers < 0:
            raise ConfigError(f"--workers must be >= 0, got {self.workers}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"--device must be auto, cpu or cuda, got {self.device!r}")
        if self.latency_runs < 1 or self.latency_warmup < 0 or self.parity_crops < 1:
            raise ConfigError("latency runs and parity crops must be >= 1, latency warm-up >= 0")

    def to_json(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        return {k: str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v for k, v in out.items()}


# ------------------------------------------------------------------------------------------ configs


def with_range(spec: str, selection: str) -> str:
    """``spec`` restricted to ``selection`` (``@START:END``), unless it already names a range or ``val=N``."""
    from stagepose.data.spec import parse_spec

    parsed = parse_spec(spec)
    if parsed.has_range or "val" in parsed.options:
        return spec
    head, sep, options = spec.partition("?")
    return f"{head}{selection}{sep}{options}"


def stage_configs(settings: RecipeSettings) -> dict[str, ExperimentConfig]:
    """The five configs with the recipe's data, output folders and options applied; the time budgets, the
    teacher's weights and the controls' step counts are set as the runs finish.

    Raises:
        ConfigError: a missing or invalid YAML, or a taught/untaught pair that differs by more than the
            teacher (the comparison would then measure that difference too).
    """
    overrides = (*(TINY_OVERRIDES if settings.tiny else ()), *settings.overrides)
    configs = {}
    for stage in STAGES:
        config = load_experiment(settings.configs_dir / f"{stage.name}.yaml", overrides)
        specs = (settings.data,) if settings.data else config.data.train_specs
        if settings.tiny:
            specs = tuple(with_range(s, TINY_TRAIN_RANGE) for s in specs)
        data = replace(config.data, train=specs, workers=config.data.workers if settings.workers is None
                       else settings.workers)  # fmt: skip
        train = replace(config.train, out_dir=settings.out_dir / stage.name, device=settings.device)
        configs[stage.name] = replace(config, data=data, train=train)
    for stage in STAGES:
        if stage.twin:
            _check_twins(configs[stage.twin], configs[stage.name], settings.configs_dir)
    return configs


def _check_twins(taught: ExperimentConfig, control: ExperimentConfig, folder: Path) -> None:
    a, b = config_to_data(taught), config_to_data(control)
    for data in (a, b):
        for key in ("teacher", "distill", "name"):
            data.pop(key, None)
        data["train"].pop("out_dir", None)
    if a != b:
        differ = sorted(k for k in a if a.get(k) != b.get(k))
        raise ConfigError(f"{folder}/{control.name}.yaml must equal {taught.name}.yaml but for the teacher (the "
                          f"with/without comparison); they differ in: {', '.join(differ)}")  # fmt: skip


def eval_spec(settings: RecipeSettings, configs: dict[str, ExperimentConfig]) -> str:
    """The data every run is scored on (its val split)."""
    spec = settings.eval_data or settings.data or configs[TEACHER].data.train_specs[0]
    return with_range(spec, TINY_EVAL_RANGE) if settings.tiny else spec


def _check_out_dir(settings: RecipeSettings) -> None:
    if settings.overwrite:
        return
    taken = [settings.out_dir / s.name / "last.pt" for s in STAGES] + [settings.out_dir / "summary.json"]
    found = next((p for p in taken if p.exists()), None)
    if found is not None:
        raise ConfigError(f"{settings.out_dir} already holds a recipe run ({found}); pass --overwrite to replace "
                          "it, or choose another --out")  # fmt: skip


# ------------------------------------------------------------------------------------------ the run


@dataclass
class _Progress:
    """The recipe's clock and its printed progress lines."""

    budget_s: float
    say: Callable[[str], None]
    start: float = 0.0
    eval_s: float = 0.0  # evaluation between runs, taken from the reserve

    def __post_init__(self) -> None:
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def __call__(self, text: str) -> None:
        self.say(f"[recipe {self.elapsed():6.1f} s of {self.budget_s:.0f}] {text}")


def run_gpu_recipe(settings: RecipeSettings, *, say: Callable[[str], None] = lambda _: None) -> RecipeSummary:
    """Run the recipe (see the module docstring) and write ``summary.json`` and ``summary.md``.

    Args:
        settings: what to run.
        say: receives one line per step of progress (the CLI prints them).

    Returns:
        The summary that was written.

    Raises:
        ConfigError: bad settings or configs, or an output folder holding a run (before anything runs).
        DataError, ModelError: from the data, training, evaluation or export.
    """
    clock = _Progress(settings.budget_s, say)
    _check_out_dir(settings)
    configs = stage_configs(settings)
    scored_on = eval_spec(settings, configs)
    clock(f"{len(STAGES)} runs, training on {', '.join(configs[TEACHER].data.train_specs)}, scored on "
          f"{scored_on}; {settings.budget_s - settings.reserve_s:.0f} s of training time")  # fmt: skip
    results: list[StageResult] = []
    with _cudnn_autotune():
        for index in range(len(STAGES)):
            results.append(_run_stage(settings, index, configs, results, scored_on, clock))
            write_summary(_summary(settings, results, scored_on, clock, final=False), settings.out_dir)
    timings: dict[str, float] = {"train": sum(r.wall_s for r in results), "eval": clock.eval_s}
    start = clock.elapsed()
    export = _export(settings, results, configs, clock)
    timings["export"] = clock.elapsed() - start
    start = clock.elapsed()
    latency = _latency(settings, results, scored_on, clock)
    timings["latency"] = clock.elapsed() - start
    summary = _summary(settings, results, scored_on, clock, final=True, export=export, latency=latency,
                       timings=timings)  # fmt: skip
    json_path, md_path = write_summary(summary, settings.out_dir)
    clock(f"done in {summary.wall_s:.0f} s ({'within' if summary.within_budget else 'OVER'} the "
          f"{settings.budget_s:.0f} s budget): {json_path}, {md_path}")  # fmt: skip
    return summary


def _run_stage(settings: RecipeSettings, index: int, configs: dict[str, ExperimentConfig],
               done: list[StageResult], scored_on: str, clock: _Progress) -> StageResult:  # fmt: skip
    """Train one run in its part of the time, then score it."""
    from stagepose.train.loop import train

    stage = STAGES[index]
    config = configs[stage.name]
    by_name = {r.name: r for r in done}
    left = max(settings.budget_s - settings.reserve_s + clock.eval_s - clock.elapsed(), 1.0)
    budget = left * stage.share / sum(s.share for s in STAGES[index:])
    train_cfg = config.train
    if stage.twin:  # the control: the twin's steps (I), and never less time than the twin took
        twin = by_name[stage.twin]
        train_cfg = replace(train_cfg, max_steps=twin.steps)
        budget = min(max(budget, twin.wall_s), left)
    config = replace(config, train=replace(train_cfg, time_budget_s=budget))
    if config.teacher is not None and config.teacher.preset is not None:  # a network teacher: the one trained here
        config = replace(config, teacher=replace(config.teacher, weights=by_name[TEACHER].weights))
    steps = f"{config.train.max_steps} steps (as {stage.twin})" if stage.twin else "steps planned from its speed"
    clock(f"{stage.label} ({stage.name}): {config.model.preset}"
          f"{' taught by ' + _teacher_name(config) if config.teacher else ''}, {budget:.0f} s, {steps}")  # fmt: skip
    start = time.perf_counter()
    result = train(config, overwrite=settings.overwrite, progress=settings.progress)
    wall = time.perf_counter() - start
    weights = result.best_weights or result.last_checkpoint
    report = result.budget
    clock(f"{stage.label}: {result.steps} steps of {result.planned_steps} in {wall:.0f} s, {result.img_s:.0f} "
          f"images/s{' (stopped at its deadline)' if report and report.stopped_at_deadline else ''}")  # fmt: skip
    start = time.perf_counter()
    saved = _evaluate(settings, stage, config, weights, scored_on)
    clock.eval_s += time.perf_counter() - start
    clock(f"{stage.label}: {saved.metric} mean {saved.scores['mean']:.1f} %, limbs {saved.scores['limbs']:.1f} %")
    return StageResult(
        name=stage.name, label=stage.label, preset=config.model.preset,
        teacher=_teacher_name(config) if config.teacher else None, budget_s=budget, wall_s=wall,
        steps=result.steps, planned_steps=result.planned_steps,
        rate_steps_s=report.rate_steps_s if report else None,
        stopped_at_deadline=bool(report and report.stopped_at_deadline), img_s=result.img_s, weights=weights,
        scores=dict(saved.scores), metric=saved.metric,
    )  # fmt: skip


def _teacher_name(config: ExperimentConfig) -> str:
    teacher = config.teacher
    return (teacher.preset or "teacher labels") if teacher is not None else ""


def _evaluate(
    settings: RecipeSettings, stage: Stage, config: ExperimentConfig, weights: Path, spec: str
) -> SavedReport:
    """``stagepose eval --json <run>/eval.json`` of the run's weights; returns the saved report."""
    from stagepose.train.compare import read_report
    from stagepose.train.evaluate import evaluate_checkpoint

    json_path = config.out_dir / "eval.json"
    evaluate_checkpoint(weights, spec, batch_size=config.data.val_batch_size, workers=config.data.workers,
                        device=settings.device, progress=settings.progress, json_path=json_path,
                        label=stage.label)  # fmt: skip
    return read_report(json_path)


@contextlib.contextmanager
def _cudnn_autotune() -> Iterator[None]:
    """cuDNN benchmarks its convolution algorithms per shape and keeps the fastest: every run here has fixed
    shapes. The flag is process-wide in torch, so it is restored afterwards."""
    import torch

    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


# ------------------------------------------------------------------------------------------ after training


def _best_arm(results: list[StageResult], preset: str) -> StageResult:
    """The better-scoring run of ``preset`` by mean (the taught one on a tie)."""
    arms = [r for r in results if r.preset == preset]

    def key(r: StageResult) -> tuple[float, bool]:
        mean = r.scores.get("mean", math.nan)
        return (mean if math.isfinite(mean) else -math.inf, r.teacher is not None)

    return max(arms, key=key)


def _export(settings: RecipeSettings, results: list[StageResult], configs: dict[str, ExperimentConfig],
            clock: _Progress) -> dict[str, Any]:  # fmt: skip
    """ONNX + sidecar of the better lshm-4, with its weights beside it (the torch backend loads those)."""
    from stagepose.runtime.export import export_onnx

    run = _best_arm(results, EXPORT_PRESET)
    size = configs[run.name].data.size
    folder = settings.out_dir / "export"
    folder.mkdir(parents=True, exist_ok=True)
    weights = Path(shutil.copy2(run.weights, folder / f"{run.name}.safetensors"))
    clock(f"exporting {run.label} ({run.name}) to ONNX at {size.text()}")
    result = export_onnx(weights, folder / f"{run.name}.onnx", input_size=size)
    clock(f"wrote {result.onnx_path} and {result.sidecar_path} (max |onnxruntime - torch| {result.max_abs_diff:.2g})")
    return {"run": run.name, "label": run.label, "preset": run.preset, "why": "the better-scoring lshm-4 (mean)",
            "onnx": str(result.onnx_path), "sidecar": str(result.sidecar_path), "weights": str(weights),
            "input_size": list(size.hw), "parity_max_abs_diff": result.max_abs_diff}  # fmt: skip


def _latency(settings: RecipeSettings, results: list[StageResult], scored_on: str, clock: _Progress) -> dict[str, Any]:
    """PyTorch CUDA latency (batch 1) and FP16 accuracy of the better arm of each student, or why not."""
    from stagepose.models.checkpoint import load_state, recorded_input_size
    from stagepose.runtime.gpu_check import (
        cuda_unavailable,
        dataset_crops,
        describe_gpu,
        fp16_parity,
        latency_cases,
        torch_latency,
    )
    from stagepose.sizes import ImageSize

    device = "cuda"
    reason = "--device cpu" if settings.device == "cpu" else cuda_unavailable(device)
    if reason is not None:
        clock(f"GPU latency skipped: {reason}")
        return {"skipped": reason}
    out: dict[str, Any] = {**describe_gpu(device), "runs": settings.latency_runs, "warmup": settings.latency_warmup,
                           "students": {}}  # fmt: skip
    for preset in LATENCY_PRESETS:
        run = _best_arm(results, preset)
        size = recorded_input_size(load_state(run.weights)[1]) or ImageSize(256, 256)
        clock(f"GPU latency of {run.label} ({run.name}) at {size.text()}, batch 1")
        crops = dataset_crops(scored_on, settings.parity_crops, size)
        out["students"][preset] = {
            "run": run.name, "weights": str(run.weights), "input_size": list(size.hw),
            "latency_ms": torch_latency(run.weights, input_size=size, device=device,
                                        cases=latency_cases((1,)), runs=settings.latency_runs,
                                        warmup=settings.latency_warmup),
            "fp16_vs_fp32": fp16_parity(run.weights, input_size=size, device=device, crops=crops),
        }  # fmt: skip
        best = out["students"][preset]["latency_ms"].get("fp16/graph/b1", {})
        clock(f"{run.label}: FP16 + CUDA graph p50 {best.get('p50', math.nan):.2f} ms")
    return out


# ------------------------------------------------------------------------------------------ summary


def _kd_gains(results: list[StageResult]) -> dict[str, dict[str, Any]]:
    """Taught minus untaught, per student, for every column (percentage points)."""
    by_name = {r.name: r for r in results}
    gains = {}
    for stage in STAGES:
        if stage.twin and stage.name in by_name and stage.twin in by_name:
            control, taught = by_name[stage.name], by_name[stage.twin]
            diff = {c: taught.scores.get(c, math.nan) - control.scores.get(c, math.nan) for c in control.scores}
            gains[control.preset] = {"mean": diff.get("mean"), "limbs": diff.get("limbs"), "groups": diff,
                                     "taught": taught.name, "untaught": control.name, "steps": control.steps,
                                     "same_steps": taught.steps == control.steps}  # fmt: skip
    return gains


def _comparisons(
    settings: RecipeSettings, results: list[StageResult], final: bool
) -> tuple[dict[str, str], Path | None]:
    """eval-compare tables per student (untaught first) and, at the end, one chart of every run."""
    from stagepose.train.compare import comparison_table, plot_comparison, read_report

    by_name = {r.name: r for r in results}
    tables = {}
    for stage in STAGES:
        if stage.twin and stage.name in by_name:
            pair = [read_report(by_name[n].weights.parent / "eval.json") for n in (stage.name, stage.twin)]
            tables[by_name[stage.name].preset] = comparison_table(pair)
    chart = None
    if final and len(results) > 1:
        order = [name for s in STAGES if s.twin for name in (s.name, s.twin)] + [TEACHER]  # pairs, then the teacher
        reports = [read_report(by_name[n].weights.parent / "eval.json") for n in order if n in by_name]
        chart = plot_comparison(reports, settings.out_dir / "compare.png")
    return tables, chart


def _machine() -> dict[str, Any]:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"gpu": gpu, "torch": torch.__version__, "cuda": torch.version.cuda, "cpus": os.cpu_count(),
            "python": platform.python_version()}  # fmt: skip


def _summary(settings: RecipeSettings, results: list[StageResult], scored_on: str, clock: _Progress, *, final: bool,
             export: dict[str, Any] | None = None, latency: dict[str, Any] | None = None,
             timings: dict[str, float] | None = None) -> RecipeSummary:  # fmt: skip
    tables, chart = _comparisons(settings, results, final)
    notes = [] if final else [f"in progress: {len(results)} of {len(STAGES)} runs done"]
    for gain in _kd_gains(results).values():
        if not gain["same_steps"]:
            notes.append(f"{gain['untaught']} did fewer steps than {gain['taught']}: the KD gain is not at equal steps")
    for r in results:
        if r.stopped_at_deadline:
            notes.append(f"{r.name} reached its time budget before its planned {r.planned_steps} steps")
    wall = clock.elapsed()
    return RecipeSummary(
        settings=settings.to_json(), machine=_machine(), budget_s=settings.budget_s, wall_s=wall,
        stages=tuple(results), eval_data=scored_on, kd_gain=_kd_gains(results), comparisons=tables, chart=chart,
        export=export, latency=latency or {"skipped": "not reached yet"},
        timings_s={**(timings or {}), "total": wall}, notes=tuple(notes),
    )  # fmt: skip
