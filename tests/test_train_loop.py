"""The training loop on real LSPET images: checkpoints, resume, distillation, unlabelled frames, the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from stagepose.cli import main
from stagepose.data.label import label_entries, spec_entries
from stagepose.data.teacher_labels import TeacherInfo
from stagepose.errors import ConfigError, ModelError
from stagepose.fileio import atomic_write
from stagepose.models import build_model
from stagepose.models.checkpoint import load_model, load_state, save_weights
from stagepose.train.checkpoints import load_checkpoint, save_checkpoint
from stagepose.train.config import load_experiment
from stagepose.train.curves import read_log
from stagepose.train.distill import kd_weights
from stagepose.train.loop import train

LSPET = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "lspet"
needs_lspet = pytest.mark.skipif(not (LSPET / "joints.mat").is_file(), reason="../shared/data/lspet is absent")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def write_config(tmp_path: Path, name: str = "exp", *, train: str | list[str] = f"lspet:{LSPET}@0:12",
                 val: str | None = f"lspet:{LSPET}@8500:8504", teacher: Path | None = None,
                 **train_fields: object) -> Path:  # fmt: skip
    """A small lshm-2 experiment at 64x64 (the smallest input), batch 4, no loader workers."""
    config: dict[str, object] = {
        "model": {"preset": "lshm-2"},
        "data": {"train": train, "val": val, "input_size": 64, "batch_size": 4, "val_batch_size": 8, "workers": 0},
        "optim": {"name": "rmsprop", "lr": 1.0e-3},
        "train": {"epochs": 2, "log_every": 1, "seed": 3, "device": "cpu", "out_dir": str(tmp_path / "runs" / name),
                  **train_fields},  # fmt: skip
    }
    if teacher is not None:
        config["teacher"] = {"preset": "teacher-hg2", "weights": str(teacher)}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "last.pt"
    save_checkpoint(target, {"model": {}, "preset": "lshm-2", "optimizer": {}, "scheduler": {}, "step": 1,
                             "epoch": 0, "config": {}})  # fmt: skip

    def broken(tmp: Path) -> None:
        tmp.write_bytes(b"half a checkpoint")
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write(target, broken)
    assert load_checkpoint(target)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary left behind


def test_load_checkpoint_rejects_foreign_files(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="weights-only"):
        load_checkpoint(junk)
    other = tmp_path / "other.pt"
    torch.save({"model": {}}, other)
    with pytest.raises(ModelError, match="not a training checkpoint"):
        load_checkpoint(other)
    weights = save_weights(tmp_path / "w.safetensors", build_model("lshm-2", channels=16), "lshm-2")
    with pytest.raises(ModelError, match="weights only"):
        load_checkpoint(weights)
    with pytest.raises(ModelError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


@needs_lspet
def test_resume_mid_epoch_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    # 12 images, batch 4: 3 steps per epoch; stop at step 4 (mid-epoch 1), resume to 6
    full = train(load_experiment(write_config(tmp_path, "full"), ["train.max_steps=6"]), progress=False)
    part = train(load_experiment(write_config(tmp_path, "part"), ["train.max_steps=4"]), progress=False)
    stopped = load_checkpoint(part.last_checkpoint)
    assert (stopped["step"], stopped["epoch"], stopped["epoch_step"]) == (4, 1, 1)
    assert stopped["optimizer"]["state"], "optimizer state is saved"
    # resume with the stored config (no YAML) extended to 6 steps, as `stagepose train --resume` does
    assert main(["train", "--resume", str(part.last_checkpoint), "train.max_steps=6", "--no-progress"]) == 0
    resumed = load_checkpoint(part.last_checkpoint)
    reference = load_checkpoint(full.last_checkpoint)
    assert resumed["step"] == reference["step"] == 6
    for key, value in reference["model"].items():
        assert torch.allclose(resumed["model"][key].float(), value.float(), atol=1e-6), key
    # RMSprop's running averages continued rather than restarting
    ref_state = reference["optimizer"]["state"]
    for index, state in resumed["optimizer"]["state"].items():
        assert torch.allclose(state["square_avg"], ref_state[index]["square_avg"], atol=1e-8)
    steps = [r["step"] for r in read_log(part.out_dir / "log.csv") if r["loss"] is not None]
    assert steps == [1, 2, 3, 4, 5, 6]


@needs_lspet
def test_distillation_run_follows_eq8_and_saves_the_student_only(tmp_path: Path) -> None:
    torch.manual_seed(0)
    teacher = save_weights(tmp_path / "teacher.safetensors", build_model("teacher-hg2"), "teacher-hg2")
    result = train(load_experiment(write_config(tmp_path, "kd", teacher=teacher, val=None)), progress=False)
    total = result.steps
    assert total == 6
    rows = [r for r in read_log(result.out_dir / "log.csv") if r["loss"] is not None]
    for row in rows:  # log_every 1: the row after step s used the weights of step s - 1
        w_kd, w_gt = kd_weights(int(row["step"]) - 1, total)
        assert row["w_kd"] == pytest.approx(w_kd, abs=1e-5) and row["w_gt"] == pytest.approx(w_gt, abs=1e-5)
        assert row["kd_loss"] > 0 and row["task_loss"] > 0
    payload = load_checkpoint(result.out_dir / "best.pt")
    assert set(payload["model"]) == set(build_model("lshm-2").state_dict())  # no teacher weights inside
    assert payload["preset"] == "lshm-2" and payload["config"]["teacher"]["preset"] == "teacher-hg2"
    model, preset = load_model(result.best_weights)
    assert preset.name == "lshm-2"
    assert load_state(result.best_weights)[1]["input_size"] == "64x64"
    assert (result.out_dir / "curves.png").stat().st_size > 10_000
    assert yaml.safe_load((result.out_dir / "config.yaml").read_text())["teacher"]["weights"] == str(teacher)


@needs_lspet
def test_unlabelled_frames_need_a_teacher(tmp_path: Path) -> None:
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(1, 5):
        shutil.copy(LSPET / "images" / f"im{i:05d}.jpg", frames / f"rehearsal_{i}.jpg")
    specs = [f"lspet:{LSPET}@0:4", f"frames:{frames}"]
    with pytest.raises(ConfigError, match="no labels.*teacher"):
        train(load_experiment(write_config(tmp_path, "nolabel", train=specs)), progress=False)
    torch.manual_seed(0)
    teacher = save_weights(tmp_path / "teacher.safetensors", build_model("teacher-hg2"), "teacher-hg2")
    result = train(load_experiment(write_config(tmp_path, "mixed", train=specs, teacher=teacher), ["train.epochs=1"]),
                   progress=False)  # fmt: skip
    assert result.steps == 2 and result.best_metric is not None


@needs_lspet
def test_existing_run_is_not_overwritten_by_accident(tmp_path: Path) -> None:
    path = write_config(tmp_path, "again", val=None)
    train(load_experiment(path, ["train.max_steps=1"]), progress=False)
    with pytest.raises(ConfigError, match="already holds a run.*--resume"):
        train(load_experiment(path, ["train.max_steps=1"]), progress=False)
    first = load_checkpoint(tmp_path / "runs" / "again" / "best.pt")
    result = train(load_experiment(path, ["train.max_steps=1", "train.seed=9"]), progress=False, overwrite=True)
    assert result.steps == 1
    second = load_checkpoint(tmp_path / "runs" / "again" / "best.pt")
    assert not torch.equal(first["model"]["heads.0.weight"], second["model"]["heads.0.weight"])
    assert [r["step"] for r in read_log(result.out_dir / "log.csv") if r["loss"] is not None] == [1]


@needs_lspet
def test_cli_train_then_eval_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, "cli")
    assert main(["train", "--config", str(config), "train.max_steps=3", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "trained 3 steps" in out and "best PCK@0.2" in out
    run = tmp_path / "runs" / "cli"
    assert {"config.yaml", "last.pt", "best.pt", "best.safetensors", "log.csv", "curves.png"} <= {
        p.name for p in run.iterdir()}  # fmt: skip
    report = tmp_path / "eval.json"
    spec = f"lspet:{LSPET}@8500:8504"
    code = main(["eval", "--checkpoint", str(run / "best.safetensors"), "--data", spec, "--json", str(report),
                 "--workers", "0", "--no-progress", "--flip"])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:3] == ["model", "params/M", "GFLOPs"]
    assert out.splitlines()[1].startswith("lshm-2") and "limb-joint mean" in out
    data = json.loads(report.read_text())
    assert data["metric"] == "PCK@0.2" and data["samples"] == 4 and data["input_size"] == [64, 64]
    assert data["flip_test"] is True and 2.0 < data["params_m"] < 2.4
    # a bad checkpoint is a clear error, not a traceback
    assert main(["eval", "--checkpoint", str(tmp_path / "nope.pt"), "--data", spec]) == 2
    assert "checkpoint not found" in capsys.readouterr().err


def _coco_from_lspet(folder: Path, count: int) -> Path:
    """A COCO-keypoints file (MPII joint names, as a labelling tool exports it) for LSPET images 1..count."""
    import cv2
    import scipy.io

    from stagepose.skeleton import JOINT_NAMES, LSP_TO_MPII

    joints = scipy.io.loadmat(str(LSPET / "joints.mat"))["joints"]  # (14, 3, N): x, y, visible
    images, annotations = [], []
    for i in range(count):
        name = f"im{i + 1:05d}.jpg"
        shutil.copy(LSPET / "images" / name, folder / name)
        height, width = cv2.imread(str(folder / name)).shape[:2]
        points = [0.0] * (3 * 16)
        for lsp_index, mpii_joint in enumerate(LSP_TO_MPII):
            x, y, visible = joints[lsp_index, :, i]
            if visible > 0:
                points[3 * int(mpii_joint): 3 * int(mpii_joint) + 3] = [float(x), float(y), 2]
        xs, ys = points[0::3], points[1::3]
        labelled = [k for k in range(16) if points[3 * k + 2] > 0]
        x0, y0 = min(xs[k] for k in labelled), min(ys[k] for k in labelled)
        box = [x0, y0, max(xs[k] for k in labelled) - x0, max(ys[k] for k in labelled) - y0]
        images.append({"id": i + 1, "file_name": name, "width": width, "height": height})
        annotations.append({"id": i + 1, "image_id": i + 1, "category_id": 1, "keypoints": points,
                            "num_keypoints": len(labelled), "bbox": box, "iscrowd": 0})  # fmt: skip
    path = folder / "person_keypoints_default.json"
    category = {"id": 1, "name": "person", "keypoints": list(JOINT_NAMES)}
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": [category]}))
    return path


def _centre_teacher(image_rgb: np.ndarray) -> np.ndarray:
    """A stand-in teacher: every joint at the image centre, confidence 0.8."""
    h, w = image_rgb.shape[:2]
    return np.tile([w / 2.0, h / 2.0, 0.8], (16, 1))


@needs_lspet
def test_venue_finetune_recipe_runs_as_documented(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """training/lshm2_venue-finetune.yaml with its paths overridden, as training/README.md shows."""
    venue = tmp_path / "venue"
    (venue / "frames").mkdir(parents=True)
    (venue / "unlabelled").mkdir()
    labels = _coco_from_lspet(venue / "frames", 10)
    for i in range(20, 24):
        shutil.copy(LSPET / "images" / f"im{i:05d}.jpg", venue / "unlabelled" / f"cam1_t{i:06d}.000.jpg")
    torch.manual_seed(0)
    shipped = save_weights(tmp_path / "lshm2_lspet_128.safetensors", build_model("lshm-2"), "lshm-2")
    teacher = save_weights(tmp_path / "teacher.safetensors", build_model("teacher-hg2"), "teacher-hg2")
    labelled = f"coco:{labels}:{venue / 'frames'}?val=2"
    specs = [labelled, f"frames:{venue / 'unlabelled'}"]
    # the recipe's teacher is a label file (`stagepose data label`); a stand-in model writes it here
    teacher_labels = venue / "teacher_labels.json"
    label_entries(spec_entries(specs), _centre_teacher, TeacherInfo(name="centre", software="test", mode="image"),
                  teacher_labels, progress=False)  # fmt: skip
    repo = Path(__file__).resolve().parents[1]
    code = main(["train", "--config", str(repo / "training" / "lshm2_venue-finetune.yaml"), "--no-progress",
                 f'data.train=["{specs[0]}", "{specs[1]}"]', f"data.val={labelled}",
                 f"model.init={shipped}", f"teacher.labels={teacher_labels}", f"train.out_dir={tmp_path / 'run'}",
                 "train.max_steps=2", "data.workers=0", "data.batch_size=4", "data.input_size=64"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    kd = [row["kd_loss"] for row in read_log(tmp_path / "run" / "log.csv") if row["loss"] is not None]
    assert kd and all(v is not None and v > 0 for v in kd)  # the label teacher taught every step
    payload = load_checkpoint(tmp_path / "run" / "last.pt")
    assert payload["config"]["model"]["init"] == str(shipped)
    # fine-tuning started from the shipped weights: after 2 small steps they are close, not re-initialised
    start = load_state(shipped)[0]
    drift = max(float((payload["model"][k].float() - v.float()).abs().max()) for k, v in start.items()
                if v.is_floating_point() and "running" not in k)  # fmt: skip
    assert 0 < drift < 0.05
    # a preset mismatch between model.init and model.preset is refused before training
    assert main(["train", "--config", str(repo / "training" / "lshm2_venue-finetune.yaml"),
                 f"model.init={teacher}", f"train.out_dir={tmp_path / 'bad'}"]) == 2  # fmt: skip
    assert "holds preset 'teacher-hg2'" in capsys.readouterr().err
