"""Experiment configuration: one YAML file (``training/*.yaml``) into frozen dataclasses.

Loaded with ``stagepose.config`` (safe_load, unknown keys and wrong types rejected with ``FILE:LINE``);
``key=value`` overrides from the command line are applied before checking, e.g.
``stagepose train --config training/lshm2_lspet_128.yaml train.epochs=2 data.batch_size=8``. The
resolved config (file + overrides + defaults) is written as ``config.yaml`` next to the checkpoints and
stored inside every checkpoint, so ``--resume`` needs no config file.

The paper's training settings (sec. 2.2) are the defaults: batch 6, RMSprop, lr 2.6e-4, eq. 8 with
sigma 0.1 starting from 0.6/0.4.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from stagepose.config import Source, apply_overrides, from_dict, load_yaml, to_dict
from stagepose.data.augment import AugmentConfig
from stagepose.errors import ConfigError
from stagepose.sizes import ImageSize

DEFAULT_RUNS_DIR = Path("runs")


def _check_preset(name: str) -> None:
    from stagepose.models import MODELS

    if name not in MODELS:
        raise ValueError(f"unknown model preset {name!r}; known presets: {', '.join(MODELS)}")


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """The network being trained (the student when a teacher is given).

    Attributes:
        preset: a name in ``stagepose.models.MODELS`` (``lshm-2``, ``lshm-4``, ``teacher-hg8`` ...).
        init: weights to start from (``.safetensors`` or a training ``.pt``), e.g. the shipped
            ``engines/lshm2.safetensors`` for a venue fine-tune; loaded strictly, and the file's recorded
            preset must match. None: random initialisation.
    """

    preset: str
    init: Path | None = None

    def __post_init__(self) -> None:
        _check_preset(self.preset)


@dataclass(frozen=True, kw_only=True)
class TeacherConfig:
    """The teacher of eq. 7: a pretrained network (frozen; never saved with the student) or offline labels.

    Give either ``preset`` and ``weights`` or ``labels``. Labels let a model much stronger than anything
    trained here teach without running during training (``stagepose data label`` runs it once); the file
    is read and its coverage of the training data reported when the run starts.

    Attributes:
        preset: the teacher network's preset, e.g. ``teacher-hg8``.
        weights: its trained weights (``.safetensors`` or the ``best.pt`` of its own training run).
        labels: a teacher label file (``stagepose.data.teacher_labels``), keypoints per training entry.
    """

    preset: str | None = None
    weights: Path | None = None
    labels: Path | None = None

    def __post_init__(self) -> None:
        if self.labels is not None:
            if self.preset is not None or self.weights is not None:
                given = " and ".join(f"teacher.{k}" for k in ("preset", "weights") if getattr(self, k) is not None)
                raise ValueError(f"teacher.labels and {given} are both given; a teacher is either a label file "
                                 "(teacher.labels) or a network (teacher.preset + teacher.weights): remove one "
                                 "(on the command line: teacher.labels=null, or teacher.preset=null "
                                 "teacher.weights=null)")  # fmt: skip
            return
        if self.preset is None or self.weights is None:
            missing = " and ".join(f"teacher.{k}" for k in ("preset", "weights") if getattr(self, k) is None)
            raise ValueError(f"{missing} missing: a teacher needs teacher.preset and teacher.weights (a network) "
                             "or teacher.labels (a label file from stagepose data label)")  # fmt: skip
        _check_preset(self.preset)


@dataclass(frozen=True, kw_only=True)
class DataConfig:
    """Data sets (spec strings of ``stagepose.data``) and loading.

    Attributes:
        train: one spec or a list; several are concatenated and shuffled together (e.g. labelled venue
            COCO + unlabelled ``frames:``; unlabelled samples need a teacher).
        val: spec of the validation set (its "val" split), or None for no validation (then ``best`` is
            the latest checkpoint).
        input_size: model input, a square side or [width, height], multiples of 64.
        batch_size: samples per optimiser step per process (the paper: 6).
        val_batch_size: samples per forward pass in validation.
        workers: DataLoader worker processes per training process (0 loads in the main process).
        heatmap_sigma: Gaussian sigma of the targets in heatmap pixels (2 at 64x64 heatmaps).
        augment: training augmentation (``stagepose.data.AugmentConfig`` fields), or null for none.
    """

    train: str | tuple[str, ...]
    val: str | None = None
    input_size: int | tuple[int, int] = 256
    batch_size: int = 6
    val_batch_size: int = 32
    workers: int = 2
    heatmap_sigma: float = 2.0
    augment: AugmentConfig | None = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        specs = (self.train,) if isinstance(self.train, str) else tuple(self.train)
        if not specs or not all(s.strip() for s in specs):
            raise ValueError("data.train needs at least one data set spec, e.g. lspet:data/lspet")
        object.__setattr__(self, "train", specs)
        raw = self.input_size
        size = [raw, raw] if isinstance(raw, int) else [int(v) for v in raw]
        if len(size) != 2 or min(size) < 64 or size[0] % 64 or size[1] % 64:
            raise ValueError(f"data.input_size {self.input_size} must be a side or [width, height] in multiples of 64")
        object.__setattr__(self, "input_size", (size[0], size[1]))
        if self.batch_size < 1 or self.val_batch_size < 1:
            raise ValueError("data.batch_size and data.val_batch_size must be >= 1")
        if self.workers < 0:
            raise ValueError(f"data.workers must be >= 0, got {self.workers}")
        if self.heatmap_sigma <= 0:
            raise ValueError(f"data.heatmap_sigma must be > 0, got {self.heatmap_sigma}")

    @property
    def train_specs(self) -> tuple[str, ...]:
        return self.train if isinstance(self.train, tuple) else (self.train,)

    @property
    def size(self) -> ImageSize:
        """Input (width, height)."""
        size = self.input_size
        return ImageSize.square(size) if isinstance(size, int) else ImageSize.of(size)


@dataclass(frozen=True, kw_only=True)
class OptimConfig:
    """Optimiser.

    Attributes:
        name: "rmsprop" (the paper), "adam" or "adamw".
        lr: peak learning rate (the paper: 2.6e-4).
        weight_decay: L2 (rmsprop, adam) or decoupled (adamw) decay.
        momentum: RMSprop momentum.
        alpha: RMSprop smoothing constant of the squared-gradient average.
        eps: denominator term.
        grad_clip: clip the gradient norm to this value, or null for no clipping.
    """

    name: Literal["rmsprop", "adam", "adamw"] = "rmsprop"
    lr: float = 2.6e-4
    weight_decay: float = 0.0
    momentum: float = 0.0
    alpha: float = 0.99
    eps: float = 1e-8
    grad_clip: float | None = None

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ValueError(f"optim.lr must be > 0, got {self.lr}")
        if self.weight_decay < 0 or self.momentum < 0 or self.eps <= 0 or not 0 < self.alpha < 1:
            raise ValueError("optim: weight_decay and momentum must be >= 0, eps > 0, alpha in (0, 1)")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ValueError(f"optim.grad_clip must be > 0 or null, got {self.grad_clip}")


@dataclass(frozen=True, kw_only=True)
class ScheduleConfig:
    """Learning-rate schedule over optimiser steps: linear warm-up, then constant, step or cosine.

    Attributes:
        kind: "constant" (the paper states only a fixed lr), "step" or "cosine".
        warmup_steps: steps of linear warm-up from lr/100 ... lr.
        milestones: for "step": fractions of the run (0..1) at which the lr is multiplied by ``gamma``
            (HRNet's 170/200 of 210 epochs is [0.81, 0.95]).
        gamma: the factor of each milestone.
        min_lr_ratio: for "cosine": the final lr as a fraction of the peak.
    """

    kind: Literal["constant", "step", "cosine"] = "constant"
    warmup_steps: int = 0
    milestones: tuple[float, ...] = ()
    gamma: float = 0.1
    min_lr_ratio: float = 0.0

    def __post_init__(self) -> None:
        if self.warmup_steps < 0:
            raise ValueError(f"schedule.warmup_steps must be >= 0, got {self.warmup_steps}")
        if any(not 0.0 < m < 1.0 for m in self.milestones) or list(self.milestones) != sorted(self.milestones):
            raise ValueError(f"schedule.milestones {list(self.milestones)} must be increasing fractions in (0, 1)")
        if not 0.0 < self.gamma <= 1.0 or not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError("schedule.gamma must be in (0, 1] and min_lr_ratio in [0, 1]")


@dataclass(frozen=True, kw_only=True)
class DistillConfig:
    """Eq. 8 of the paper: w_kd = start_kd_weight - sigma 2i/I, w_gt = 1 - w_kd (only with a teacher).

    Attributes:
        sigma: decay coefficient (the paper: 0.1), in [0, start_kd_weight / 2].
        start_kd_weight: the teacher's weight at step 0 (the paper: 0.6).
    """

    sigma: float = 0.1
    start_kd_weight: float = 0.6

    def __post_init__(self) -> None:
        if not 0.0 <= self.start_kd_weight <= 1.0:
            raise ValueError(f"distill.start_kd_weight must be in [0, 1], got {self.start_kd_weight}")
        if not 0.0 <= self.sigma <= self.start_kd_weight / 2:
            raise ValueError(f"distill.sigma must be in [0, start_kd_weight / 2], got {self.sigma}")


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """How long, where and how the loop runs.

    Attributes:
        epochs: passes over the training data.
        max_steps: stop after this many optimiser steps instead (also the I of eq. 8); null: epochs.
        seed: seeds model initialisation, shuffling and augmentation.
        device: "auto" (CUDA if present), "cpu" or "cuda"; under torchrun each process takes
            cuda:LOCAL_RANK.
        amp: float16 autocast with loss scaling on CUDA (ignored on CPU).
        channels_last: NHWC memory layout for the networks and batches: on the CPU 1.4x faster training
            of lshm-2 (126 vs 178 ms of CPU per 128x128 image, one thread, measured), on CUDA what
            tensor-core convolutions want with amp.
        time_budget_s: wall-clock budget of the run in seconds (setup included); without ``max_steps``
            the loop plans the step count from its measured speed (see ``stagepose.train.budget``), with
            it the budget only stops the run early. Null: no budget.
        checkpoint_every: also write ``last.pt`` every N steps (0: at the end of each epoch only).
        val_every: validate every N epochs (and after the last).
        log_every: one CSV row per N steps (means over them).
        flip_test: validate with the flip test (slower, usually a little more accurate).
        out_dir: where checkpoints and logs go; null: ``runs/<name>``.
        resume: a ``last.pt`` to continue from (same as ``--resume``).
    """

    epochs: int = 100
    max_steps: int | None = None
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: bool = True
    channels_last: bool = True
    time_budget_s: float | None = None
    checkpoint_every: int = 0
    val_every: int = 1
    log_every: int = 20
    flip_test: bool = False
    out_dir: Path | None = None
    resume: Path | None = None

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"train.epochs must be >= 1, got {self.epochs}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"train.max_steps must be >= 1 or null, got {self.max_steps}")
        if self.checkpoint_every < 0 or self.val_every < 1 or self.log_every < 1:
            raise ValueError("train.checkpoint_every must be >= 0, val_every and log_every >= 1")
        if self.time_budget_s is not None and not self.time_budget_s > 0:
            raise ValueError(f"train.time_budget_s must be > 0 seconds or null, got {self.time_budget_s}")


@dataclass(frozen=True, kw_only=True)
class ExperimentConfig:
    """One training run.

    Attributes:
        name: the run's name (default: the config file's stem); output goes to ``runs/<name>``.
        model: the network to train.
        teacher: a frozen teacher for distillation, or null for plain supervised training.
        data, optim, schedule, distill, train: see their classes.
    """

    name: str = ""
    model: ModelConfig
    teacher: TeacherConfig | None = None
    data: DataConfig
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        from stagepose.models import get_preset

        for role, preset_name in (("model", self.model.preset), ("teacher", self.teacher and self.teacher.preset)):
            if not preset_name:
                continue
            multiple = get_preset(preset_name).min_input_multiple
            w, h = self.data.size
            if w % multiple or h % multiple:
                raise ValueError(f"data.input_size {w}x{h} must be multiples of {multiple} for {role} {preset_name!r}")

    @property
    def out_dir(self) -> Path:
        """The run's folder: ``train.out_dir`` or ``runs/<name>``."""
        return self.train.out_dir if self.train.out_dir is not None else DEFAULT_RUNS_DIR / (self.name or "run")


def load_experiment(path: str | Path, overrides: tuple[str, ...] | list[str] = ()) -> ExperimentConfig:
    """Read an experiment YAML with ``key=value`` overrides; ``name`` defaults to the file's stem.

    Raises:
        ConfigError: missing file, bad YAML, unknown keys, wrong types or values (with file and line).
    """
    data, source = load_yaml(path)
    if overrides:
        data = apply_overrides(data if data is not None else {}, list(overrides))
    config = from_dict(ExperimentConfig, data, source)
    if not config.name:
        config = replace(config, name=Path(path).stem)
    return config


def experiment_from_data(data: Any, source: str, overrides: tuple[str, ...] | list[str] = ()) -> ExperimentConfig:
    """Rebuild a config stored as plain data (in a checkpoint), with ``key=value`` overrides.

    Raises:
        ConfigError: the data is not a valid experiment config.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: holds no experiment config")
    if overrides:
        data = apply_overrides(data, list(overrides))
    return from_dict(ExperimentConfig, data, Source(source))


def config_to_data(config: ExperimentConfig) -> dict[str, Any]:
    """Plain data (str, int, float, bool, None, lists, dicts) for YAML and checkpoints."""
    return to_dict(config)  # type: ignore[no-any-return]
