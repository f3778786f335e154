"""The campaign that spans sessions: snapshot a run, lose the machine, continue from the committed snapshot."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import yaml

from stagepose.cli import main
from stagepose.train.campaign import CampaignFiles, campaign_files, plan_resume, save, status
from stagepose.train.checkpoints import load_checkpoint
from stagepose.train.curves import read_log

LSPET = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "lspet"
needs_lspet = pytest.mark.skipif(not (LSPET / "joints.mat").is_file(), reason="../shared/data/lspet is absent")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _config(tmp_path: Path, max_steps: int) -> Path:
    config = {
        "model": {"preset": "lshm-2"},
        "data": {"train": f"lspet:{LSPET}@0:12", "val": f"lspet:{LSPET}@8500:8504", "input_size": 64,
                 "batch_size": 4, "val_batch_size": 8, "workers": 0},
        "optim": {"name": "adamw", "lr": 1.0e-3, "weight_decay": 1.0e-4},
        "train": {"max_steps": max_steps, "log_every": 1, "checkpoint_every": 2, "seed": 1, "device": "cpu",
                  "out_dir": str(tmp_path / "runs" / "camp")},
    }  # fmt: skip
    path = tmp_path / "camp.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _files(tmp_path: Path, config: Path) -> CampaignFiles:
    return campaign_files(config, snapshot_dir=tmp_path / "committed")


def test_no_run_and_no_snapshot_starts_afresh(tmp_path: Path) -> None:
    files = _files(tmp_path, _config(tmp_path, 4))
    plan = plan_resume(files)
    assert plan.checkpoint is None and plan.step == 0
    report = save(files)
    assert not report.saved and "does not exist" in report.reason


@needs_lspet
def test_snapshot_survives_a_lost_machine_and_the_run_continues(tmp_path: Path) -> None:
    config = _config(tmp_path, 4)
    files = _files(tmp_path, config)
    assert main(["train", "--config", str(config), "--no-progress"]) == 0
    full = load_checkpoint(files.last)

    report = save(files)
    assert report.saved and report.snapshot_step == 4
    snap = load_checkpoint(files.snapshot)  # weights_only, as any checkpoint
    assert snap["step"] == 4 and snap["snapshot"] is True
    for key, value in full["model"].items():  # the weights are kept exactly
        assert torch.equal(snap["model"][key], value), key
    moments = [t for s in snap["optimizer"]["state"].values() for n, t in s.items() if n != "step"]
    assert moments and all(t.dtype == torch.bfloat16 for t in moments)
    assert files.snapshot.stat().st_size < 0.75 * files.last.stat().st_size
    assert [r["step"] for r in read_log(files.log) if r["loss"] is not None] == [1, 2, 3, 4]
    again = save(files)
    assert not again.saved and "not behind" in again.reason

    shutil.rmtree(files.run_dir)  # the next session gets a fresh machine: only the committed files remain
    plan = plan_resume(files)
    assert plan.checkpoint == files.snapshot and plan.step == 4
    assert (files.run_dir / "log.csv").is_file(), "the committed curve is restored into the run folder"

    assert main(["train", "--resume", str(plan.checkpoint), "train.max_steps=6", "--no-progress"]) == 0
    resumed = load_checkpoint(files.last)
    assert resumed["step"] == 6
    moved = [k for k, v in resumed["model"].items() if v.is_floating_point() and not torch.equal(v, full["model"][k])]
    assert moved, "training went on from the snapshot"
    steps = [r["step"] for r in read_log(files.run_dir / "log.csv") if r["loss"] is not None]
    assert steps == [1, 2, 3, 4, 5, 6], "one curve across the two machines"

    plan = plan_resume(files)
    assert plan.checkpoint == files.last and plan.step == 6  # the local run is now further along
    info = status(files)
    assert info["step"] == 6 and info["planned_steps"] == 6 and info["validations"]


@needs_lspet
def test_campaign_cli_status_and_save(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path, 2)
    assert main(["campaign", "--config", str(config), "status"]) == 0
    assert "nothing to continue" in capsys.readouterr().out
    assert not (tmp_path / "runs").exists(), "status changes nothing"
    assert main(["train", "--config", str(config), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["campaign", "--config", str(config), "status"]) == 0
    out = capsys.readouterr().out
    assert "step 2 of 2" in out
    committed = tmp_path / "committed"
    assert main(["campaign", "--config", str(config), "--snapshot-dir", str(committed), "save"]) == 0
    assert "snapshot moved from step 0 to 2" in capsys.readouterr().out
    assert campaign_files(config, committed).snapshot.is_file()


def test_campaign_cli_names_a_missing_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["campaign", "--config", str(tmp_path / "nope.yaml"), "status"]) != 0
    assert "campaign config not found" in capsys.readouterr().err
