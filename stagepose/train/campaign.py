"""The training campaign: one long run that spans many sessions on small machines.

Two CPU cores cannot train the student in one sitting, and a session's machine (with its ``runs/``) may be
gone by the next one. So the run lives in two places:

- ``runs/<name>/last.pt`` while a machine keeps it (the full checkpoint of ``stagepose train``);
- a committed *snapshot* in ``training/campaign/<name>.pt`` (+ ``<name>.log.csv``, ``<name>.curves.png``)
  that a fresh clone continues from.

``resume`` continues from whichever of the two is further along (by optimiser step); ``save`` writes the
snapshot when the run has moved past it. A snapshot is a normal training checkpoint (``stagepose train
--resume`` reads it) whose optimiser state is stored in bfloat16: the weights stay float32 (they are what
training continues), while Adam's moment estimates need only a few significant digits and come back as
float32 on load (``Optimizer.load_state_dict`` casts state to the parameters' dtype). That halves the file,
which matters because every snapshot is a new version in git and the campaign must stay under ~100 MB of
repository growth.
"""

from __future__ import annotations

import logging
import math
import shutil
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from stagepose.errors import ConfigError, ModelError

logger = logging.getLogger(__name__)

DEFAULT_CONFIG = Path("training/lshm2_campaign_lspet_128.yaml")
SNAPSHOT_DIR = Path("training/campaign")
RATE_ROWS = 25  # log rows (of log_every steps each) averaged for the images/s behind the time estimate


@dataclass(frozen=True)
class CampaignFiles:
    """Where one campaign's run and its committed snapshot live.

    Attributes:
        name: the experiment's name (its config file's stem).
        run_dir: the working run folder (``runs/<name>``).
        snapshot: the committed checkpoint.
        log: the committed copy of the run's ``log.csv``.
        curves: the committed copy of its ``curves.png``.
    """

    name: str
    run_dir: Path
    snapshot: Path
    log: Path
    curves: Path

    @classmethod
    def for_run(cls, name: str, run_dir: Path, snapshot_dir: Path = SNAPSHOT_DIR) -> CampaignFiles:
        return cls(name=name, run_dir=Path(run_dir), snapshot=snapshot_dir / f"{name}.pt",
                   log=snapshot_dir / f"{name}.log.csv", curves=snapshot_dir / f"{name}.curves.png")  # fmt: skip

    @property
    def last(self) -> Path:
        return self.run_dir / "last.pt"


def campaign_files(config_path: str | Path = DEFAULT_CONFIG, snapshot_dir: Path = SNAPSHOT_DIR) -> CampaignFiles:
    """The files of the campaign defined by ``config_path`` (its name and ``train.out_dir``).

    Raises:
        ConfigError: the config is missing or invalid.
    """
    from stagepose.train.config import load_experiment

    config = load_experiment(config_path)
    return CampaignFiles.for_run(config.name, config.out_dir, snapshot_dir)


def _step_of(path: Path) -> int | None:
    """The optimiser step a checkpoint holds, or None if there is none (a broken file is reported)."""
    from stagepose.train.checkpoints import load_checkpoint

    if not path.is_file():
        return None
    try:
        return int(load_checkpoint(path)["step"])
    except ModelError as exc:
        logger.warning("ignoring %s: %s", path, exc)
        return None


def compact(payload: dict[str, Any]) -> dict[str, Any]:
    """A copy of a training checkpoint with its optimiser state tensors in bfloat16 (weights untouched)."""
    import torch

    optimizer = payload["optimizer"]
    state = {
        key: {name: (value.to(torch.bfloat16) if torch.is_tensor(value) and value.is_floating_point()
                     and name != "step" else value)
              for name, value in per_param.items()}
        for key, per_param in optimizer.get("state", {}).items()
    }  # fmt: skip
    out = {k: v for k, v in payload.items() if k not in ("format", "version")}
    out["optimizer"] = {**optimizer, "state": state}
    out["snapshot"] = True
    return out


@dataclass(frozen=True)
class SaveReport:
    """What ``save`` did: the snapshot's step before and after, and its size."""

    saved: bool
    run_step: int | None
    snapshot_step: int | None
    snapshot: Path
    size_mb: float
    reason: str


