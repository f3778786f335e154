"""A training run stopped by a signal saves the step it reached (a background job, a session's end)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from stagepose.train.checkpoints import load_checkpoint
from stagepose.train.curves import read_log

LSPET = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "lspet"
needs_lspet = pytest.mark.skipif(not (LSPET / "joints.mat").is_file(), reason="../shared/data/lspet is absent")


def _background_job() -> None:
    """What a shell does to a job started with `&` without job control: SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@needs_lspet
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_saves_the_current_step_and_says_how_to_resume(tmp_path: Path, sig: signal.Signals) -> None:
    out = tmp_path / "run"
    config = {
        "model": {"preset": "lshm-2"},
        "data": {"train": f"lspet:{LSPET}@0:400", "val": None, "input_size": 64, "batch_size": 4, "workers": 0},
        "train": {"max_steps": 100, "log_every": 1, "checkpoint_every": 0, "device": "cpu", "out_dir": str(out)},
    }  # 100 steps per epoch, no periodic checkpoint: without the handler nothing would be saved before step 100
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "stagepose.cli", "train", "--config", str(path), "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=_background_job)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while len([r for r in read_log(out / "log.csv") if r["loss"] is not None]) < 3:
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            assert time.monotonic() < deadline, "training did not start in time"
            time.sleep(0.2)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 2, err[-2000:]
    assert f"{sig.name} received" in err and "--resume" in err
    saved = load_checkpoint(out / "last.pt")
    logged = [int(r["step"]) for r in read_log(out / "log.csv") if r["loss"] is not None]
    assert 3 <= saved["step"] < 100
    assert saved["step"] == logged[-1], "the checkpoint holds the last step the log shows"
