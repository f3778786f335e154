"""Heatmap losses with intermediate supervision.

Every stack of the hourglass predicts heatmaps and every stack is supervised (Newell et al. 2016): the
loss of a batch is the SUM over stacks of one stack's loss. One stack's loss is the mean squared error
per joint, averaged over joints (the paper's eq. 7 form, with the pixel sum replaced by a pixel mean so
that the value does not grow with the heatmap size) and over samples. Joint weights come from the
sample's ``target_weight`` (HRNet's ``use_target_weight``): an unlabelled joint, or one whose Gaussian lies
outside the heatmap, contributes nothing and is not counted in the joint average.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _as_stacks(pred: Tensor) -> Tensor:
    """(N, K, H, W) -> (N, 1, K, H, W); (N, S, K, H, W) unchanged."""
    if pred.dim() == 4:
        return pred.unsqueeze(1)
    if pred.dim() != 5:
        raise ValueError(f"heatmaps must be (N, K, H, W) or (N, S, K, H, W), got shape {tuple(pred.shape)}")
    return pred


def per_joint_mse(pred: Tensor, target: Tensor) -> Tensor:
    """Mean squared error per joint and stack.

    Args:
        pred: (N, S, K, H, W) or (N, K, H, W) predicted heatmaps.
        target: (N, K, H, W) target heatmaps, the same for every stack.

    Returns:
        (N, S, K) mean over pixels of the squared difference, float32 even under autocast.
    """
    pred = _as_stacks(pred)
    if target.dim() != 4 or pred.shape[0] != target.shape[0] or pred.shape[2:] != target.shape[1:]:
        raise ValueError(f"target {tuple(target.shape)} does not fit predictions {tuple(pred.shape)}")
    diff = pred.float() - target.float().unsqueeze(1)
    return diff.pow(2).mean(dim=(-2, -1))


def per_sample_loss(pred: Tensor, target: Tensor, joint_weight: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Per-sample intermediate-supervision loss: sum over stacks of the weighted mean over joints.

    Args:
        pred: (N, S, K, H, W) heatmaps of all S stacks (or (N, K, H, W) for one).
        target: (N, K, H, W) targets.
        joint_weight: (N, K) weights, 0 for joints that must not be learnt (``target_weight``); None
            weighs every joint 1. The joint average divides by the summed weights (HRNet divides by K),
            so a sample with few labelled joints is not pulled towards a small loss.

    Returns:
        loss (N,) float32, and valid (N,) bool: False for samples whose joint weights are all 0 (their
        loss is 0 and must be left out of averages).
    """
    mse = per_joint_mse(pred, target)  # (N, S, K)
    n, _, k = mse.shape
    if joint_weight is None:
        weight = torch.ones(n, k, device=mse.device)
    else:
        if joint_weight.numel() != n * k:
            raise ValueError(f"joint weights {tuple(joint_weight.shape)} do not fit {n} samples x {k} joints")
        weight = joint_weight.float().reshape(n, k)
    total = weight.sum(dim=1)  # (N,)
    per_stack = (mse * weight.unsqueeze(1)).sum(dim=2) / total.clamp_min(1e-12).unsqueeze(1)  # (N, S)
    return per_stack.sum(dim=1), total > 0


def masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``values`` (N,) where ``mask`` (N,) is true; 0 (attached to the graph) where none is."""
    mask_f = mask.float()
    # no host sync: with no sample selected the numerator is 0 and the denominator is clamped to 1
    return (values * mask_f).sum() / mask_f.sum().clamp_min(1.0)


def heatmap_loss(
    pred: Tensor,
    target: Tensor,
    joint_weight: Tensor | None = None,
    sample_weight: Tensor | None = None,
) -> Tensor:
    """Intermediate-supervision heatmap MSE averaged over the samples that carry any weight.

    Args:
        pred: (N, S, K, H, W) heatmaps of all S stacks (or (N, K, H, W) for one).
        target: (N, K, H, W) targets.
        joint_weight: (N, K) joint weights (see ``per_sample_loss``); None weighs all joints 1.
        sample_weight: (N,) 0/1 mask of samples to include (e.g. ``labelled``); None includes all.

    Returns:
        Scalar float32: sum over stacks, mean over weighted joints and included samples.
    """
    loss, valid = per_sample_loss(pred, target, joint_weight)
    if sample_weight is not None:
        valid = valid & (sample_weight.reshape(-1) > 0)
    return masked_mean(loss, valid)
