"""The training loop: one experiment config in, checkpoints, a CSV log and a curves PNG out.

``train(config)`` builds the data, the student (optionally initialised from shipped weights), the frozen
teacher, the task (``SupervisedTask`` or ``DistillTask``), the optimiser and the learning-rate schedule,
then runs epochs of optimiser steps with validation at the end of each. It works the same on one CPU,
one GPU or, under ``torchrun``, several GPUs (DistributedDataParallel, see ``distributed``).

Everything the run writes goes to ``config.out_dir`` (``runs/<name>/``), by rank 0 only:
``config.yaml`` (resolved), ``last.pt`` (end of each epoch, and every ``train.checkpoint_every`` steps),
``best.pt`` + ``best.safetensors`` (best validation metric), ``log.csv`` and ``curves.png``.

Resuming (``resume=last.pt``) restores the student, optimiser, schedule, loss scaler and counters and
continues mid-epoch where the checkpoint was taken: the sampler's order depends only on (seed, epoch),
so the batches already done are skipped, and the eq. 8 weights continue from the restored step.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn
from torch.utils.data import ConcatDataset, DataLoader, Dataset, DistributedSampler

from stagepose.codec import HeatmapCodec
from stagepose.data.teacher_labels import TeacherLabels
from stagepose.errors import ConfigError, StageposeError
from stagepose.fileio import atomic_write_text
from stagepose.train.budget import BudgetReport, TimeBudget
from stagepose.train.checkpoints import (
    load_checkpoint,
    load_student_weights,
    save_best_weights,
    save_checkpoint,
    unwrap,
)
from stagepose.train.config import (
    ExperimentConfig,
    OptimConfig,
    ScheduleConfig,
    config_to_data,
    experiment_from_data,
    load_experiment,
)
from stagepose.train.curves import CsvLog, plot_curves
from stagepose.train.distill import DistillTask, SupervisedTask
from stagepose.train.distributed import (
    DistEnv,
    any_rank,
    barrier,
    destroy_process_group,
    init_process_group,
    read_env,
    resolve_device,
)
from stagepose.train.evaluate import make_loader, predict, score
from stagepose.train.label_teacher import check_coverage, load_teacher_labels
from stagepose.train.stop import StopSignals, TrainingStopped

logger = logging.getLogger(__name__)

WARMUP_START = 0.01  # warm-up starts at 1 % of the peak learning rate
TASK_KEYS = ("image", "heatmaps", "target_weight", "labelled", "teacher_heatmaps", "teacher_weight")


# ------------------------------------------------------------------------------------------ pieces


def lr_factor(step: int, *, total_steps: int, schedule: ScheduleConfig) -> float:
    """Learning-rate multiplier after ``step`` optimiser steps (a pure function of the step)."""
    if step < schedule.warmup_steps:
        return WARMUP_START + (1.0 - WARMUP_START) * step / schedule.warmup_steps
    if schedule.kind == "constant":
        return 1.0
    if schedule.kind == "step":
        progress = step / max(total_steps, 1)
        return float(schedule.gamma ** sum(1 for m in schedule.milestones if progress >= m))
    span = max(total_steps - schedule.warmup_steps, 1)
    t = min(max(step - schedule.warmup_steps, 0) / span, 1.0)
    return schedule.min_lr_ratio + (1.0 - schedule.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * t))


def build_optimizer(params: Any, optim: OptimConfig) -> torch.optim.Optimizer:
    """The optimiser the config names (RMSprop by default, as in the paper)."""
    if optim.name == "rmsprop":
        return torch.optim.RMSprop(params, lr=optim.lr, alpha=optim.alpha, eps=optim.eps,
                                   weight_decay=optim.weight_decay, momentum=optim.momentum)  # fmt: skip
    if optim.name == "adam":
        return torch.optim.Adam(params, lr=optim.lr, eps=optim.eps, weight_decay=optim.weight_decay)
    return torch.optim.AdamW(params, lr=optim.lr, eps=optim.eps, weight_decay=optim.weight_decay)


class EpochSampler(DistributedSampler):  # type: ignore[type-arg]
    """DistributedSampler (also for a single process) that can start an epoch part-way through.

    The order of an epoch depends only on (seed, epoch), so skipping the first ``skip`` samples of this
    process's shard resumes exactly where a mid-epoch checkpoint was taken.
    """

    def __init__(self, dataset: Dataset[Any], *, env: DistEnv, seed: int) -> None:
        super().__init__(dataset, num_replicas=env.world_size, rank=env.rank, shuffle=True, seed=seed,  # type: ignore[arg-type]
                         drop_last=False)  # fmt: skip
        self.skip = 0

    def set_skip(self, samples: int) -> None:
        self.skip = max(int(samples), 0)

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        return iter(indices[self.skip :])

    def __len__(self) -> int:
        return max(self.num_samples - self.skip, 0)


def build_student(config: ExperimentConfig) -> nn.Module:
    """The student preset, randomly initialised (seeded) or loaded strictly from ``model.init``."""
    from stagepose.models import build_model
    from stagepose.models.checkpoint import load_state

    model = build_model(config.model.preset)
    init = config.model.init
    if init is not None:
        state, metadata = load_state(init)
        recorded = metadata.get("preset")
        if recorded and recorded != config.model.preset:
            raise ConfigError(f"model.init {init} holds preset {recorded!r}, but model.preset is "
                              f"{config.model.preset!r}; set model.preset: {recorded}")  # fmt: skip
        load_student_weights(model, state, init)
        logger.info("student %s initialised from %s", config.model.preset, init)
    return model


def build_teacher(config: ExperimentConfig) -> nn.Module | None:
    """The frozen teacher network (strict load of its weights), or None (no teacher, or teacher labels)."""
    if config.teacher is None or config.teacher.weights is None or config.teacher.preset is None:
        return None
    from stagepose.models.checkpoint import load_model

    teacher, _ = load_model(config.teacher.weights, config.teacher.preset)
    return teacher


def set_epoch(dataset: Dataset[Any], epoch: int) -> None:
    """Select the augmentation draws of ``epoch`` in a data set or a concatenation of them."""
    children = dataset.datasets if isinstance(dataset, ConcatDataset) else [dataset]
    for child in children:
        if hasattr(child, "set_epoch"):
            child.set_epoch(epoch)


def build_datasets(
    config: ExperimentConfig, codec: HeatmapCodec, teacher_labels: TeacherLabels | None = None
) -> tuple[Dataset[Any], Dataset[Any] | None]:
    """Training set (specs concatenated) and validation set (or None).

    With ``teacher_labels`` every training sample carries the teacher's heatmaps (``teacher_heatmaps``).

    Raises:
        ConfigError: only unlabelled data and no teacher, an unlabelled validation set, or teacher labels
            that teach none of the data (see ``label_teacher.check_coverage``).
        DataError: from the loaders (bad specs or files).
    """
    from stagepose.data import build_dataset

    data = config.data
    parts = [build_dataset(spec, split="train", input_size=data.size, augment=data.augment, codec=codec,
                           seed=config.train.seed, teacher_labels=teacher_labels)
             for spec in data.train_specs]  # fmt: skip
    unlabelled = [p.name for p in parts if not p.labelled]
    if unlabelled and config.teacher is None:
        raise ConfigError(f"data.train: {', '.join(unlabelled)} has no labels; unlabelled frames need a teacher "
                          "(set teacher.preset and teacher.weights, or teacher.labels) or remove them")  # fmt: skip
    if teacher_labels is not None:
        check_coverage(parts, teacher_labels)
    train_set: Dataset[Any] = parts[0] if len(parts) == 1 else ConcatDataset(parts)
    val_set = None
    if data.val:
        val_set = build_dataset(data.val, split="val", input_size=data.size, codec=codec, seed=config.train.seed)
        if not val_set.labelled:
            raise ConfigError(f"data.val {data.val!r} has no labels; validation needs labelled data")
    return train_set, val_set


# ------------------------------------------------------------------------------------------ state


@dataclass
class RunState:
    """Counters that a checkpoint restores."""

    step: int = 0
    epoch: int = 0
    epoch_step: int = 0
    best_metric: float | None = None
    metric_name: str | None = None


@dataclass
class Meter:
    """Means of the logged values since the last CSV row, and the throughput."""

    sums: dict[str, float] = field(default_factory=dict)
    count: int = 0
    images: int = 0
    start: float = field(default_factory=time.perf_counter)

    def add(self, values: Mapping[str, float], images: int) -> None:
        for key, value in values.items():
            self.sums[key] = self.sums.get(key, 0.0) + value
        self.count += 1
        self.images += images

    def means(self) -> dict[str, float]:
        return {k: v / max(self.count, 1) for k, v in self.sums.items()}

    def img_s(self) -> float:
        return self.images / max(time.perf_counter() - self.start, 1e-9)

    def reset(self) -> None:
        self.sums, self.count, self.images, self.start = {}, 0, 0, time.perf_counter()


@dataclass(frozen=True)
class TrainResult:
    """What a finished run left behind."""

    out_dir: Path
    steps: int
    epochs: int
    best_metric: float | None
    metric_name: str | None
    last_checkpoint: Path
    best_checkpoint: Path | None
    best_weights: Path | None
    img_s: float
    rank: int = 0
    planned_steps: int | None = None  # I of eq. 8 and the learning-rate schedule
    budget: BudgetReport | None = None  # with train.time_budget_s: the plan and the time used


@dataclass
class Run:
    """Everything one training process holds (built by ``_setup``)."""

    config: ExperimentConfig
    env: DistEnv
    device: torch.device
    student: nn.Module
    task: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    amp: bool
    loader: DataLoader[Any]
    sampler: EpochSampler
    train_set: Dataset[Any]
    val_loader: DataLoader[Any] | None
    codec: HeatmapCodec
    steps_per_epoch: int
    total_steps: int
    num_epochs: int
    state: RunState
    log: CsvLog | None
    throughput: list[float] = field(default_factory=list)
    budget: TimeBudget | None = None

    @property
    def out_dir(self) -> Path:
        return self.config.out_dir

    def payload(self) -> dict[str, Any]:
        """The checkpoint dict of the current state (see ``checkpoints``)."""
        return {
            "model": unwrap(self.student).state_dict(),
            "preset": self.config.model.preset,
            "input_size": self.config.data.size.text(),
            "heatmap_sigma": float(self.config.data.heatmap_sigma),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.amp else None,
            "step": self.state.step,
            "epoch": self.state.epoch,
            "epoch_step": self.state.epoch_step,
            "world_size": self.env.world_size,  # processes: a step holds data.batch_size x world_size images
            "best_metric": self.state.best_metric,
            "metric": self.state.metric_name,
            "config": config_to_data(replace(self.config, train=replace(self.config.train, resume=None))),
        }


# ------------------------------------------------------------------------------------------ setup


def _check_out_dir(config: ExperimentConfig, resume: Path | None, overwrite: bool) -> None:
    last = config.out_dir / "last.pt"
    if resume is None and last.exists() and not overwrite:
        raise ConfigError(f"{config.out_dir} already holds a run ({last}); continue it with --resume {last}, "
                          "or start afresh with --overwrite or another train.out_dir")  # fmt: skip


def _setup(config: ExperimentConfig, env: DistEnv, device: torch.device, resume: Path | None, overwrite: bool,
           budget: TimeBudget | None = None) -> Run:  # fmt: skip
    _check_out_dir(config, resume, overwrite)
    payload = load_checkpoint(resume) if resume is not None else None
    torch.manual_seed(config.train.seed)  # same initial weights on every rank (DDP also broadcasts them)
    student = build_student(config).to(device)  # weights first: a wrong file fails before data is read
    teacher = build_teacher(config)
    teacher_labels = load_teacher_labels(config)  # the file is checked before the data are read
    if config.train.channels_last:  # NHWC: faster on CPU and on tensor cores; the batches follow in _train_step
        student = student.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        if teacher is not None:
            teacher = teacher.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    codec = HeatmapCodec.for_input(config.data.size, sigma=config.data.heatmap_sigma)
    train_set, val_set = build_datasets(config, codec, teacher_labels)

    sampler = EpochSampler(train_set, env=env, seed=config.train.seed)
    batch = config.data.batch_size
    drop_last = sampler.num_samples >= batch  # keep a tiny set's only (partial) batch
    loader = DataLoader(train_set, batch_size=batch, sampler=sampler, num_workers=config.data.workers,
                        pin_memory=device.type == "cuda", drop_last=drop_last)  # fmt: skip
    steps_per_epoch = sampler.num_samples // batch if drop_last else 1
    total_steps = config.train.max_steps or config.train.epochs * steps_per_epoch
    num_epochs = math.ceil(total_steps / steps_per_epoch)
    val_loader = make_loader(val_set, config.data.val_batch_size, config.data.workers, device) if val_set else None

    wrapped: nn.Module = student
    if env.distributed:
        device_ids = [device.index] if device.type == "cuda" else None
        wrapped = nn.parallel.DistributedDataParallel(student, device_ids=device_ids)
    task: nn.Module
    if teacher is not None or teacher_labels is not None:  # labels: the batches carry the teacher's heatmaps
        task = DistillTask(wrapped, teacher.to(device) if teacher is not None else None, total_steps=total_steps,
                           sigma=config.distill.sigma, start_kd_weight=config.distill.start_kd_weight)  # fmt: skip
    else:
        task = SupervisedTask(wrapped)
    optimizer = build_optimizer(student.parameters(), config.optim)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, partial(lr_factor, total_steps=total_steps, schedule=config.schedule))
    amp = bool(config.train.amp and device.type == "cuda")
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    state = RunState()
    if payload is not None:
        state = _restore(payload, resume, student, optimizer, scheduler, scaler, amp)  # type: ignore[arg-type]
        before = int(payload.get("world_size", 1))
        if before != env.world_size and env.is_main:
            logger.warning("%s was written by %d process(es) and this run has %d: a step now holds %d images "
                           "instead of %d (set data.batch_size to keep it)", resume, before, env.world_size,
                           batch * env.world_size, batch * before)  # fmt: skip
    log = None
    if env.is_main:
        config.out_dir.mkdir(parents=True, exist_ok=True)
        resolved = yaml.safe_dump(config_to_data(config), sort_keys=False)
        atomic_write_text(config.out_dir / "config.yaml", resolved)
        log_path = config.out_dir / "log.csv"
        if payload is None:  # --overwrite: nothing of the previous run may pass for this one's
            for name in ("log.csv", "last.pt", "best.pt", "best.safetensors", "curves.png"):
                (config.out_dir / name).unlink(missing_ok=True)
        log = CsvLog(log_path, keep_until_step=state.step if payload is not None else None)
    return Run(config=config, env=env, device=device, student=student, task=task, optimizer=optimizer,
               scheduler=scheduler, scaler=scaler, amp=amp, loader=loader, sampler=sampler, train_set=train_set,
               val_loader=val_loader, codec=codec, steps_per_epoch=steps_per_epoch, total_steps=total_steps,
               num_epochs=num_epochs, state=state, log=log, budget=budget)  # fmt: skip


def _restore(
    payload: dict[str, Any],
    source: Path,
    student: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LambdaLR,
    scaler: torch.amp.GradScaler,
    amp: bool,
) -> RunState:
    load_student_weights(student, payload["model"], source)
    try:
        optimizer.load_state_dict(payload["optimizer"])
        scheduler.load_state_dict(payload["scheduler"])
    except (ValueError, KeyError, RuntimeError) as exc:
        raise ConfigError(
            f"{source}: optimiser state does not fit this config (was optim.name changed?): {exc}") from None
    if amp and payload.get("scaler"):
        scaler.load_state_dict(payload["scaler"])
    state = RunState(step=int(payload["step"]), epoch=int(payload["epoch"]),
                     epoch_step=int(payload.get("epoch_step", 0)), best_metric=payload.get("best_metric"),
                     metric_name=payload.get("metric"))  # fmt: skip
    logger.info("resumed from %s at step %d (epoch %d, +%d batches)", source, state.step, state.epoch, state.epoch_step)
    return state


# ------------------------------------------------------------------------------------------ steps


def _train_step(run: Run, batch: Mapping[str, Any]) -> dict[str, float]:
    device = run.device
    inputs = {k: batch[k].to(device, non_blocking=True) for k in TASK_KEYS if k in batch}
    if run.config.train.channels_last:
        inputs["image"] = inputs["image"].contiguous(memory_format=torch.channels_last)
    autocast = torch.autocast("cuda", dtype=torch.float16, enabled=run.amp) if device.type == "cuda" else None
    if autocast is not None:
        with autocast:
            out = run.task(inputs, run.state.step)
    else:
        out = run.task(inputs, run.state.step)
    loss = out["loss"]
    value = float(loss.detach())
    if not math.isfinite(value):
        raise StageposeError(
            f"training diverged: loss is {value} at step {run.state.step}; lower optim.lr, set optim.grad_clip "
            f"or train.amp=false, and resume from {run.out_dir / 'last.pt'}"
        )
    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    if run.config.optim.grad_clip is not None:
        run.scaler.unscale_(run.optimizer)
        nn.utils.clip_grad_norm_(run.student.parameters(), run.config.optim.grad_clip)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.scheduler.step()
    run.state.step += 1
    run.state.epoch_step += 1
    return {"loss": value, "task_loss": float(out["task_loss"]), "kd_loss": float(out["kd_loss"]),
            "w_kd": float(out["w_kd"]), "w_gt": float(out["w_gt"])}  # fmt: skip


def _log_row(run: Run, meter: Meter) -> None:
    img_s = meter.img_s() * run.env.world_size
    run.throughput.append(img_s)
    if run.log is not None:
        run.log.append({"step": run.state.step, "epoch": run.state.epoch, **meter.means(),
                        "lr": run.optimizer.param_groups[0]["lr"], "img_s": img_s})  # fmt: skip
    meter.reset()


def validate(run: Run) -> float | None:
    """Rank 0: the validation metric's mean (percent), or None without validation data."""
    if run.val_loader is None:
        return None
    pred = predict(unwrap(run.student), run.val_loader, run.codec, run.device, flip=run.config.train.flip_test,
                   amp=run.amp, desc="validate")  # fmt: skip
    result = score(pred)
    run.state.metric_name = result.name
    value = result.groups.get("mean", float("nan"))
    logger.info("step %d epoch %d: validation %s mean %.2f%%", run.state.step, run.state.epoch, result.name, value)
    return value if math.isfinite(value) else None


