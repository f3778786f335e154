"""Evaluation: flip-test alignment, metric choice by head size, MPII PCKh end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from stagepose.codec import HeatmapCodec
from stagepose.metrics import table2_header
from stagepose.models import build_model
from stagepose.models.checkpoint import save_weights
from stagepose.skeleton import Joint, flip_permutation
from stagepose.train.evaluate import EvalReport, Predictions, evaluate_checkpoint, flip_back, score

MPII = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mpii_fixture"
needs_mpii = pytest.mark.skipif(not (MPII / "test_mpii.json").is_file(), reason="../shared/data/mpii_fixture is absent")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize(("input_size", "heatmap_size"), [(128, 32), (256, 64)])
def test_flip_back_aligns_mirrored_heatmaps_to_sub_pixel(input_size: int, heatmap_size: int) -> None:
    codec = HeatmapCodec((input_size, input_size), (heatmap_size, heatmap_size), sigma=2.0)
    rng = np.random.default_rng(0)
    keypoints = rng.uniform(0.15 * input_size, 0.85 * input_size, size=(16, 2))
    ones = np.ones(16)
    plain, _ = codec.encode(keypoints, ones)
    # the mirrored crop (x' = w - 1 - x, what torch.flip does): joint k sits where its partner was
    mirrored_kp = keypoints[flip_permutation()].copy()
    mirrored_kp[:, 0] = input_size - 1 - mirrored_kp[:, 0]
    mirrored, _ = codec.encode(mirrored_kp, ones)
    back = flip_back(torch.from_numpy(mirrored)[None], input_size).numpy()
    decoded = codec.heatmap_to_input(codec.decode(back)[0])[0]
    assert np.abs(decoded - keypoints).max() < 0.35  # input pixels
    averaged = 0.5 * (plain[None] + back)
    assert np.abs(codec.heatmap_to_input(codec.decode(averaged)[0])[0] - keypoints).max() < 0.35
    # without the sub-pixel shift the mirror costs (w - 1)/s - (W - 1) heatmap px: 3 input px at stride 4
    naive = torch.from_numpy(mirrored)[None].flip(-1)[:, torch.as_tensor(flip_permutation())].numpy()
    naive_error = codec.heatmap_to_input(codec.decode(naive)[0])[0][:, 0] - keypoints[:, 0]
    assert np.median(naive_error) == pytest.approx(-3.0, abs=0.4)


def _predictions(head_size: float) -> Predictions:
    gt = np.zeros((2, 16, 2))
    gt[:, :, 0] = np.arange(16) * 10.0
    gt[:, Joint.r_hip] = [0.0, 100.0]  # torso: l_shoulder (130, 0) -> r_hip (0, 100), 164 px
    pred = gt.copy()
    pred[:, Joint.r_wrist, 0] += 40.0  # right for PCKh with a 100 px head (50), wrong for PCK@0.2 (33)
    return Predictions(coords=pred, confidence=np.ones((2, 16)), joints=gt, visible=np.ones((2, 16)),
                       head_size=np.full(2, head_size), source_ids=["a", "b"])  # fmt: skip


def test_metric_follows_head_sizes() -> None:
    with_heads = score(_predictions(100.0))
    assert with_heads.name == "PCKh@0.5" and with_heads.per_joint[Joint.r_wrist] == 100.0
    without = score(_predictions(float("nan")))
    assert without.name == "PCK@0.2" and without.per_joint[Joint.r_wrist] == 0.0


def test_report_says_how_many_samples_and_joints_were_scored_and_why_not(tmp_path: Path) -> None:
    from stagepose.metrics import NO_TORSO
    from stagepose.train.compare import comparison_table, read_report

    pred = _predictions(float("nan"))
    visible = pred.visible.copy()
    visible[1, Joint.l_shoulder] = 0  # sample "b" has no torso: PCK@0.2 cannot score it
    result = score(Predictions(pred.coords, pred.confidence, pred.joints, visible, pred.head_size, pred.source_ids))
    report = EvalReport(label="lshm-2", checkpoint="w.safetensors", preset="lshm-2", data="lspet:x@0:2",
                        input_size=(128, 128), flip=False, result=result, params_m=2.17, gflops=1.58, samples=2,
                        seconds=1.0)  # fmt: skip
    lines = report.table().splitlines()
    assert lines[2].split() == ["joints", "scored", "2", "2", "2", "2", "2", "2", "2", "14"]  # head ... ankle, mean
    assert lines[3].startswith(f"PCK@0.2 scored 1 of 2 samples read (1 not: {NO_TORSO}); input 128x128")
    assert lines[4].startswith("limb-joint mean (12 joints, shoulders to ankles, 12 scored): ")
    data = report.to_json()
    assert (data["samples"], data["samples_read"], data["samples_scored"], data["samples_not_scored"]) == (2, 2, 1, 1)
    assert data["skip_reason"] == NO_TORSO and data["group_counts"]["mean"] == 14 and data["heatmap_sigma"] == 2.0
    # eval-compare reads it back, keeps comparing on the samples read, and says how many were scored
    paths = []
    for label in ("a", "b"):
        paths.append(tmp_path / f"{label}.json")
        paths[-1].write_text(json.dumps({**data, "label": label}))
    saved = [read_report(p) for p in paths]
    assert saved[0].samples == 2 and saved[0].samples_scored == 1
    assert comparison_table(saved).splitlines()[-1].startswith("PCK@0.2 on lspet:x@0:2, 2 samples (1 scored);")


@needs_mpii
def test_evaluate_mpii_with_head_boxes_reports_pckh(tmp_path: Path) -> None:
    items = json.loads((MPII / "test_mpii.json").read_text())
    for item in items:  # head box around head top and upper neck, as convert-mpii writes it
        top, neck = np.array(item["joints"][Joint.head_top]), np.array(item["joints"][Joint.upper_neck])
        half = 0.5 * np.linalg.norm(top - neck)
        centre = 0.5 * (top + neck)
        item["headbox"] = [*(centre - half).tolist(), *(centre + half).tolist()]
    annotations = tmp_path / "valid.json"
    annotations.write_text(json.dumps(items))
    torch.manual_seed(0)
    weights = save_weights(tmp_path / "w.safetensors", build_model("lshm-2"), "lshm-2", {"input_size": "64x64"})
    out = tmp_path / "report.json"
    report = evaluate_checkpoint(weights, f"mpii:{annotations}:{MPII}", device="cpu", progress=False, flip=True,
                                 json_path=out, batch_size=4)  # fmt: skip
    assert report.result.name == "PCKh@0.5"
    assert report.samples == len(items) and report.input_size == (64, 64)  # read from the weights' metadata
    assert report.result.samples_used == len(items) and report.result.samples_skipped == 0
    assert report.heatmap_sigma == 2.0  # the weights record no sigma: the default
    table = report.table().splitlines()
    assert table[0] == table2_header() and table[1].startswith("lshm-2")
    data = json.loads(out.read_text())
    assert data["metric"] == "PCKh@0.5" and data["flip_test"] and set(data["groups"]) >= {"head", "ankle", "mean"}
    assert data["samples_read"] == data["samples_scored"] == len(items) and data["skip_reason"] is None
    assert table[3].startswith(f"PCKh@0.5 scored {len(items)} of {len(items)} samples read; input 64x64")
    # an explicit size wins over the recorded one; a size the model cannot take is refused
    assert evaluate_checkpoint(weights, f"mpii:{annotations}:{MPII}", input_size=(128, 128), device="cpu",
                               progress=False).input_size == (128, 128)  # fmt: skip
    from stagepose.errors import DataError

    with pytest.raises(DataError, match="multiples of 64"):
        evaluate_checkpoint(weights, f"mpii:{annotations}:{MPII}", input_size=(96, 96), device="cpu", progress=False)
