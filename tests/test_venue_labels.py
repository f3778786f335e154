"""The venue recipe end to end with no hand labels: rehearsal clip -> frames -> MediaPipe labels and person boxes
-> fine-tune of the shipped student taught by the labels (training/lshm2_venue-finetune.yaml, tiny settings)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import pytest

from stagepose.cli import main
from stagepose.data.teacher_labels import read_labels
from stagepose.train.checkpoints import load_checkpoint
from stagepose.train.curves import read_log

REPO = Path(__file__).resolve().parents[1]
CLIP = REPO / "media" / "pose2sim_cam01.mp4"  # one performer on a treadmill stage, 1080x1920 portrait, 1.7 s
needs_mediapipe = pytest.mark.skipif(
    importlib.util.find_spec("mediapipe") is None,
    reason="mediapipe is not installed (make install-teacher: pip install --no-deps mediapipe==0.10.21 absl-py attrs)",
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.mark.slow
@needs_mediapipe
@pytest.mark.skipif(not CLIP.is_file(), reason=f"{CLIP} is absent")
def test_venue_recipe_from_a_clip_without_hand_labels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    engines_before = _digests(REPO / "engines")
    frames = tmp_path / "venue" / "unlabelled"
    assert main(["data", "extract-frames", "--video", str(CLIP), "--out", str(frames), "--every", "0.5",
                 "--quiet"]) == 0  # fmt: skip
    labels_path, boxes_path = tmp_path / "venue" / "teacher_labels.json", tmp_path / "venue" / "boxes.json"
    assert main(["data", "label", "--data", f"frames:{frames}", "--out", str(labels_path),
                 "--boxes-out", str(boxes_path), "--quiet"]) == 0  # fmt: skip
    labels = read_labels(labels_path)
    assert len(labels) == 4 and sum(labels.keypoints(k) is not None for k in labels.labels) >= 3
    boxes = json.loads(boxes_path.read_text())
    for name, found in boxes.items():  # the performer: a tall box in the upper half of the portrait frame
        for _x, y, w, h in found:
            assert 400 < h < 1300 and w < h and y < 700, (name, found)
    capsys.readouterr()
    out = tmp_path / "run"
    code = main(["train", "--config", str(REPO / "training" / "lshm2_venue-finetune.yaml"), "--no-progress",
                 f'data.train=["frames:{frames}?boxes={boxes_path}"]', "data.val=null",
                 f"teacher.labels={labels_path}", f"train.out_dir={out}", "train.max_steps=2", "train.log_every=1",
                 "train.device=cpu", "data.workers=0", "data.batch_size=2", "data.input_size=64"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    rows = [r for r in read_log(out / "log.csv") if r["loss"] is not None]
    assert len(rows) == 2 and all(r["kd_loss"] and r["kd_loss"] > 0 for r in rows)
    payload = load_checkpoint(out / "last.pt")
    assert payload["config"]["teacher"]["labels"] == str(labels_path)
    assert payload["config"]["model"]["init"] == "engines/lshm2_campaign_lspet_128.safetensors"  # the shipped student
    assert (out / "best.safetensors").is_file()
    assert _digests(REPO / "engines") == engines_before  # nothing shipped was touched