def _save(run: Run, *, best: bool) -> None:
    if not run.env.is_main:
        return
    payload = run.payload()
    save_checkpoint(run.out_dir / "last.pt", payload)
    if best:
        save_checkpoint(run.out_dir / "best.pt", payload)
        extra = {"step": str(run.state.step)}
        if run.state.best_metric is not None:
            extra[str(run.state.metric_name or "metric")] = f"{run.state.best_metric:.3f}"
        save_best_weights(run.out_dir / "best.safetensors", run.student, run.config.model.preset,
                          run.config.data.size, extra, heatmap_sigma=run.config.data.heatmap_sigma)  # fmt: skip


def _end_of_epoch(run: Run, epoch: int) -> None:
    """Validate, log, save and plot after an epoch (or after the last step, when that ends mid-epoch)."""
    if run.state.epoch_step >= run.steps_per_epoch:
        run.state.epoch, run.state.epoch_step = epoch + 1, 0
    # else max_steps stopped mid-epoch: keep (epoch, epoch_step) so a resume finishes this epoch
    last = run.state.step >= run.total_steps
    improved = False
    if run.env.is_main:
        metric = None
        if run.val_loader is not None and ((epoch + 1) % run.config.train.val_every == 0 or last):
            metric = validate(run)
            if run.log is not None:
                run.log.append({"step": run.state.step, "epoch": run.state.epoch, "val_metric": metric})
        if run.val_loader is None:
            improved = True  # without validation, "best" is the latest
        elif metric is not None and (run.state.best_metric is None or metric > run.state.best_metric):
            run.state.best_metric, improved = metric, True
        _save(run, best=improved)
        plot_curves(run.out_dir / "log.csv", run.out_dir / "curves.png", title=run.config.name,
                    metric_name=run.state.metric_name or "metric")  # fmt: skip
    barrier(run.env)


