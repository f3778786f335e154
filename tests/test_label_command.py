"""`stagepose data label`: labelling runs (resumable, Ctrl-C safe), person boxes, scoring, and MediaPipe itself.

The MediaPipe tests run the real model on real LSPET images when mediapipe is installed
(``make install-teacher``; CI's ``make install-dev`` includes it) and skip with the reason otherwise.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from stagepose.cli import main
from stagepose.data.label import entry_keypoints, label_entries, spec_entries, write_person_boxes
from stagepose.data.label_score import score_labels
from stagepose.data.mediapipe_pose import NUM_LANDMARKS, landmarks_to_mpii
from stagepose.data.registry import build_dataset
from stagepose.data.teacher_labels import TeacherInfo, read_labels
from stagepose.errors import DataError
from stagepose.skeleton import NUM_JOINTS, Joint

LSPET = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "lspet"
needs_lspet = pytest.mark.skipif(not (LSPET / "joints.mat").is_file(), reason="../shared/data/lspet is absent")
needs_mediapipe = pytest.mark.skipif(
    importlib.util.find_spec("mediapipe") is None,
    reason="mediapipe is not installed (make install-teacher: pip install --no-deps mediapipe==0.10.21 absl-py attrs)",
)
INFO = TeacherInfo(name="fake", software="test 0", mode="image")


class FakeModel:
    """A teacher that puts every joint at the image centre, with a fixed confidence; counts its calls and
    can be told to fail (Ctrl-C) on a given call."""

    def __init__(self, interrupt_at: int | None = None) -> None:
        self.calls = 0
        self.interrupt_at = interrupt_at

    def __call__(self, image_rgb: np.ndarray) -> np.ndarray | None:
        self.calls += 1
        if self.calls == self.interrupt_at:
            raise KeyboardInterrupt
        h, w = image_rgb.shape[:2]
        out = np.zeros((NUM_JOINTS, 3))
        out[:] = [w / 2.0, h / 2.0, 0.8]
        return out


@needs_lspet
def test_labelling_is_resumable_and_keeps_work_on_ctrl_c(tmp_path: Path) -> None:
    entries = spec_entries([f"lspet:{LSPET}@0:6"])
    out = tmp_path / "labels.json"
    with pytest.raises(KeyboardInterrupt):
        label_entries(entries, FakeModel(interrupt_at=4), INFO, out, specs=["a"], progress=False)
    assert len(read_labels(out)) == 3  # the three finished before Ctrl-C are on disk
    model = FakeModel()
    report = label_entries(entries, model, INFO, out, specs=["a"], progress=False)
    assert (report.labelled, report.already, model.calls) == (3, 3, 3)  # the same command continues
    labels = read_labels(out)
    assert set(labels.labels) == {e.source_id for e in entries}
    first = cv2.imread(str(entries[0].image))
    np.testing.assert_allclose(labels.labels[entries[0].source_id][0], [first.shape[1] / 2, first.shape[0] / 2, 0.8],
                               atol=0.06)  # fmt: skip
    with pytest.raises(DataError, match="holds labels by fake.*--overwrite"):
        label_entries(entries, FakeModel(), TeacherInfo(name="other", software="x", mode="image"), out, progress=False)
    report = label_entries(entries[:2], FakeModel(), TeacherInfo(name="other", software="x", mode="image"), out,
                           overwrite=True, progress=False)  # fmt: skip
    assert report.labelled == 2 and len(read_labels(out)) == 2


@needs_lspet
def test_crop_mode_maps_back_to_image_pixels() -> None:
    entry = spec_entries([f"lspet:{LSPET}@0:1"])[0]
    image = cv2.cvtColor(cv2.imread(str(entry.image)), cv2.COLOR_BGR2RGB)
    # the fake model answers the centre of what it sees: the crop's centre is the entry's box centre
    keypoints = entry_keypoints(FakeModel(), image, entry, "crop")
    assert keypoints is not None
    np.testing.assert_allclose(keypoints[0, :2], entry.center, atol=0.51)
    both = entry_keypoints(FakeModel(), image, entry, "both")
    assert both is not None and both.shape == (NUM_JOINTS, 3)


def test_landmark_mapping() -> None:
    rng = np.random.default_rng(0)
    landmarks = np.column_stack([rng.uniform(0, 500, (NUM_LANDMARKS, 2)), rng.uniform(0.3, 1.0, NUM_LANDMARKS)])
    mpii = landmarks_to_mpii(landmarks)
    # MediaPipe's left is the person's left, as MPII's: index 15 is LEFT_WRIST, 28 RIGHT_ANKLE
    np.testing.assert_allclose(mpii[Joint.l_wrist], landmarks[15])
    np.testing.assert_allclose(mpii[Joint.r_ankle], landmarks[28])
    np.testing.assert_allclose(mpii[Joint.pelvis, :2], (landmarks[23, :2] + landmarks[24, :2]) / 2)
    assert mpii[Joint.pelvis, 2] == min(landmarks[23, 2], landmarks[24, 2])
    assert mpii[Joint.head_top, 2] == landmarks[[2, 5, 7, 8, 9, 10], 2].min()
    # an upright head: the head top is above the ears, the upper neck between shoulders and ears
    face = np.zeros((NUM_LANDMARKS, 3))
    face[:, 2] = 1.0
    face[[11, 12], :2] = [[80, 200], [120, 200]]  # shoulders
    face[[7, 8], :2] = [[90, 120], [110, 120]]  # ears
    face[[2, 5], :2] = [[95, 115], [105, 115]]  # eyes
    face[[9, 10], :2] = [[97, 135], [103, 135]]  # mouth
    mpii = landmarks_to_mpii(face)
    assert mpii[Joint.head_top, 1] < 115 and mpii[Joint.head_top, 0] == pytest.approx(100)
    assert 120 < mpii[Joint.upper_neck, 1] < 200
    face[7, 0] = np.nan
    assert landmarks_to_mpii(face)[Joint.head_top, 2] == 0 and np.isnan(landmarks_to_mpii(face)[Joint.head_top, 0])


def test_person_boxes_from_labels(tmp_path: Path) -> None:
    frames = tmp_path / "frames"
    frames.mkdir()
    for name in ("a.jpg", "b.jpg"):
        cv2.imwrite(str(frames / name), np.zeros((100, 200, 3), np.uint8))
    entries = spec_entries([f"frames:{frames}"])
    keypoints = np.zeros((NUM_JOINTS, 3))
    keypoints[:, :2] = np.linspace([20, 10], [60, 90], NUM_JOINTS)
    keypoints[:, 2] = 0.9
    keypoints[0] = [190, 95, 0.1]  # a guess far away, not sure: left out of the box
    from stagepose.data.teacher_labels import TeacherLabels

    labels = TeacherLabels(teacher=INFO, labels={"frames:a.jpg#0": keypoints, "frames:b.jpg#0": None})
    assert write_person_boxes(labels, entries, tmp_path / "boxes.json") == 1
    boxes = json.loads((tmp_path / "boxes.json").read_text())
    lo, hi = keypoints[1:, :2].min(axis=0), keypoints[1:, :2].max(axis=0)  # the sure joints' bounding box
    assert boxes.keys() == {"a.jpg", "b.jpg"} and boxes["b.jpg"] == []
    np.testing.assert_allclose(boxes["a.jpg"], [[*lo, *(hi - lo)]], atol=0.06)
    boxed = build_dataset(f"frames:{frames}?boxes={tmp_path / 'boxes.json'}", split="train", input_size=(64, 64))
    assert [e.source_id for e in boxed.entries] == ["frames:a.jpg#0"]  # same key: the labels still match


@needs_lspet
def test_label_score_of_a_perfect_teacher_is_100(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dataset = build_dataset(f"lspet:{LSPET}@0:20", split="train", input_size=(64, 64))

    from stagepose.data.teacher_labels import TeacherLabels, no_opinion, write_labels

    labels = {}
    for entry in dataset.entries[:10]:
        keypoints = no_opinion()
        keypoints[:, :2], keypoints[:, 2] = entry.joints, entry.visible
        labels[entry.source_id] = keypoints
    path = write_labels(tmp_path / "l.json", TeacherLabels(teacher=INFO, labels=labels))
    score = score_labels(read_labels(path), dataset)
    assert (score.entries, score.with_labels, score.missing) == (20, 10, 10)
    assert 0 < score.result.groups["mean"] < 100  # the unlabelled half counts as misses
    assert main(["data", "label-score", str(path), "--data", f"lspet:{LSPET}@0:10", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["groups"]["mean"] == 100.0 and report["with_labels"] == 10


def test_cli_label_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["data", "label", "--data", "frames:x", "--out", str(tmp_path / "l.json"), "--teacher", "openpose"])
    assert main(["data", "label", "--data", f"frames:{tmp_path / 'none'}", "--out", str(tmp_path / "l.json")]) == 2
    assert "frame folder not found" in capsys.readouterr().err


# --- real MediaPipe -----------------------------------------------------------------------------------------


@needs_lspet
@needs_mediapipe
def test_mediapipe_labels_a_real_lspet_image_near_the_ground_truth(tmp_path: Path) -> None:
    """MediaPipe Pose from the installed wheel (no download) on LSPET images: most joints within PCK@0.2."""
    from stagepose.data.mediapipe_pose import MediaPipePose

    entries = spec_entries([f"lspet:{LSPET}@0:3"])
    with MediaPipePose() as pose:
        image = cv2.cvtColor(cv2.imread(str(entries[0].image)), cv2.COLOR_BGR2RGB)
        landmarks = pose(image)
        assert landmarks is not None and landmarks.shape == (NUM_LANDMARKS, 3)
        assert pose(np.zeros((64, 64, 3), np.uint8)) is None  # nobody in a black image
    out = tmp_path / "l.json"
    assert main(["data", "label", "--data", f"lspet:{LSPET}@0:8", "--out", str(out), "--quiet"]) == 0
    labels = read_labels(out)
    assert labels.teacher.software == "mediapipe 0.10.21" and labels.teacher.mode == "both"
    score = score_labels(labels, build_dataset(f"lspet:{LSPET}@0:8", split="train", input_size=(64, 64)))
    # measured: 63.8 % on these 8 images, 68.5 % on the first 200 (training/README.md)
    assert score.with_labels == 8 and score.result.groups["mean"] > 50.0


@needs_lspet
def test_mediapipe_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    import builtins

    real_import = builtins.__import__

    def no_mediapipe(name: str, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        if name.startswith("mediapipe"):
            raise ImportError("No module named 'mediapipe'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_mediapipe)
    assert main(["data", "label", "--data", f"lspet:{LSPET}@0:2", "--out", str(tmp_path / "l.json")]) == 2
    assert "make install-teacher" in capsys.readouterr().err
    assert not (tmp_path / "l.json").exists()
