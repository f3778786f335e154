"""``stagepose campaign resume|save|status``: the long training run that spans sessions (``train.campaign``)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from stagepose.train.campaign import DEFAULT_CONFIG, SNAPSHOT_DIR

if TYPE_CHECKING:
    from stagepose.train.campaign import CampaignFiles


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "campaign",
        help="continue, snapshot or inspect the long training run that spans sessions",
        description="The campaign is one `stagepose train` run too long for one sitting. `resume` continues it "
        "from runs/NAME/last.pt or the committed snapshot training/campaign/NAME.pt, whichever is further; "
        "`save` writes that snapshot (commit it); `status` says where it stands. Run `resume` in the background "
        "at low priority, on two CPU cores as two one-thread processes: `nice -n 5 torchrun --standalone "
        "--nproc_per_node=2 -m stagepose.cli campaign resume --no-progress > runs/campaign.out 2>&1 &`. "
        "SIGTERM (kill) or SIGINT saves the step reached before stopping.",
    )
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG,
                        help=f"the campaign's experiment config ({DEFAULT_CONFIG})")  # fmt: skip
    parser.add_argument("--snapshot-dir", type=Path, default=SNAPSHOT_DIR,
                        help=f"where the committed snapshot, log and curves live ({SNAPSHOT_DIR})")  # fmt: skip
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    resume = actions.add_parser("resume", help="continue the run (or start it) where it got furthest")
    resume.add_argument("--no-progress", action="store_true", help="no progress bar")
    resume.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="overrides of the stored config, e.g. data.train=lspet:/data/lspet")  # fmt: skip
    resume.set_defaults(func=_resume)
    save = actions.add_parser("save", help="write the committed snapshot if the run moved past it")
    save.add_argument("--force", action="store_true", help="write it even if the run is not further along")
    save.set_defaults(func=_save)
    status = actions.add_parser("status", help="steps done and planned, validation so far, time left")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(func=_status)


def _files(args: argparse.Namespace) -> CampaignFiles:
    from stagepose.train.campaign import campaign_files, require_config

    require_config(args.config)
    return campaign_files(args.config, args.snapshot_dir)


def _resume(args: argparse.Namespace) -> int:
    from stagepose.train.campaign import plan_resume
    from stagepose.train.loop import run_training

    files = _files(args)
    main_rank = int(os.environ.get("RANK", "0")) == 0  # under torchrun only rank 0 restores the log and talks
    plan = plan_resume(files, restore_log=main_rank)
    if main_rank:
        print(f"campaign {files.name}: {plan.reason}", flush=True)
    if plan.checkpoint is None:
        if main_rank:
            print(f"campaign {files.name}: starting from {args.config}", flush=True)
        result = run_training(args.config, args.overrides, progress=not args.no_progress)
    else:
        result = run_training(None, args.overrides, resume=plan.checkpoint, progress=not args.no_progress)
    if main_rank:
        print(f"campaign {files.name}: stopped at step {result.steps}; `stagepose campaign save` snapshots it")
    return 0


def _save(args: argparse.Namespace) -> int:
    from stagepose.train.campaign import save

    report = save(_files(args), force=args.force)
    print(f"{report.snapshot}: {report.reason} ({report.size_mb:.1f} MB)")
    return 0


def _status(args: argparse.Namespace) -> int:
    from stagepose.train.campaign import status

    info = status(_files(args))
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    if info.get("source") is None:
        print(f"campaign {info['name']}: {info['reason']}")
        return 0
    planned = info["planned_steps"] or "?"
    print(f"campaign {info['name']}: step {info['step']} of {planned} (epoch {info['epoch']}, "
          f"{info['images_seen']:,} images) from {info['source']}")  # fmt: skip
    for step, value in info["validations"][-8:]:
        print(f"  step {step:>6}: {info['metric'] or 'val'} {value:.2f}%")
    if info["recent_img_s"]:
        left = info["hours_left_at_recent_rate"]
        print(f"  recent speed {info['recent_img_s']:.1f} images/s on this machine"
              + (f"; about {left} h of training left at that speed" if left is not None else ""))  # fmt: skip
    return 0