def _run_epochs(run: Run, progress: bool) -> None:
    from tqdm import tqdm

    cfg = run.config.train
    images_per_step = run.config.data.batch_size * run.env.world_size
    bar = tqdm(total=run.total_steps, initial=run.state.step, disable=not (progress and run.env.is_main),
               unit="step", desc=run.config.name, dynamic_ncols=True)  # fmt: skip
    meter = Meter()
    run.task.train()
    with StopSignals() as stop:  # SIGINT/SIGTERM: finish the step, save, stop
        try:
            for epoch in range(run.state.epoch, run.num_epochs):
                if run.state.step >= run.total_steps:
                    break
                run.sampler.set_epoch(epoch)
                set_epoch(run.train_set, epoch)
                skip = run.state.epoch_step * run.config.data.batch_size if epoch == run.state.epoch else 0
                run.sampler.set_skip(skip)
                run.state.epoch = epoch
                meter.reset()  # the throughput of an epoch excludes the previous validation
                for batch in run.loader:
                    values = _train_step(run, batch)
                    meter.add(values, images_per_step // run.env.world_size)
                    bar.update(1)
                    img_s = meter.img_s() * run.env.world_size
                    bar.set_postfix(epoch=epoch, loss=f"{values['loss']:.3g}", img_s=f"{img_s:.1f}")
                    if run.state.step % cfg.log_every == 0:
                        _log_row(run, meter)
                    if cfg.checkpoint_every and run.state.step % cfg.checkpoint_every == 0:
                        _save(run, best=False)
                    if run.budget is not None:
                        _check_budget(run, run.budget, bar, epoch_done=False)
                    if any_rank(run.env, stop.requested is not None, run.device):
                        _stop(run, stop.requested or "a signal to another process")
                    if run.state.step >= run.total_steps:
                        break
                if meter.count:
                    _log_row(run, meter)
                _end_of_epoch(run, epoch)
                if run.budget is not None:
                    _check_budget(run, run.budget, bar, epoch_done=True)
                run.task.train()
        except KeyboardInterrupt:
            _save(run, best=False)  # keep what was learnt; `--resume last.pt` continues from here
            raise
        finally:
            bar.close()


def _stop(run: Run, signal_name: str) -> None:
    """Save ``last.pt`` after the step a signal interrupted, and end the run saying how to continue."""
    _save(run, best=False)  # rank 0 writes; every rank stops at this same step (``any_rank``)
    raise TrainingStopped(f"{signal_name} received: stopped at step {run.state.step} of {run.total_steps} and saved "
                          f"{run.out_dir / 'last.pt'}; continue with `stagepose train --resume "
                          f"{run.out_dir / 'last.pt'}` (or `stagepose campaign resume`)")  # fmt: skip


def _check_budget(run: Run, budget: TimeBudget, bar: Any, *, epoch_done: bool) -> None:
    """With ``train.time_budget_s``: fix the planned step count once the speed is known, and end the run
    at the deadline (see ``stagepose.train.budget``)."""
    budget.note_step(run.state.step)
    if budget.ready_to_plan(epoch_done=epoch_done):
        _apply_plan(run, budget.plan(run.state.step, cap=run.total_steps), bar)
    if run.state.step < run.total_steps and budget.expired():
        budget.stopped_at_deadline = True
        run.total_steps = run.state.step  # ends the run here: validated and saved as at a planned end
        logger.warning("%s: time budget of %.0f s reached at step %d of %s planned; stopping", run.config.name,
                       budget.seconds, run.state.step, run.config.train.max_steps or "?")  # fmt: skip


def _apply_plan(run: Run, planned: int, bar: Any) -> None:
    """Make ``planned`` the run's I: the loop's end, the learning-rate schedule, eq. 8, and the stored config
    (``train.max_steps``, so that a resume continues the same plan)."""
    run.total_steps = planned
    run.num_epochs = math.ceil(planned / run.steps_per_epoch)
    run.scheduler.lr_lambdas = [partial(lr_factor, total_steps=planned, schedule=run.config.schedule)
                                for _ in run.scheduler.lr_lambdas]  # fmt: skip
    if isinstance(run.task, DistillTask):
        run.task.total_steps = planned
    run.config = replace(run.config, train=replace(run.config.train, max_steps=planned))
    if run.env.is_main:
        atomic_write_text(run.out_dir / "config.yaml", yaml.safe_dump(config_to_data(run.config), sort_keys=False))
    bar.total = planned
    bar.refresh()
    budget = run.budget
    if budget is not None:
        logger.info("%s: %.2f steps/s measured; planned %d steps (train.max_steps) for the %.0f s budget, "
                    "%.0f s used so far", run.config.name, budget.rate_steps_s or 0.0, planned, budget.seconds,
                    budget.elapsed())  # fmt: skip


# ------------------------------------------------------------------------------------------ entry


def train(
    config: ExperimentConfig,
    *,
    resume: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
    environ: Mapping[str, str] | None = None,
) -> TrainResult:
    """Run one experiment (see the module docstring).

    Args:
        config: the experiment.
        resume: a ``last.pt`` to continue from (default: ``config.train.resume``).
        overwrite: allow starting afresh in an ``out_dir`` that already holds a run.
        progress: show a progress bar (rank 0).
        environ: environment to read the torchrun variables from (default ``os.environ``).

    Raises:
        ConfigError, DataError, ModelError: bad config, data or weights (before training starts).
        StageposeError: the loss diverged (the message says how to resume).
    """
    env = read_env(environ)
    device = resolve_device(config.train.device, env)
    resume_path = Path(resume) if resume is not None else config.train.resume
    budget = None
    if config.train.time_budget_s is not None:
        if env.distributed:
            raise ConfigError("train.time_budget_s needs a single process (ranks would plan and stop at different "
                              "steps); under torchrun set train.max_steps instead")  # fmt: skip
        budget = TimeBudget(config.train.time_budget_s, needs_plan=config.train.max_steps is None)
    init_process_group(env, device)
    try:
        run = _setup(config, env, device, resume_path, overwrite, budget)
        if env.is_main:
            teacher_name = (config.teacher.preset or config.teacher.labels) if config.teacher else None
            logger.info("%s: %s%s on %s x%d, %d steps (%d epochs of %d), output %s", config.name,
                        config.model.preset, f" taught by {teacher_name}" if teacher_name else "",
                        device, env.world_size, run.total_steps, run.num_epochs, run.steps_per_epoch,
                        config.out_dir)  # fmt: skip
        _run_epochs(run, progress)
    finally:
        destroy_process_group(env)
    out = config.out_dir
    has_best = (out / "best.pt").exists()
    return TrainResult(
        out_dir=out, steps=run.state.step, epochs=run.state.epoch, best_metric=run.state.best_metric,
        metric_name=run.state.metric_name, last_checkpoint=out / "last.pt",
        best_checkpoint=out / "best.pt" if has_best else None,
        best_weights=out / "best.safetensors" if has_best else None,
        img_s=sum(run.throughput) / len(run.throughput) if run.throughput else 0.0, rank=env.rank,
        planned_steps=run.config.train.max_steps or run.total_steps,
        budget=budget.report(run.config.train.max_steps) if budget is not None else None,
    )  # fmt: skip


def resolve_experiment(
    config_path: str | Path | None, overrides: list[str] | tuple[str, ...] = (), resume: str | Path | None = None
) -> ExperimentConfig:
    """The config for ``stagepose train``: the YAML file, or (with only ``--resume``) the checkpoint's own.

    Raises:
        ConfigError: neither given, or an invalid config.
    """
    if config_path is not None:
        return load_experiment(config_path, list(overrides))
    if resume is None:
        raise ConfigError("give --config training/NAME.yaml, or --resume runs/NAME/last.pt to continue a run")
    payload = load_checkpoint(resume)
    return experiment_from_data(payload["config"], f"{resume} (stored config)", list(overrides))


def run_training(
    config_path: str | Path | None,
    overrides: list[str] | tuple[str, ...] = (),
    *,
    resume: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> TrainResult:
    """``stagepose train``: resolve the config (file or checkpoint, plus overrides) and train."""
    config = resolve_experiment(config_path, overrides, resume)
    return train(config, resume=resume, overwrite=overwrite, progress=progress)
