"""Training tasks: supervised heatmap regression and the paper's knowledge distillation (sec. 1.5).

A task wraps the network(s) and turns a batch into losses; the loop only calls ``task(batch, step)``,
``backward`` and the optimiser. Both tasks return the same keys, so the loop and its log do not care
which one runs: ``loss`` (to minimise), ``heatmaps`` (N, S, K, h, w) of the student, ``task_loss``
(ground truth), ``kd_loss`` (teacher), ``w_kd`` and ``w_gt`` (the eq. 8 weights of this step).

Distillation, as the paper defines it:

- eq. 7: ``L_ts = 1/K sum_k ||m_k^s - m_k^t||^2``, the MSE between the student's and the pretrained
  teacher's heatmaps, averaged over joints. Here every student stack is compared with the teacher's
  FINAL stack (its best prediction) and the stacks are summed, as for the ground truth.
- eq. 8: ``L = (0.6 - sigma 2i/I) L_ts + (0.4 + sigma 2i/I) L_mse`` with sigma = 0.1: early on the
  student leans on the teacher, later on the labels (0.6/0.4 -> 0.4/0.6). The weights are an explicit
  function of (step, total_steps, sigma) (``kd_weights``), never read from global state, so a resumed
  or re-run training gets the same schedule.
- Unlabelled samples (venue frames, ``labelled`` False) have no ground truth; only the teacher teaches
  there, with weight 1 (eq. 8 mixes two signals, and these samples have one).

The teacher is a network, or offline labels (``teacher=None``): keypoints a stronger model predicted once
(``stagepose data label``), rendered by the data set as ``teacher_heatmaps`` in each sample's own
augmented crop, with a per-joint ``teacher_weight`` (its confidence). Eq. 7 is then the same MSE, averaged
over joints with those weights; a sample without labels (weights all 0) gets no teacher term: eq. 8's
ground-truth term alone where it has ground truth, nothing where it has none.

The teacher is frozen: no gradients, eval mode (BatchNorm uses its running statistics and never updates
them), run under ``no_grad``. Its mode is re-asserted on every ``.train()`` call of the task:
setting it once in ``__init__`` would be undone by the first ``task.train()``. Only the student is saved.
Teacher and student see the same input crop; presets all have stride 4, so their heatmaps have the same
size. Should a teacher's heatmaps differ in size, they are resized bilinearly to the student's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from stagepose.train.losses import masked_mean, per_sample_loss

PAPER_SIGMA = 0.1
PAPER_START_KD_WEIGHT = 0.6

TaskOutput = dict[str, Any]


def kd_weights(
    step: int, total_steps: int, sigma: float = PAPER_SIGMA, start_kd_weight: float = PAPER_START_KD_WEIGHT
) -> tuple[float, float]:
    """The eq. 8 weights ``(w_kd, w_gt)`` of iteration ``step`` out of ``total_steps``.

    ``w_kd = start - sigma * 2 i / I`` and ``w_gt = (1 - start) + sigma * 2 i / I``; with the paper's
    start 0.6 and sigma 0.1: 0.6/0.4 at i = 0, 0.5/0.5 at I/2, 0.4/0.6 at I. ``step`` is clamped to
    [0, total_steps] (a run extended past its plan keeps the final weights).

    Raises:
        ValueError: total_steps < 1, or weights that would turn negative.
    """
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    if not 0.0 <= start_kd_weight <= 1.0:
        raise ValueError(f"start_kd_weight must be in [0, 1], got {start_kd_weight}")
    if sigma < 0 or start_kd_weight - 2.0 * sigma < 0:
        raise ValueError(f"sigma {sigma} must be in [0, start_kd_weight / 2 = {start_kd_weight / 2:g}]")
    progress = min(max(step, 0), total_steps) / total_steps
    shift = sigma * 2.0 * progress
    return start_kd_weight - shift, (1.0 - start_kd_weight) + shift


def _labelled_mask(batch: Mapping[str, Any], n: int, device: torch.device) -> Tensor:
    labelled = batch.get("labelled")
    if labelled is None:
        return torch.ones(n, dtype=torch.bool, device=device)
    return torch.as_tensor(labelled, device=device).reshape(n).bool()


class SupervisedTask(nn.Module):
    """Ground-truth heatmap MSE with intermediate supervision (no teacher).

    Args:
        model: the network (possibly wrapped in DistributedDataParallel).
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: Mapping[str, Any], step: int) -> TaskOutput:
        """Losses of one batch (``step`` is unused; kept so every task has the same call)."""
        images = batch["image"]
        heatmaps = self.model(images)
        gt, valid = per_sample_loss(heatmaps, batch["heatmaps"], batch["target_weight"])
        valid = valid & _labelled_mask(batch, images.shape[0], gt.device)
        task_loss = masked_mean(gt, valid)
        zero = task_loss.detach() * 0.0
        return {"loss": task_loss, "heatmaps": heatmaps, "task_loss": task_loss.detach(), "kd_loss": zero,
                "w_kd": 0.0, "w_gt": 1.0}  # fmt: skip


