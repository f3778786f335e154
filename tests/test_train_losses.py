"""Losses and distillation: intermediate supervision, joint weights, eq. 8 weights, a frozen teacher."""

from __future__ import annotations

import pytest
import torch

from stagepose.models import build_model
from stagepose.train.distill import DistillTask, SupervisedTask, kd_weights
from stagepose.train.losses import heatmap_loss, per_sample_loss

K, H, W = 16, 8, 8


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_eq8_weights_at_start_middle_and_end() -> None:
    total = 1000
    assert kd_weights(0, total) == pytest.approx((0.6, 0.4))
    assert kd_weights(total // 2, total) == pytest.approx((0.5, 0.5))
    assert kd_weights(total, total) == pytest.approx((0.4, 0.6))
    # a quarter of the way: 0.6 - 0.1 * 2 * 0.25
    assert kd_weights(250, total) == pytest.approx((0.55, 0.45))
    # beyond the plan the final weights hold; the weights always sum to 1
    assert kd_weights(5 * total, total) == pytest.approx((0.4, 0.6))
    for step in range(0, total + 1, 97):
        assert sum(kd_weights(step, total)) == pytest.approx(1.0)
    # other sigma: an explicit argument, not global state
    assert kd_weights(total, total, sigma=0.2) == pytest.approx((0.2, 0.8))


@pytest.mark.parametrize(("total", "sigma", "start"), [(0, 0.1, 0.6), (10, 0.4, 0.6), (10, -0.1, 0.6), (10, 0.1, 1.5)])
def test_eq8_weights_reject_bad_arguments(total: int, sigma: float, start: float) -> None:
    with pytest.raises(ValueError):
        kd_weights(0, total, sigma, start)


def test_loss_sums_over_stacks() -> None:
    target = torch.rand(2, K, H, W)
    exact = target.unsqueeze(1)
    off = (target + 0.5).unsqueeze(1)
    # one stack exact, one off by 0.5 everywhere -> 0.25; both off -> 0.5
    assert heatmap_loss(torch.cat([exact, off], 1), target).item() == pytest.approx(0.25, rel=1e-5)
    assert heatmap_loss(torch.cat([off, off], 1), target).item() == pytest.approx(0.5, rel=1e-5)
    assert heatmap_loss(torch.cat([off, off, off, off], 1), target).item() == pytest.approx(1.0, rel=1e-5)
    # a single (N, K, H, W) prediction is one stack
    assert heatmap_loss(off[:, 0], target).item() == pytest.approx(0.25, rel=1e-5)


def test_joint_weights_exclude_joints_and_average_over_the_rest() -> None:
    target = torch.zeros(1, K, H, W)
    pred = torch.zeros(1, 1, K, H, W)
    pred[0, 0, 3] = 10.0  # joint 3 badly wrong (mse 100)
    pred[0, 0, 5] = 1.0  # joint 5 off by 1 (mse 1)
    weights = torch.ones(1, K)
    assert heatmap_loss(pred, target, weights).item() == pytest.approx(101 / K, rel=1e-5)
    weights[0, 3] = 0.0  # unlabelled: must not count, and the mean is over the 15 others
    assert heatmap_loss(pred, target, weights).item() == pytest.approx(1 / (K - 1), rel=1e-5)
    # a sample without any weighted joint is left out of the batch mean, not averaged in as 0
    pred2 = torch.cat([pred, torch.full_like(pred, 2.0)])
    both = torch.stack([weights[0], torch.zeros(K)])
    assert heatmap_loss(pred2, torch.zeros(2, K, H, W), both).item() == pytest.approx(1 / (K - 1), rel=1e-5)
    loss, valid = per_sample_loss(pred2, torch.zeros(2, K, H, W), both)
    assert valid.tolist() == [True, False] and loss[1].item() == 0.0


def test_sample_weight_masks_unlabelled_samples() -> None:
    target = torch.zeros(2, K, H, W)
    pred = torch.stack([torch.full((1, K, H, W), 1.0), torch.full((1, K, H, W), 3.0)])
    assert heatmap_loss(pred, target).item() == pytest.approx(5.0)
    assert heatmap_loss(pred, target, sample_weight=torch.tensor([True, False])).item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="does not fit"):
        heatmap_loss(pred, torch.zeros(2, K, H + 1, W))


def _tiny(name: str, **kw: object) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(name, channels=32, **kw)


