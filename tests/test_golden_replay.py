"""Golden regression on real footage: the replay of the bundled demo keeps its keypoints.

`stagepose replay` of ``show_configs/demo.yaml`` over ``media/pose2sim_cam01.mp4`` (ONNX Runtime on the
CPU, one thread, so the sums run in one order) must give the raw and smoothed joints of every frame
stored in ``tests/golden/demo_replay_keypoints.json`` within ``TOL_PX``. A change that moves poses
(model, crop, decode, tracking, smoothing) fails here. The golden is keyed by the shipped model's
sha256 (from its sidecar): a new model gives one 'regenerate' message instead of pixel diffs.

Regenerate after an intended change:  STAGEPOSE_REGEN_GOLDEN=1 pytest tests/test_golden_replay.py
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
import types
from pathlib import Path

import numpy as np
import pytest
from show_support import DEMO_CLIP, REPO

from stagepose.show.config import load_show
from stagepose.show.record import read_record
from stagepose.show.replay import run_replay

GOLDEN = Path(__file__).with_name("golden") / "demo_replay_keypoints.json"
DEMO_SHOW = REPO / "show_configs" / "demo.yaml"
REGENERATE = "regenerate it with STAGEPOSE_REGEN_GOLDEN=1 pytest tests/test_golden_replay.py (and commit it)"
# 1 px in a 1080x1920 frame. Float noise between CPUs and ONNX Runtime builds moves a joint by ~1e-3 px;
# any real change moves joints by about a heatmap cell, which is 4 model-input pixels = ~30 image pixels
# at the demo's ~1000 px crop (sub-pixel refinement makes smaller but still >> 1 px steps). The golden
# is rounded to 0.01 px.
TOL_PX = 1.0
# The clip's capture times are its stream times anchored to the wall clock at the first frame. At Unix
# times (~1.7e9 s) a double resolves 2.4e-7 s, so the frame gaps the smoother sees wobble by that much
# with the start time, and a joint unseen for exactly `lost_after_s` (30 frames at 60 fps) may or may not
# count as lost. The golden pins the anchor so that it compares poses, not start times.
PINNED_WALL_CLOCK = 1_700_000_000.0


def _model_sha256(show_model: Path) -> str:
    return str(json.loads(show_model.with_suffix(".json").read_text())["onnx_sha256"])


def _replay_keypoints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, list]:
    from stagepose.show.sources import pyav_source

    pinned = types.SimpleNamespace(time=lambda: PINNED_WALL_CLOCK, monotonic=time.monotonic, sleep=time.sleep)
    monkeypatch.setattr(pyav_source, "time", pinned)
    show = load_show(DEMO_SHOW, replay_inputs=1)
    show = dataclasses.replace(show, model=dataclasses.replace(show.model, threads=1))
    run_replay(show, [DEMO_CLIP], tmp_path / "replay", progress=False)
    frames = [r for r in read_record(tmp_path / "replay" / "keypoints.jsonl") if r["type"] == "frame"]
    return {
        "seq": [r["seq"] for r in frames],
        "status": [r["status"] for r in frames],
        "raw": [r["raw"] for r in frames],
        "smoothed": [r["smoothed"] for r in frames],
    }


def _array(points: list) -> np.ndarray:
    return np.array([[[np.nan if v is None else v for v in joint] for joint in frame] for frame in points], float)


def test_demo_replay_keypoints_match_the_golden(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sha = _model_sha256(load_show(DEMO_SHOW).resolve(load_show(DEMO_SHOW).model.path))
    got = _replay_keypoints(tmp_path, monkeypatch)
    if os.environ.get("STAGEPOSE_REGEN_GOLDEN") == "1":
        GOLDEN.parent.mkdir(exist_ok=True)
        golden = {"model_onnx_sha256": sha, "clip": DEMO_CLIP.name, "show": DEMO_SHOW.name, "tol_px": TOL_PX, **got}
        GOLDEN.write_text(json.dumps(golden, separators=(",", ":")) + "\n")
        pytest.skip(f"regenerated {GOLDEN}")
    assert GOLDEN.is_file(), f"{GOLDEN} is missing; {REGENERATE}"
    golden = json.loads(GOLDEN.read_text())
    if golden["model_onnx_sha256"] != sha:
        pytest.fail(f"the shipped model changed (sha256 {sha[:12]}, golden made with "
                    f"{golden['model_onnx_sha256'][:12]}): poses are expected to move; {REGENERATE}")  # fmt: skip
    assert got["seq"] == golden["seq"], "the replay no longer processes every frame of the clip"
    for key in ("raw", "smoothed"):
        have, want = _array(got[key]), _array(golden[key])
        assert (np.isnan(have) == np.isnan(want)).all(), f"{key}: other joints are unknown than in the golden"
        diff = np.nan_to_num(np.abs(have - want))
        worst = np.unravel_index(int(np.argmax(diff)), diff.shape)
        assert diff.max() <= TOL_PX, (
            f"{key} joints moved: {diff.max():.2f} px (> TOL_PX {TOL_PX}) at frame {worst[0]}, joint {worst[1]}; "
            f"{int((diff.max(axis=2) > TOL_PX).sum())} joints over the tolerance. If the change is intended "
            f"(or the model was replaced), {REGENERATE}"
        )
    assert got["status"] == golden["status"], "tracked/lost changed for some frames"
