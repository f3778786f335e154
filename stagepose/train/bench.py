"""Training throughput of a preset: images per second of forward + backward + optimiser step.

Measures the model's share of a training step on random inputs of the training shape (data loading is
left out: it depends on the disk and the worker count; ``stagepose data check --benchmark`` measures
that). With a teacher, its no-grad forward pass is included, as in distillation. CUDA is synchronised
before the clock is read.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from stagepose.errors import ConfigError
from stagepose.sizes import ImageSize
from stagepose.train.config import OptimConfig
from stagepose.train.distill import DistillTask, SupervisedTask
from stagepose.train.distributed import resolve_device


@dataclass(frozen=True)
class TrainBench:
    """Result of ``benchmark_training``."""

    preset: str
    teacher: str | None
    device: str
    input_size: tuple[int, int]
    batch_size: int
    steps: int
    amp: bool
    img_s: float
    step_ms: float

    def line(self) -> str:
        teacher = f" (teacher {self.teacher})" if self.teacher else ""
        return (f"{self.preset}{teacher}: {self.img_s:.1f} images/s, {self.step_ms:.0f} ms/step "
                f"(batch {self.batch_size}, {self.input_size[0]}x{self.input_size[1]}, {self.device}"
                f"{', amp' if self.amp else ''}, {self.steps} steps)")  # fmt: skip


def benchmark_training(
    preset: str,
    *,
    teacher: str | None = None,
    input_size: tuple[int, int] = (256, 256),
    batch_size: int = 6,
    steps: int = 20,
    warmup: int = 3,
    device: str = "auto",
    amp: bool = True,
    threads: int | None = None,
) -> TrainBench:
    """Time ``steps`` training steps (after ``warmup``) of ``preset`` with RMSprop.

    Args:
        preset: the network trained.
        teacher: a teacher preset whose forward pass is added (random weights; the cost is the same).
        input_size: (w, h), multiples of 64.
        batch_size: images per step.
        steps, warmup: timed and untimed steps.
        device: "auto", "cpu" or "cuda".
        amp: float16 autocast on CUDA.
        threads: torch CPU threads (None: torch's default).
    """
    from stagepose.models import build_model
    from stagepose.train.loop import build_optimizer

    if steps < 1 or warmup < 0 or batch_size < 1:
        raise ConfigError(f"steps ({steps}) and batch size ({batch_size}) must be >= 1, warmup ({warmup}) >= 0")
    if threads:
        torch.set_num_threads(threads)
    dev = resolve_device(device)
    use_amp = amp and dev.type == "cuda"
    torch.manual_seed(0)
    student = build_model(preset).to(dev)
    task: torch.nn.Module
    if teacher:
        task = DistillTask(student, build_model(teacher).to(dev), total_steps=steps + warmup)
    else:
        task = SupervisedTask(student)
    task.train()
    optimizer = build_optimizer(student.parameters(), OptimConfig())
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    size = ImageSize.of(input_size)
    batch = {
        "image": torch.randn(batch_size, 3, *size.hw, device=dev),
        "heatmaps": torch.rand(batch_size, 16, *size.heatmap().hw, device=dev),
        "target_weight": torch.ones(batch_size, 16, device=dev),
        "labelled": torch.ones(batch_size, dtype=torch.bool, device=dev),
    }

    def step(i: int) -> None:
        with torch.autocast(dev.type, dtype=torch.float16, enabled=use_amp):
            loss = task(batch, i)["loss"]
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    for i in range(warmup):
        step(i)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    start = time.perf_counter()
    for i in range(steps):
        step(warmup + i)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    seconds = time.perf_counter() - start
    return TrainBench(
        preset=preset, teacher=teacher, device=str(dev), input_size=size, batch_size=batch_size, steps=steps,
        amp=use_amp, img_s=steps * batch_size / seconds, step_ms=1000 * seconds / steps,
    )  # fmt: skip