def _batch(n: int = 2, labelled: list[bool] | None = None) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return {
        "image": torch.randn(n, 3, 64, 64, generator=g),
        "heatmaps": torch.rand(n, K, 16, 16, generator=g),
        "target_weight": torch.ones(n, K),
        "labelled": torch.tensor(labelled if labelled is not None else [True] * n),
    }


def test_teacher_stays_frozen_through_a_student_step() -> None:
    student, teacher = _tiny("lshm-2"), _tiny("teacher-hg2")
    task = DistillTask(student, teacher, total_steps=10)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}  # parameters AND BN running stats
    student_before = [p.clone() for p in student.parameters()]
    task.train()  # train() on the task must not put the teacher in training mode
    assert student.training and not teacher.training
    assert not any(m.training for m in teacher.modules())
    assert all(not p.requires_grad for p in teacher.parameters())
    optimizer = torch.optim.RMSprop(student.parameters(), lr=1e-3)
    out = task(_batch(), step=0)
    out["loss"].backward()
    optimizer.step()
    assert all(p.grad is None for p in teacher.parameters())
    for key, value in teacher.state_dict().items():
        assert torch.equal(value, before[key]), f"teacher {key} changed"
    assert any(not torch.equal(p, q) for p, q in zip(student.parameters(), student_before))
    # a direct teacher.train() is undone at the next forward: its BN statistics never move
    teacher.train()
    task(_batch(), step=1)
    assert not teacher.training
    for key, value in teacher.state_dict().items():
        assert torch.equal(value, before[key])
    task.eval()
    assert not student.training and not teacher.training


def test_distill_outputs_and_eq7_against_final_teacher_stack() -> None:
    student, teacher = _tiny("lshm-2"), _tiny("teacher-hg2")
    task = DistillTask(student, teacher, total_steps=100).train()
    batch = _batch()
    out = task(batch, step=50)
    assert set(out) == {"loss", "heatmaps", "task_loss", "kd_loss", "w_kd", "w_gt"}
    assert (out["w_kd"], out["w_gt"]) == pytest.approx((0.5, 0.5))
    assert out["heatmaps"].shape == (2, 2, K, 16, 16)
    with torch.no_grad():
        teacher_final = teacher(batch["image"])[:, -1]
        student_hm = student(batch["image"])
    # L_ts: each student stack against the teacher's final stack, summed over stacks, mean over joints
    expected_kd = sum(((student_hm[:, s] - teacher_final) ** 2).mean() for s in range(2))
    expected_gt = sum(((student_hm[:, s] - batch["heatmaps"]) ** 2).mean() for s in range(2))
    assert out["kd_loss"].item() == pytest.approx(expected_kd.item(), rel=1e-4)
    assert out["task_loss"].item() == pytest.approx(expected_gt.item(), rel=1e-4)
    assert out["loss"].item() == pytest.approx(0.5 * expected_kd.item() + 0.5 * expected_gt.item(), rel=1e-4)
    # step 0: 0.6 / 0.4
    out0 = task(batch, step=0)
    assert out0["loss"].item() == pytest.approx(0.6 * expected_kd.item() + 0.4 * expected_gt.item(), rel=1e-4)


def test_unlabelled_samples_learn_from_the_teacher_only() -> None:
    student, teacher = _tiny("lshm-2"), _tiny("teacher-hg2")
    task = DistillTask(student, teacher, total_steps=10).train()
    batch = _batch(labelled=[False, False])
    batch["target_weight"] = torch.zeros(2, K)
    batch["heatmaps"] = torch.full_like(batch["heatmaps"], 100.0)  # garbage that must be ignored
    out = task(batch, step=0)
    assert out["task_loss"].item() == 0.0
    assert out["loss"].item() == pytest.approx(out["kd_loss"].item(), rel=1e-5)
    out["loss"].backward()
    assert all(p.grad is not None for p in student.parameters())


def test_supervised_task_has_the_same_keys_and_masks_unlabelled() -> None:
    model = _tiny("lshm-2")
    task = SupervisedTask(model).train()
    batch = _batch(labelled=[True, False])
    out = task(batch, step=3)
    assert set(out) == {"loss", "heatmaps", "task_loss", "kd_loss", "w_kd", "w_gt"}
    assert (out["w_kd"], out["w_gt"]) == (0.0, 1.0)
    with torch.no_grad():
        hm = model(batch["image"])[:1]  # whole batch: BatchNorm in training mode uses the batch statistics
    expected = sum(((hm[:, s] - batch["heatmaps"][:1]) ** 2).mean() for s in range(2))
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-4)
