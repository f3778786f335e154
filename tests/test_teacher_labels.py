"""Offline teacher labels: the file format, teacher heatmaps in augmented crops, eq. 7 from labels, the config."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from stagepose.data.augment import AugmentConfig
from stagepose.data.registry import build_dataset
from stagepose.data.teacher_labels import (
    FORMAT,
    TeacherInfo,
    TeacherLabels,
    labels_to_text,
    no_opinion,
    read_labels,
    write_labels,
)
from stagepose.errors import ConfigError, DataError
from stagepose.skeleton import JOINT_NAMES, NUM_JOINTS, Joint, flip_permutation
from stagepose.train.config import load_experiment
from stagepose.train.distill import DistillTask

LSPET = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "lspet"
needs_lspet = pytest.mark.skipif(not (LSPET / "joints.mat").is_file(), reason="../shared/data/lspet is absent")
TOL_IMAGE_PX = 1.0
EDGE_PX = 24  # 3 sigma of the Gaussian in input pixels: nearer the crop's edge the peak is cut off
INFO = TeacherInfo(name="test-teacher", software="none 0", mode="crop")


def _keypoints(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.column_stack([rng.uniform(0, 300, (NUM_JOINTS, 2)), rng.uniform(0.1, 1.0, NUM_JOINTS)])
    return np.round(out, 2)


def _gt_labels(dataset, confidence: float = 0.9) -> TeacherLabels:  # noqa: ANN001 - test helper
    """Labels equal to the ground truth of a data set (a perfect teacher), confidence ``confidence``."""
    labels = {}
    for entry in dataset.entries:
        keypoints = no_opinion()
        keypoints[:, :2] = entry.joints
        keypoints[:, 2] = np.where(entry.visible > 0, confidence, 0.0)
        labels[entry.source_id] = keypoints
    return TeacherLabels(teacher=INFO, data=("test",), labels=labels)


# --- the file -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["labels.json", "labels.json.gz"])
def test_label_file_round_trip(tmp_path: Path, name: str) -> None:
    first, second = _keypoints(0), _keypoints(1)
    second[3] = [np.nan, np.nan, 0.0]  # a joint without an opinion
    labels = TeacherLabels(teacher=INFO, data=("lspet:x",), labels={"lspet:a.jpg": first, "frames:b.jpg#0": second,
                                                                     "frames:c.jpg#0": None})  # fmt: skip
    path = write_labels(tmp_path / name, labels)
    again = read_labels(path)
    assert again.teacher == INFO and again.data == ("lspet:x",) and again.source == str(path)
    assert set(again.labels) == {"lspet:a.jpg", "frames:b.jpg#0", "frames:c.jpg#0"}
    np.testing.assert_allclose(again.labels["lspet:a.jpg"], first, atol=0.051)  # 0.1 px, confidence 0.01
    assert np.isnan(again.labels["frames:b.jpg#0"][3, :2]).all() and again.labels["frames:b.jpg#0"][3, 2] == 0
    assert again.labels["frames:c.jpg#0"] is None and again.keypoints("frames:c.jpg#0") is None
    assert again.keypoints("never:labelled.jpg") is None
    text = gzip.decompress(path.read_bytes()).decode() if name.endswith(".gz") else path.read_text()
    data = json.loads(text)
    assert data["format"] == FORMAT and data["joints"] == list(JOINT_NAMES)
    assert '"frames:c.jpg#0": null' in text and ",null," in text  # inspectable: one label per line
    assert len(text.splitlines()) > 3 + 16


def test_lspet_sized_file_stays_small() -> None:
    # 8,500 LSPET images at the written precision: under ~5 MB, so the file can live beside the configs
    labels = TeacherLabels(teacher=INFO, labels={f"lspet:im{i:05d}.jpg": _keypoints(i) * [1, 1, 1] for i in range(200)})
    per_image = len(labels_to_text(labels).encode()) / 200
    assert per_image * 8500 < 5e6


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda d: d.update(format="other"), "format"),
        (lambda d: d.update(version=2), "version 2 is not supported"),
        (lambda d: d.update(joints=list(reversed(JOINT_NAMES))), "joints"),
        (lambda d: d.update(teacher={"name": "x"}), "teacher"),
        (lambda d: d["labels"].update({"lspet:a.jpg": [[1, 2, 0.5]] * 15}), "label 'lspet:a.jpg'.*16 joints"),
        (lambda d: d["labels"]["lspet:a.jpg"].__setitem__(4, [1, 2, 1.5]), r"label 'lspet:a.jpg' joint 4 \(l_knee\)"),
        (lambda d: d["labels"]["lspet:a.jpg"].__setitem__(0, [1, "2", 1]), r"joint 0 \(r_ankle\)"),
    ],
)
def test_label_file_errors_name_the_place(tmp_path: Path, change, words: str) -> None:  # noqa: ANN001
    path = write_labels(tmp_path / "l.json", TeacherLabels(teacher=INFO, labels={"lspet:a.jpg": _keypoints(0)}))
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=rf"{re.escape(str(path))}: .*{words}"):
        read_labels(path)


def test_missing_and_broken_label_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="label file not found.*stagepose data label"):
        read_labels(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": ')
    with pytest.raises(DataError, match=r"bad.json:1:\d+: not valid JSON"):
        read_labels(bad)


# --- teacher heatmaps in the sample -------------------------------------------------------------------------


@needs_lspet
@pytest.mark.parametrize("flip", [False, True])
def test_teacher_heatmaps_follow_the_augmented_crop(flip: bool) -> None:
    """A flipped and rotated crop: each teacher channel decodes to the teacher's point for that joint of the
    mirrored person (channels permuted by the flip) within a pixel, weighted by its confidence."""
    augment = AugmentConfig(rotation_deg=30.0, rotation_prob=1.0, flip_prob=1.0 if flip else 0.0, scale=0.2,
                            half_body_prob=0.0, occlusion_prob=0.0)  # fmt: skip
    plain = build_dataset(f"lspet:{LSPET}@0:12", split="train", input_size=(128, 128))
    teacher = {}
    for entry in plain.entries:  # teacher points near, not on, the ground truth; confidence per joint
        keypoints = no_opinion()
        keypoints[:, :2] = np.nan_to_num(entry.joints, nan=float(np.nanmean(entry.joints))) + 3.0
        keypoints[:, 2] = np.linspace(0.2, 1.0, NUM_JOINTS)
        teacher[entry.source_id] = keypoints
    labels = TeacherLabels(teacher=INFO, labels=teacher)
    dataset = build_dataset(f"lspet:{LSPET}@0:12", split="train", input_size=(128, 128), augment=augment,
                            teacher_labels=labels)  # fmt: skip
    perm = flip_permutation() if flip else np.arange(NUM_JOINTS)
    checked = 0
    for index in range(len(dataset)):
        sample = dataset[index]
        affine = sample["image_to_input"].numpy().astype(np.float64)
        assert (np.linalg.det(affine[:, :2]) < 0) == flip
        expected = teacher[sample["source_id"]][perm]
        coords, _ = dataset.codec.decode(sample["teacher_heatmaps"].numpy())
        decoded = dataset.codec.heatmap_to_image(coords, affine)
        weight = sample["teacher_weight"].numpy()
        in_crop = np.column_stack([expected[:, :2], np.ones(NUM_JOINTS)]) @ affine.T
        inner = (in_crop >= EDGE_PX).all(1) & (in_crop <= 128 - 1 - EDGE_PX).all(1)
        assert np.allclose(weight[inner], expected[inner, 2], atol=1e-6)  # confidence travels with the joint
        assert np.all(np.linalg.norm(decoded[inner] - expected[inner, :2], axis=1) <= TOL_IMAGE_PX)
        checked += int(inner.sum())
    assert checked > 60


@needs_lspet
def test_entries_without_labels_get_zero_teacher_weight() -> None:
    plain = build_dataset(f"lspet:{LSPET}@0:4", split="train", input_size=(64, 64))
    labels = _gt_labels(plain)
    partial = TeacherLabels(teacher=INFO, labels={k: v for k, v in list(labels.labels.items())[:2]})
    dataset = build_dataset(f"lspet:{LSPET}@0:4", split="train", input_size=(64, 64), teacher_labels=partial)
    assert dataset.teacher_count == 2
    weights = [float(dataset[i]["teacher_weight"].sum()) for i in range(4)]
    assert weights[0] > 0 and weights[1] > 0 and weights[2] == weights[3] == 0.0
    assert dataset[3]["teacher_heatmaps"].abs().sum() == 0
    assert "teacher_heatmaps" not in plain[0]  # no label file: no teacher keys


# --- eq. 7 from labels --------------------------------------------------------------------------------------


class _Echo(torch.nn.Module):
    """A 'student' whose heatmaps are a learnable offset on given maps (2 stacks)."""

    def __init__(self, maps: torch.Tensor) -> None:
        super().__init__()
        self.maps = maps
        self.offset = torch.nn.Parameter(torch.zeros(()))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.maps, self.maps], dim=1) + self.offset


def _batch(n: int = 4, size: int = 16) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {
        "image": torch.zeros(n, 3, 4 * size, 4 * size),
        "heatmaps": torch.rand(n, NUM_JOINTS, size, size),
        "target_weight": torch.ones(n, NUM_JOINTS),
        "labelled": torch.ones(n, dtype=torch.bool),
        "teacher_heatmaps": torch.rand(n, NUM_JOINTS, size, size),
        "teacher_weight": torch.rand(n, NUM_JOINTS) * 0.9 + 0.1,
    }


def test_kd_from_labels_is_zero_when_the_student_draws_the_rendered_heatmaps() -> None:
    batch = _batch()
    task = DistillTask(_Echo(batch["teacher_heatmaps"]), None, total_steps=10).train()
    out = task(batch, 0)
    assert float(out["kd_loss"]) == 0.0 and float(out["task_loss"]) > 0
    task_off = DistillTask(_Echo(batch["teacher_heatmaps"] + 0.1), None, total_steps=10)
    out_off = task_off(batch, 0)
    assert float(out_off["kd_loss"]) == pytest.approx(2 * 0.01, rel=1e-5)  # 2 stacks x 0.1^2, any weights
    out_off["loss"].backward()
    assert task_off.student.offset.grad is not None and float(task_off.student.offset.grad) != 0
    # eq. 8 mixes the two terms on labelled samples
    w_kd, w_gt = task_off.weights(0)
    mixed = w_kd * float(out_off["kd_loss"]) + w_gt * float(out_off["task_loss"])
    assert float(out_off["loss"].detach()) == pytest.approx(mixed, rel=1e-5)


def test_samples_without_teacher_labels_get_no_kd_term() -> None:
    batch = _batch()
    batch["teacher_weight"][2:] = 0.0  # the file had no label for samples 2 and 3
    batch["labelled"][3] = False  # ... and sample 3 has no ground truth either
    batch["target_weight"][3] = 0.0
    batch["heatmaps"][3] = 0.0
    student = _Echo(batch["teacher_heatmaps"] + 0.1)
    out = DistillTask(student, None, total_steps=10)(batch, 0)
    w_kd, w_gt = DistillTask(student, None, total_steps=10).weights(0)
    gt = ((student(batch["image"]) - batch["heatmaps"].unsqueeze(1)) ** 2).mean(dim=(-2, -1)).mean(-1).sum(-1)
    expected = (w_kd * 0.02 * 2 + w_gt * (gt[0] + gt[1] + gt[2])) / 4  # sample 2: ground truth only; 3: nothing
    assert float(out["loss"].detach()) == pytest.approx(float(expected.detach()), rel=1e-5)
    assert float(out["kd_loss"]) == pytest.approx(0.02, rel=1e-5)  # averaged over the taught samples only
    batch["teacher_weight"][:] = 0.0
    batch["labelled"][:] = False
    assert float(DistillTask(student, None, total_steps=10)(batch, 0)["loss"].detach()) == 0.0


def test_label_task_needs_the_teacher_keys() -> None:
    batch = _batch()
    del batch["teacher_heatmaps"]
    with pytest.raises(ValueError, match="teacher_heatmaps"):
        DistillTask(_Echo(torch.zeros(4, NUM_JOINTS, 16, 16)), None, total_steps=10)(batch, 0)


# --- the config ---------------------------------------------------------------------------------------------

BASE = "model:\n  preset: lshm-2\ndata:\n  train: lspet:data/lspet\n  input_size: 128\n"


@pytest.mark.parametrize(
    ("teacher", "words"),
    [
        ("  labels: l.json\n  weights: t.safetensors\n", "teacher.labels and teacher.weights are both given"),
        ("  labels: l.json\n  preset: teacher-hg2\n", "teacher.labels and teacher.preset are both given"),
        ("  preset: teacher-hg2\n", "teacher.weights missing"),
        ("  weights: t.safetensors\n", "teacher.preset missing"),
    ],
)
def test_teacher_is_labels_or_a_network(tmp_path: Path, teacher: str, words: str) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text(BASE + "teacher:\n" + teacher)
    with pytest.raises(ConfigError, match=rf"exp.yaml:6: teacher: {words}"):
        load_experiment(path)


def test_teacher_labels_config_and_command_line_switch(tmp_path: Path) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text(BASE + "teacher:\n  labels: l.json\n")
    config = load_experiment(path)
    assert config.teacher is not None and config.teacher.labels == Path("l.json") and config.teacher.preset is None
    network = load_experiment(path, ["teacher.labels=null", "teacher.preset=teacher-hg2", "teacher.weights=t.pt"])
    assert network.teacher is not None and network.teacher.labels is None and network.teacher.preset == "teacher-hg2"
    assert Joint.head_top == 9  # the file's joint order is MPII's (checked on reading)


# --- a training run with the label teacher ------------------------------------------------------------------


def _experiment(tmp_path: Path, labels: Path, train: list[str], name: str = "kd-labels") -> Path:
    import yaml

    config = {
        "model": {"preset": "lshm-2"},
        "teacher": {"labels": str(labels)},
        "data": {"train": train, "input_size": 64, "batch_size": 4, "workers": 0},
        "train": {"max_steps": 2, "log_every": 1, "device": "cpu", "out_dir": str(tmp_path / "runs" / name)},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@needs_lspet
def test_training_with_the_label_teacher_and_its_coverage_checks(tmp_path: Path) -> None:
    from stagepose.train.checkpoints import load_checkpoint
    from stagepose.train.curves import read_log
    from stagepose.train.loop import train

    torch.set_num_threads(1)
    spec = f"lspet:{LSPET}@0:8"
    labels = write_labels(tmp_path / "labels.json", _gt_labels(build_dataset(spec, split="train")))
    result = train(load_experiment(_experiment(tmp_path, labels, [spec])), progress=False)
    rows = [r for r in read_log(result.out_dir / "log.csv") if r["loss"] is not None]
    assert len(rows) == 2 and all(r["kd_loss"] and r["kd_loss"] > 0 for r in rows)
    assert [r["w_kd"] for r in rows] == [pytest.approx(0.6), pytest.approx(0.5)]  # eq. 8 over I = 2 steps
    payload = load_checkpoint(result.last_checkpoint)
    assert payload["config"]["teacher"] == {"preset": None, "weights": None, "labels": str(labels)}
    # a file that labels none of the data, or none of a set without ground truth, stops the run before it starts
    elsewhere = write_labels(
        tmp_path / "other.json", _gt_labels(build_dataset(f"lspet:{LSPET}@100:104", split="train"))
    )
    with pytest.raises(ConfigError, match=r"labels none of the 8 training entries.*'lspet:im00101.jpg'"):
        train(load_experiment(_experiment(tmp_path, elsewhere, [spec], "none")), progress=False)
    frames = tmp_path / "frames"
    frames.mkdir()
    import shutil

    shutil.copy(LSPET / "images" / "im00001.jpg", frames / "cam1_t000001.000.jpg")
    with pytest.raises(ConfigError, match=r"labels none of frames:.*no ground truth"):
        train(load_experiment(_experiment(tmp_path, labels, [spec, f"frames:{frames}"], "frames")), progress=False)
    with pytest.raises(ConfigError, match=r"teacher.labels: .*missing.json: label file not found"):
        train(load_experiment(_experiment(tmp_path, tmp_path / "missing.json", [spec], "missing")), progress=False)


def test_mediapipe_comparison_differs_only_by_the_teacher() -> None:
    """training/lshm2_kd-mediapipe_lspet_128.yaml against teacher-hg2's arm and the no-teacher control."""
    from stagepose.train.config import config_to_data

    training = Path(__file__).resolve().parents[1] / "training"
    names = ("lshm2_kd-mediapipe_lspet_128.yaml", "lshm2_kd-hg2_lspet_128.yaml", "lshm2_lspet_128_stage2.yaml")
    arms = [config_to_data(load_experiment(training / name)) for name in names]
    assert arms[0]["teacher"] == {"preset": None, "weights": None, "labels": "training/labels/lspet_mediapipe.json"}
    assert arms[0]["distill"] == arms[1]["distill"]
    for arm in arms:
        for key in ("teacher", "distill", "name"):
            arm.pop(key, None)
        arm["train"].pop("out_dir")
    assert arms[0] == arms[1] == arms[2]