class DistillTask(nn.Module):
    """Eq. 7/8 distillation of ``student`` from a frozen ``teacher`` network or from offline labels.

    Args:
        student: the network being trained (possibly DDP-wrapped).
        teacher: a pretrained network, frozen here (``requires_grad`` off, eval mode); None: the batches
            carry the teacher's heatmaps (``teacher_heatmaps`` (N, K, h, w), ``teacher_weight`` (N, K)).
        total_steps: I in eq. 8, the planned number of optimiser steps of the whole run.
        sigma: eq. 8 decay coefficient (paper: 0.1).
        start_kd_weight: eq. 8 teacher weight at step 0 (paper: 0.6).
    """

    def __init__(
        self,
        student: nn.Module,
        teacher: nn.Module | None,
        *,
        total_steps: int,
        sigma: float = PAPER_SIGMA,
        start_kd_weight: float = PAPER_START_KD_WEIGHT,
    ) -> None:
        super().__init__()
        kd_weights(0, total_steps, sigma, start_kd_weight)  # validate now, not at the first step
        self.student = student
        self.teacher = teacher
        self.total_steps = int(total_steps)
        self.sigma = float(sigma)
        self.start_kd_weight = float(start_kd_weight)
        if self.teacher is not None:
            self.teacher.requires_grad_(False)
            self.teacher.eval()

    def train(self, mode: bool = True) -> DistillTask:
        """Set the student's mode; the teacher stays in eval mode whatever ``mode`` is."""
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()
        return self

    def weights(self, step: int) -> tuple[float, float]:
        """(w_kd, w_gt) at ``step`` (see ``kd_weights``)."""
        return kd_weights(step, self.total_steps, self.sigma, self.start_kd_weight)

    @torch.no_grad()
    def teacher_heatmaps(self, images: Tensor, size: tuple[int, int]) -> Tensor:
        """The teacher's final-stack heatmaps (N, K, h, w), resized to ``size`` (h, w) if needed."""
        if self.teacher is None:
            raise RuntimeError("this task has no teacher network; its teacher heatmaps come with the batch")
        if self.teacher.training:  # someone called teacher.train() directly: never update its BN stats
            self.teacher.eval()
        out = self.teacher(images)[:, -1]
        if tuple(out.shape[-2:]) != tuple(size):
            out = nn.functional.interpolate(out, size=size, mode="bilinear", align_corners=False)
        return out.detach()

    def forward(self, batch: Mapping[str, Any], step: int) -> TaskOutput:
        """Losses of one batch at optimiser step ``step`` (0-based, the run's global count)."""
        images = batch["image"]
        heatmaps = self.student(images)
        if self.teacher is not None:
            target_t, kd_weight = self.teacher_heatmaps(images, tuple(heatmaps.shape[-2:])), None
        elif "teacher_heatmaps" in batch and "teacher_weight" in batch:
            target_t, kd_weight = batch["teacher_heatmaps"], batch["teacher_weight"]
        else:
            raise ValueError("distillation from labels needs teacher_heatmaps and teacher_weight in the batch "
                             "(a data set built with teacher_labels)")  # fmt: skip
        # (N,); a network teacher has a guess for every joint, labels weigh joints by their confidence
        kd, kd_valid = per_sample_loss(heatmaps, target_t, kd_weight)
        gt, gt_valid = per_sample_loss(heatmaps, batch["heatmaps"], batch["target_weight"])
        labelled = gt_valid & _labelled_mask(batch, images.shape[0], gt.device)
        w_kd, w_gt = self.weights(step)
        labelled_f, taught_f = labelled.float(), kd_valid.float()
        # eq. 8 where there are labels; the teacher alone (weight 1) where there are none; no teacher term
        # where the teacher has no opinion
        per_sample = labelled_f * (w_kd * taught_f * kd + w_gt * gt) + (1.0 - labelled_f) * taught_f * kd
        return {
            "loss": per_sample.mean(),
            "heatmaps": heatmaps,
            "task_loss": masked_mean(gt, labelled).detach(),
            "kd_loss": masked_mean(kd, kd_valid).detach(),
            "w_kd": w_kd,
            "w_gt": w_gt,
        }