def save(files: CampaignFiles, *, force: bool = False) -> SaveReport:
    """Write the committed snapshot from ``runs/<name>/last.pt`` if the run is further along than it.

    Also copies the run's ``log.csv`` and ``curves.png`` beside the snapshot, so the next session's curve
    starts where this one ended.

    Raises:
        ModelError: the run's ``last.pt`` is unreadable.
    """
    from stagepose.fileio import atomic_write
    from stagepose.train.checkpoints import load_checkpoint, save_checkpoint

    snap_step = _step_of(files.snapshot)
    if not files.last.is_file():
        return SaveReport(False, None, snap_step, files.snapshot, _size_mb(files.snapshot),
                          f"no run to save: {files.last} does not exist")  # fmt: skip
    payload = load_checkpoint(files.last)  # read once: its step decides, its contents are the snapshot
    run_step = int(payload["step"])
    if snap_step is not None and run_step <= snap_step and not force:
        return SaveReport(False, run_step, snap_step, files.snapshot, _size_mb(files.snapshot),
                          f"the snapshot (step {snap_step}) is not behind the run (step {run_step})")  # fmt: skip
    save_checkpoint(files.snapshot, compact(payload))
    for src, dst in ((files.run_dir / "log.csv", files.log), (files.run_dir / "curves.png", files.curves)):
        if src.is_file():
            atomic_write(dst, partial(shutil.copyfile, src))
    return SaveReport(True, run_step, run_step, files.snapshot, _size_mb(files.snapshot),
                      f"snapshot moved from step {snap_step or 0} to {run_step}")  # fmt: skip


def _size_mb(path: Path) -> float:
    return path.stat().st_size / 1e6 if path.is_file() else 0.0


@dataclass(frozen=True)
class ResumePlan:
    """Where ``resume`` continues from: a checkpoint (None: start the config afresh) and why."""

    checkpoint: Path | None
    step: int
    reason: str


def plan_resume(files: CampaignFiles, *, restore_log: bool = True) -> ResumePlan:
    """Pick the further-along of ``runs/<name>/last.pt`` and the committed snapshot.

    When the snapshot wins and ``restore_log`` is set, the committed log is copied into the run folder
    (unless the run folder's own log is longer), so the curves continue; the resumed run then drops log
    rows past the snapshot's step.
    """
    from stagepose.train.curves import read_log

    run_step = _step_of(files.last)
    snap_step = _step_of(files.snapshot)
    if run_step is None and snap_step is None:
        return ResumePlan(None, 0, f"nothing to continue: no run in {files.run_dir} and no snapshot at "
                                   f"{files.snapshot}")
    if snap_step is not None and (run_step is None or snap_step > run_step):
        if restore_log and files.log.is_file():
            files.run_dir.mkdir(parents=True, exist_ok=True)
            local = files.run_dir / "log.csv"
            if len(read_log(local)) < len(read_log(files.log)):
                shutil.copyfile(files.log, local)
        where = "no local run" if run_step is None else f"the local run is at step {run_step}"
        return ResumePlan(files.snapshot, snap_step, f"committed snapshot at step {snap_step} ({where})")
    assert run_step is not None
    return ResumePlan(files.last, run_step, f"local run at step {run_step} (snapshot: step {snap_step or 0})")


def status(files: CampaignFiles) -> dict[str, Any]:
    """Where the campaign stands: steps done and planned, validation so far, speed and time to finish.

    The time estimate uses the images/s of the last logged steps on THIS machine (other machines differ
    ~3x), so it is a plan in steps first and hours second.
    """
    from stagepose.train.checkpoints import load_checkpoint
    from stagepose.train.curves import read_log

    plan = plan_resume(files, restore_log=False)
    source = plan.checkpoint
    if source is None:
        return {"name": files.name, "step": 0, "reason": plan.reason}
    payload = load_checkpoint(source)
    config = payload["config"]
    batch = int(config["data"]["batch_size"]) * int(payload.get("world_size", 1))  # images per step
    planned = int(config["train"].get("max_steps") or 0) or None
    log_path = files.run_dir / "log.csv" if (files.run_dir / "log.csv").is_file() else files.log
    rows = read_log(log_path)
    vals = [(int(r["step"] or 0), v) for r in rows if (v := r.get("val_metric")) is not None]
    rates = [v for r in rows if (v := r.get("img_s"))][-RATE_ROWS:]
    img_s = sum(rates) / len(rates) if rates else None
    step = int(payload["step"])
    remaining = (planned - step) if planned else None
    hours = (remaining * batch / img_s / 3600) if (remaining is not None and img_s) else None
    return {
        "name": files.name, "source": str(source), "step": step, "planned_steps": planned,
        "epoch": int(payload["epoch"]), "images_seen": step * batch,
        "best_metric": payload.get("best_metric"), "metric": payload.get("metric"),
        "validations": vals, "recent_img_s": img_s,
        "hours_left_at_recent_rate": None if hours is None or not math.isfinite(hours) else round(hours, 1),
    }  # fmt: skip


def require_config(path: Path) -> None:
    """Fail early with the fix when the campaign config is missing."""
    if not Path(path).is_file():
        raise ConfigError(f"{path}: campaign config not found; run from the repository root or pass --config")
