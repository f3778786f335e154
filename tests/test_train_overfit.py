"""The whole training path learns: overfitting 8 real LSPET images drives their PCK@0.2 from chance to high.

If the targets, the loss, the optimiser, the decoding or the mapping back to image pixels were wrong,
PCK@0.2 on the training images themselves would stay near chance. lshm-2 at 128x128, RMSprop (the paper's
optimiser) at lr 1e-3, no augmentation, 60 steps: about 30 s on one CPU core.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_train_loop import LSPET, needs_lspet, write_config

from stagepose.codec import HeatmapCodec
from stagepose.data import build_dataset
from stagepose.models import build_model
from stagepose.train.config import load_experiment
from stagepose.train.curves import read_log
from stagepose.train.evaluate import evaluate_checkpoint, make_loader, predict, score
from stagepose.train.loop import train

IMAGES = f"lspet:{LSPET}@0:8"
STEPS = 60


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@needs_lspet
def test_tiny_overfit_drives_pck_up(tmp_path: Path) -> None:
    codec = HeatmapCodec(input_size=(128, 128), heatmap_size=(32, 32))
    dataset = build_dataset(IMAGES, split="val", input_size=(128, 128), codec=codec)
    torch.manual_seed(3)
    untrained = build_model("lshm-2")
    before = score(predict(untrained, make_loader(dataset, 8, 0, torch.device("cpu")), codec, torch.device("cpu")))
    # the same 8 images 5 times per epoch: 5 steps per epoch keeps the per-epoch saving and plotting small
    config = load_experiment(
        write_config(tmp_path, "overfit", train=[IMAGES] * 5, val=IMAGES),
        [f"train.max_steps={STEPS}", "train.val_every=1000", "train.log_every=5", "data.input_size=128",
         "data.batch_size=8", "data.augment=null", "optim.name=rmsprop", "optim.lr=1e-3"],
    )  # fmt: skip
    result = train(config, progress=False)
    losses = [r["loss"] for r in read_log(result.out_dir / "log.csv") if r["loss"] is not None]
    after = evaluate_checkpoint(result.best_weights, IMAGES, device="cpu", progress=False, batch_size=8)
    print(f"PCK@0.2 on the 8 training images: {before.groups['mean']:.1f}% untrained -> "
          f"{after.result.groups['mean']:.1f}% after {STEPS} steps; loss {losses[0]:.4f} -> {losses[-1]:.4f}")
    assert before.groups["mean"] < 20.0
    assert after.result.name == "PCK@0.2" and after.input_size == (128, 128)
    assert after.result.groups["mean"] > 60.0
    # `stagepose eval` on the saved weights reproduces the loop's own validation
    assert after.result.groups["mean"] == pytest.approx(result.best_metric, abs=1e-6)
    assert losses[-1] < 0.1 * losses[0]
