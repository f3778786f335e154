"""The same `stagepose train` command under torchrun: two CPU processes (Gloo), DistributedDataParallel."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_train_loop import LSPET, needs_lspet, write_config

from stagepose.train.checkpoints import load_checkpoint
from stagepose.train.curves import read_log

TORCHRUN = Path(sys.executable).with_name("torchrun")


@needs_lspet
@pytest.mark.skipif(not TORCHRUN.exists() and shutil.which("torchrun") is None, reason="torchrun not installed")
@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch built without torch.distributed")
def test_torchrun_two_cpu_processes(tmp_path: Path) -> None:
    config = write_config(tmp_path, "ddp", train=f"lspet:{LSPET}@0:16")
    torchrun = str(TORCHRUN) if TORCHRUN.exists() else "torchrun"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [torchrun, "--standalone", "--nproc_per_node=2", "-m", "stagepose.cli", "train", "--config", str(config),
         "train.max_steps=3", "--no-progress"],
        capture_output=True, text=True, timeout=180, env=env, cwd=Path(__file__).resolve().parents[1],
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "lshm-2 on cpu x2" in proc.stderr
    assert proc.stdout.count("trained 3 steps") == 1  # only rank 0 reports
    run = tmp_path / "runs" / "ddp"
    payload = load_checkpoint(run / "last.pt")
    assert payload["step"] == 3
    assert not any(k.startswith("module.") for k in payload["model"])  # unwrapped from DDP
    # 16 images, 2 processes of batch 4: 2 steps per epoch; the log counts images of both processes
    rows = [r for r in read_log(run / "log.csv") if r["loss"] is not None]
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert [p.name for p in run.iterdir() if p.name.startswith(".")] == []  # no temporaries left
