"""Training data: loaders on real files (LSPET, the MPII fixture, COCO-keypoints files written here with a real
image), the agreed sample, flip augmentation, reproducibility and bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from torch.utils.data import DataLoader

from stagepose.cli import main
from stagepose.codec import HeatmapCodec
from stagepose.data.augment import AugmentConfig
from stagepose.data.registry import build_dataset
from stagepose.data.spec import parse_spec
from stagepose.errors import ConfigError, DataError
from stagepose.skeleton import COCO_KEYPOINT_NAMES, LSP_TO_MPII, Joint, flip_permutation
from stagepose.transforms import apply_affine

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
LSPET = DATA / "lspet"
MPII = DATA / "mpii_fixture"
TOL_IMAGE_PX = 1.0
EDGE_PX = 24  # 3 sigma of the target, in input pixels: nearer the edge the Gaussian is cut off

needs_lspet = pytest.mark.skipif(not (LSPET / "joints.mat").is_file(), reason="../shared/data/lspet is absent")
needs_mpii = pytest.mark.skipif(not (MPII / "test_mpii.json").is_file(), reason="../shared/data/mpii_fixture is absent")
NO_AUGMENT = dict(scale=0.0, rotation_prob=0.0, translate=0.0, flip_prob=0.0, half_body_prob=0.0, brightness=0.0,
                  contrast=0.0, saturation=0.0, color_cast=0.0, occlusion_prob=0.0)  # fmt: skip


def lspet_mat() -> np.ndarray:
    """(N, 14, 3) [x, y, visible] of the real LSPET file."""
    return scipy.io.loadmat(str(LSPET / "joints.mat"))["joints"].transpose(2, 0, 1)


def decoded_in_image(dataset, sample) -> np.ndarray:  # noqa: ANN001 - test helper
    coords, _ = dataset.codec.decode(sample["heatmaps"].numpy())
    return dataset.codec.heatmap_to_image(coords, sample["image_to_input"].numpy().astype(np.float64))


def inner(sample: dict, size: int) -> np.ndarray:
    """Joints with a target that lies at least EDGE_PX inside the crop."""
    pts = apply_affine(sample["joints"].numpy().astype(np.float64), sample["image_to_input"].numpy().astype(np.float64))
    return (sample["target_weight"].numpy() > 0) & (pts >= EDGE_PX).all(1) & (pts <= size - 1 - EDGE_PX).all(1)


# --- spec grammar ------------------------------------------------------------------------------------------


def test_spec_grammar() -> None:
    spec = parse_spec("lspet:data/lspet@8500:9000")
    assert spec.kind == "lspet" and spec.path == Path("data/lspet") and (spec.start, spec.end) == (8500, 9000)
    assert spec.select(9000, "val", 500) == range(8500, 9000) == spec.select(9000, "train", 500)
    tail = parse_spec("lspet:d@-500:")
    assert tail.select(9000, "train", 500) == range(8500, 9000)
    plain = parse_spec("lspet:d?val=1000&layout=lspet")
    assert plain.select(9000, "val", 500) == range(8000, 9000) and plain.select(9000, "train", 500) == range(8000)
    assert parse_spec("lspet:d").select(9000, "val", 500) == range(8500, 9000)
    assert parse_spec("mpii:a/valid.json").select(10, "val", None) == range(10)  # the file is the split
    both = parse_spec("coco:exp/annotations/p.json:exp/images?category=performer")
    assert both.image_dir == Path("exp/images") and both.path == Path("exp/annotations/p.json")
    assert both.options == {"category": "performer"}
    assert parse_spec("coco:C:/venue/p.json").image_dir is None  # a drive letter is not an image folder


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lspt:data", "unknown kind 'lspt'"),
        ("data/lspet", "expected KIND:PATH"),
        ("lspet:d@85a:9000", "range '@85a:9000'"),
        ("lspet:d?boxes=b.json", "unknown option 'boxes' for lspet"),
        ("lspet:d@0:10?val=5", "either @START:END or ?val=N"),
        ("lspet:d?val=-3", "val='-3'"),
        ("lsp:d?layout=coco", "layout must be"),
    ],
)
def test_spec_errors_list_the_allowed_forms(text: str, message: str) -> None:
    with pytest.raises(DataError, match="data spec") as info:
        parse_spec(text)
    assert message in str(info.value)
    if "kind" in message or "KIND" in message:
        assert "mpii:ANNOTATIONS.json[:IMAGE_DIR]" in str(info.value) and "frames:DIR" in str(info.value)


# --- LSPET (real) ------------------------------------------------------------------------------------------


@needs_lspet
def test_lspet_splits_and_the_agreed_sample() -> None:
    val = build_dataset(f"lspet:{LSPET}", split="val")
    assert len(val) == 500 and val[0]["source_id"] == "lspet:im08501.jpg" and val.metric == "pck"
    sample = val[0]
    shapes = {k: tuple(v.shape) for k, v in sample.items() if isinstance(v, torch.Tensor)}
    assert shapes == {"image": (3, 256, 256), "heatmaps": (16, 64, 64), "target_weight": (16,), "joints": (16, 2),
                      "visible": (16,), "image_to_input": (2, 3), "head_size": ()}  # fmt: skip
    assert all(v.dtype == torch.float32 for v in sample.values() if isinstance(v, torch.Tensor))
    assert sample["labelled"] is True and torch.isnan(sample["head_size"])
    batch = next(iter(DataLoader(val, batch_size=4)))  # default collate
    assert batch["image"].shape == (4, 3, 256, 256) and batch["labelled"].dtype == torch.bool
    small = build_dataset(f"lspet:{LSPET}@8500:8510", split="train", input_size=(128, 128))
    assert len(small) == 10 and small[0]["heatmaps"].shape == (16, 32, 32) and small[0]["image"].shape == (3, 128, 128)


@needs_lspet
@pytest.mark.parametrize("index", [0, 1, 4242, 8999])
def test_lspet_joints_map_back_to_the_mat_within_a_pixel(index: int) -> None:
    mat = lspet_mat()[index]
    dataset = build_dataset(f"lspet:{LSPET}@{index}:{index + 1}", split="val")
    sample = dataset[0]
    assert sample["source_id"] == f"lspet:im{index + 1:05d}.jpg"
    joints, visible = sample["joints"].numpy(), sample["visible"].numpy()
    decoded = decoded_in_image(dataset, sample)
    ok = inner(sample, 256)
    for k, mpii in enumerate(LSP_TO_MPII):
        assert visible[mpii] == (mat[k, 2] > 0)
        if mat[k, 2] > 0:
            np.testing.assert_allclose(joints[mpii], mat[k, :2], atol=1e-3)
            if ok[mpii]:
                assert np.linalg.norm(decoded[mpii] - mat[k, :2]) <= TOL_IMAGE_PX
    assert ok.sum() >= 8
    for derived, (a, b) in ((Joint.pelvis, (Joint.r_hip, Joint.l_hip)),
                            (Joint.thorax, (Joint.r_shoulder, Joint.l_shoulder))):  # fmt: skip
        both = visible[a] > 0 and visible[b] > 0
        assert visible[derived] == both
        if both:
            np.testing.assert_allclose(joints[derived], (joints[a] + joints[b]) / 2, atol=1e-3)
        else:
            assert sample["target_weight"][derived] == 0 and np.all(joints[derived] == 0)


@needs_lspet
def test_lspet_pelvis_is_masked_where_a_hip_is_missing() -> None:
    mat = lspet_mat()
    missing_hip = int(np.flatnonzero((mat[:, 2, 2] == 0) & (mat[:, 3, 2] > 0))[0])  # right hip unlabelled
    sample = build_dataset(f"lspet:{LSPET}@{missing_hip}:{missing_hip + 1}", split="val")[0]
    assert sample["visible"][Joint.r_hip] == 0 and sample["visible"][Joint.pelvis] == 0
    assert sample["target_weight"][Joint.pelvis] == 0 and sample["heatmaps"][Joint.pelvis].max() == 0


@needs_lspet
def test_augmented_samples_keep_the_decode_invariant() -> None:
    dataset = build_dataset(f"lspet:{LSPET}@0:40", split="train", augment=AugmentConfig(), seed=3)
    checked = 0
    for i in range(len(dataset)):
        sample = dataset[i]
        ok = inner(sample, 256)
        error = np.linalg.norm(decoded_in_image(dataset, sample) - sample["joints"].numpy(), axis=1)[ok]
        assert np.all(error <= TOL_IMAGE_PX), (sample["source_id"], error.max())
        checked += ok.sum()
    assert checked > 200


@needs_lspet
def test_flip_swaps_left_and_right() -> None:
    spec = f"lspet:{LSPET}@0:20"
    plain = build_dataset(spec, split="train", augment=AugmentConfig(**NO_AUGMENT))
    flipped = build_dataset(spec, split="train", augment=AugmentConfig(**{**NO_AUGMENT, "flip_prob": 1.0}))
    index = next(i for i in range(20) if plain[i]["target_weight"][[Joint.r_wrist, Joint.l_wrist]].all())
    a, b = plain[index], flipped[index]
    # the flipped crop is the plain crop mirrored, pixel for pixel (to 1 grey level: OpenCV's fixed-point
    # bilinear weights round mirrored sub-pixel positions differently)
    one_grey_level = 1.0 / 255 / 0.224 + 1e-4
    torch.testing.assert_close(b["image"], torch.flip(a["image"], dims=[2]), atol=one_grey_level, rtol=0)
    # the LEFT wrist's peak in the flipped crop sits where the RIGHT wrist was, mirrored
    codec = plain.codec
    right = codec.heatmap_to_input(codec.decode(a["heatmaps"].numpy())[0])[Joint.r_wrist]
    left_flipped = codec.heatmap_to_input(codec.decode(b["heatmaps"].numpy())[0])[Joint.l_wrist]
    np.testing.assert_allclose(left_flipped, [255 - right[0], right[1]], atol=0.5)
    perm = flip_permutation()
    assert torch.equal(b["joints"], a["joints"][perm]) and torch.equal(b["visible"], a["visible"][perm])
    assert torch.equal(b["target_weight"], a["target_weight"][perm])


@needs_lspet
def test_augmentation_is_reproducible_and_uses_no_global_random_state() -> None:
    spec = f"lspet:{LSPET}@0:8"
    one = build_dataset(spec, split="train", augment=AugmentConfig(), seed=7)
    two = build_dataset(spec, split="train", augment=AugmentConfig(), seed=7)
    np.random.seed(0)
    state = np.random.get_state()[1].copy()
    first = one[3]
    assert np.array_equal(np.random.get_state()[1], state)  # global numpy state untouched
    np.random.seed(1)
    assert torch.equal(first["image"], two[3]["image"])
    two.set_epoch(1)
    assert not torch.equal(first["image"], two[3]["image"])
    # two worker processes give the same batch as loading in this process
    direct = torch.stack([one[i]["heatmaps"] for i in range(8)])
    loaded = torch.cat([b["heatmaps"] for b in DataLoader(one, batch_size=2, num_workers=2)])
    assert torch.equal(direct, loaded)


def test_augment_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="flip_prob"):
        AugmentConfig(flip_prob=1.5)
    with pytest.raises(ValueError, match="occlusion_area"):
        AugmentConfig(occlusion_area=(0.3, 0.1))


@needs_lspet
def test_occlusion_and_colour_change_pixels_not_targets() -> None:
    spec = f"lspet:{LSPET}@0:4"
    plain = build_dataset(spec, split="train", augment=AugmentConfig(**NO_AUGMENT))[0]
    occluded = build_dataset(spec, split="train", augment=AugmentConfig(
        **{**NO_AUGMENT, "occlusion_prob": 1.0, "brightness": 0.3}))[0]  # fmt: skip
    assert not torch.equal(plain["image"], occluded["image"])
    assert torch.equal(plain["heatmaps"], occluded["heatmaps"])  # hidden joints keep their targets


# --- MPII fixture (real) -----------------------------------------------------------------------------------


@needs_mpii
def test_mpii_fixture_crop_convention_and_round_trip(tmp_path: Path) -> None:
    items = json.loads((MPII / "test_mpii.json").read_text())
    dataset = build_dataset(f"mpii:{MPII / 'test_mpii.json'}", split="val")
    assert len(dataset) == 5 and dataset.metric == "pck"  # no head boxes in this file
    for i, item in enumerate(items):
        sample = dataset[i]
        affine = sample["image_to_input"].numpy().astype(np.float64)
        s = item["scale"]
        # HRNet: box = scale * 200 * 1.25 px, centre 15 * scale px lower, 1-based -> 0-based
        assert affine[0, 0] == pytest.approx(256 / (s * 250), rel=1e-5)
        center = np.array(item["center"]) + [0, 15 * s] - 1
        np.testing.assert_allclose(apply_affine(center, affine), [128, 128], atol=1e-3)
        vis = np.array(item["joints_vis"]) > 0
        np.testing.assert_array_equal(sample["visible"].numpy() > 0, vis)
        gt = np.array(item["joints"]) - 1
        np.testing.assert_allclose(sample["joints"].numpy()[vis], gt[vis], atol=1e-3)
        ok = inner(sample, 256)
        error = np.linalg.norm(decoded_in_image(dataset, sample) - gt, axis=1)[ok & vis]
        assert error.size and error.max() <= TOL_IMAGE_PX
    # optional head boxes give the PCKh head size (0.6 x diagonal)
    for item in items:
        x, y = item["center"]
        item["headbox"] = [x - 30, y - 200, x + 10, y - 170]
    (tmp_path / "withhead.json").write_text(json.dumps(items))
    heads = build_dataset(f"mpii:{tmp_path / 'withhead.json'}:{MPII}", split="val")
    assert heads.metric == "pckh" and heads[0]["head_size"].item() == pytest.approx(0.6 * 50.0)


@needs_mpii
def test_mpii_bad_entries(tmp_path: Path) -> None:
    items = json.loads((MPII / "test_mpii.json").read_text())
    items[1]["image"] = "not_there.jpg"
    items[2]["joints_vis"] = [0] * 16
    (tmp_path / "a.json").write_text(json.dumps(items))
    dataset = build_dataset(f"mpii:{tmp_path / 'a.json'}:{MPII}", split="val")
    summary = dataset.summary()
    assert len(dataset) == 3 and summary.skipped == {"image file missing": 1, "no labelled joints": 1}
    assert "not_there.jpg" in str(summary)
    del items[0]["scale"]
    (tmp_path / "b.json").write_text(json.dumps(items))
    with pytest.raises(DataError, match=r"item 0: missing scale"):
        build_dataset(f"mpii:{tmp_path / 'b.json'}:{MPII}")
    (tmp_path / "c.json").write_text("[{\"image\": 1,,}]")
    with pytest.raises(DataError, match=r"c.json:1:\d+: not valid JSON"):
        build_dataset(f"mpii:{tmp_path / 'c.json'}")
    with pytest.raises(DataError, match="cannot find images"):
        shutil.copy(MPII / "test_mpii.json", tmp_path / "d.json")
        build_dataset(f"mpii:{tmp_path / 'd.json'}")


# --- COCO keypoints (written here, with a real LSPET image) ------------------------------------------------

MPII_LABELS = ["Right ankle", "Right knee", "Right hip", "Left hip", "Left knee", "Left ankle", "pelvis", "thorax",
               "neck", "head top", "right-wrist", "r_elbow", "right_shoulder", "left shoulder", "Left elbow",
               "left_wrist"]  # fmt: skip  (spellings as people type them in a labelling tool)


def coco_export(root: Path, skeleton: str, index: int = 0) -> tuple[Path, np.ndarray]:
    """A CVAT-style export (annotations/person_keypoints_default.json, images/default/NAME) of one real LSPET
    image, labelled with the .mat joints in the MPII-16 or COCO-17 skeleton. Returns the file and the
    (14, 3) .mat labels."""
    mat = lspet_mat()[index]
    name = f"im{index + 1:05d}.jpg"
    (root / "images" / "default").mkdir(parents=True)
    shutil.copy(LSPET / "images" / name, root / "images" / "default" / name)
    mpii = np.zeros((16, 3))
    for k, j in enumerate(LSP_TO_MPII):
        mpii[j] = [mat[k, 0], mat[k, 1], 2 if mat[k, 2] > 0 else 0]
    if skeleton == "mpii":
        names, points = MPII_LABELS, mpii
    else:
        names = list(COCO_KEYPOINT_NAMES)
        points = np.zeros((17, 3))
        points[0] = [mpii[Joint.head_top, 0], mpii[Joint.head_top, 1] + 15, 2]  # a nose: dropped
        for c, coco in enumerate(COCO_KEYPOINT_NAMES[5:], start=5):
            side, part = coco.split("_")
            points[c] = mpii[Joint[f"{side[0]}_{part}"]]
    xs, ys = mpii[mpii[:, 2] > 0, 0], mpii[mpii[:, 2] > 0, 1]
    data = {
        "images": [{"id": 5, "file_name": name, "width": 0, "height": 0}],
        "annotations": [
            {"id": 11, "image_id": 5, "category_id": 1, "iscrowd": 0, "keypoints": points.reshape(-1).tolist(),
             "bbox": [xs.min(), ys.min(), xs.max() - xs.min(), ys.max() - ys.min()]},
            {"id": 12, "image_id": 5, "category_id": 1, "iscrowd": 0, "keypoints": [0] * (3 * len(names)),
             "bbox": [0, 0, 10, 10]},
        ],
        "categories": [{"id": 1, "name": "person", "keypoints": names, "skeleton": []}],
    }
    path = root / "annotations" / "person_keypoints_default.json"
    path.parent.mkdir()
    path.write_text(json.dumps(data))
    return path, mat


@needs_lspet
@pytest.mark.parametrize("skeleton", ["mpii", "coco"])
def test_coco_keypoints_export(tmp_path: Path, skeleton: str) -> None:
    path, mat = coco_export(tmp_path, skeleton)
    dataset = build_dataset(f"coco:{path}", split="val")  # images found in ../images/default by name
    summary = dataset.summary()
    assert len(dataset) == 1 and summary.skipped == {"no labelled keypoints": 1}
    assert ("MPII-16" if skeleton == "mpii" else "COCO-17") in " ".join(summary.notes)
    sample = dataset[0]
    joints, visible = sample["joints"].numpy(), sample["visible"].numpy()
    for k, j in enumerate(LSP_TO_MPII):
        if skeleton == "coco" and j in (Joint.upper_neck, Joint.head_top):
            assert visible[j] == 0  # COCO has no neck or head top
        else:
            assert visible[j] == (mat[k, 2] > 0)
            if mat[k, 2] > 0:
                np.testing.assert_allclose(joints[j], mat[k, :2], atol=1e-3)
    assert visible[Joint.thorax] == (visible[Joint.r_shoulder] and visible[Joint.l_shoulder])
    ok = inner(sample, 256)
    error = np.linalg.norm(decoded_in_image(dataset, sample) - joints, axis=1)[ok]
    assert ok.sum() >= 6 and error.max() <= TOL_IMAGE_PX
    assert sample["source_id"] == "coco:im00001.jpg#11"


@needs_lspet
def test_label_studio_style_export(tmp_path: Path) -> None:
    """Label Studio's COCO export: one category "default" holding the KeyPointLabels, integer pixels, a tight
    keypoint bbox, upload names with a hash prefix, and a rectangle category beside it."""
    path, mat = coco_export(tmp_path / "cvat", "mpii")
    data = json.loads(path.read_text())
    data["categories"] = [{"id": 0, "name": "performer_box"}, {**data["categories"][0], "id": 1, "name": "default"}]
    data["images"][0]["file_name"] = "images/3f2a9c1e-im00001.jpg"
    data["annotations"][0]["keypoints"] = [round(v) for v in data["annotations"][0]["keypoints"]]
    data["annotations"].append({"id": 99, "image_id": 5, "category_id": 0, "bbox": [1, 1, 50, 50]})
    export = tmp_path / "ls" / "result.json"
    export.parent.mkdir()
    export.write_text(json.dumps(data))
    dataset = build_dataset(f"coco:{export}:{tmp_path / 'cvat' / 'images'}", split="val")
    assert len(dataset) == 1
    labelled = mat[:, 2] > 0
    got = dataset[0]["joints"].numpy()[[LSP_TO_MPII[k] for k in range(14) if labelled[k]]]
    np.testing.assert_allclose(got, np.round(mat[labelled, :2]), atol=1e-3)


@needs_lspet
def test_coco_bad_input(tmp_path: Path) -> None:
    path, _ = coco_export(tmp_path, "mpii")
    data = json.loads(path.read_text())
    data["categories"][0]["keypoints"][3] = "left_hipp"
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"unknown keypoint names \['left_hipp'\]"):
        build_dataset(f"coco:{path}")
    data["categories"][0]["keypoints"][3] = "left_hip"
    data["annotations"][0]["keypoints"] = [0] * 48  # every person empty
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match="no usable samples") as info:
        build_dataset(f"coco:{path}")
    assert "skipped 2: no labelled keypoints" in str(info.value)
    annotations, data["annotations"] = data["annotations"], []
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match="no annotations of category 'person'"):
        build_dataset(f"coco:{path}")
    data["annotations"] = annotations
    data["images"][0]["file_name"] = "elsewhere.jpg"
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match="give the image folder as coco:"):
        build_dataset(f"coco:{path}")


# --- LSP layouts and bad files -----------------------------------------------------------------------------


def small_lsp(root: Path, layout: str, count: int = 6) -> np.ndarray:
    """An LSP-style folder with the first ``count`` real LSPET images and labels in ``layout``."""
    mat = lspet_mat()[:count]  # (N, 14, 3)
    (root / "images").mkdir(parents=True)
    digits = 4 if layout == "lsp" else 5
    for i in range(count):
        shutil.copy(LSPET / "images" / f"im{i + 1:05d}.jpg", root / "images" / f"im{i + 1:0{digits}d}.jpg")
    array = mat.transpose(2, 1, 0) if layout == "lsp" else mat.transpose(1, 2, 0)
    scipy.io.savemat(str(root / "joints.mat"), {"joints": array})
    return mat


@needs_lspet
def test_lsp_layout_detected_by_shape_with_override(tmp_path: Path) -> None:
    mat = small_lsp(tmp_path / "lsp", "lsp")
    lsp = build_dataset(f"lsp:{tmp_path / 'lsp'}@0:6", split="val")
    assert "layout lsp detected from shape (3, 14, 6)" in str(lsp.summary())
    # LSP's flag marks occlusion: every joint is labelled, except coordinates far outside the image
    import cv2

    for i in range(6):
        h, w = cv2.imread(str(tmp_path / "lsp" / "images" / f"im{i + 1:04d}.jpg")).shape[:2]
        tol = 0.05 * max(w, h)
        inside = {LSP_TO_MPII[k] for k in range(14) if -tol <= mat[i, k, 0] <= w - 1 + tol
                  and -tol <= mat[i, k, 1] <= h - 1 + tol}  # fmt: skip
        assert {j for j in Joint if lsp[i]["visible"][j] > 0} - {Joint.pelvis, Joint.thorax} == inside
    forced = build_dataset(f"lsp:{tmp_path / 'lsp'}@0:6?layout=lspet", split="val")
    assert "layout lspet (given" in str(forced.summary())
    for i in range(6):
        labelled = {LSP_TO_MPII[k] for k in range(14) if mat[i, k, 2] > 0}
        assert {j for j in Joint if forced[i]["visible"][j] > 0} - {Joint.pelvis, Joint.thorax} == labelled
    lspet = build_dataset(f"lspet:{tmp_path / 'lsp'}@0:6?layout=lspet", split="val")
    assert torch.equal(lspet[2]["joints"], forced[2]["joints"])


@needs_lspet
def test_missing_and_damaged_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"joints.mat not found"):
        build_dataset(f"lspet:{tmp_path / 'nothing'}")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "joints.mat").write_bytes(b"MATLAB")
    with pytest.raises(DataError, match=r"broken/joints.mat: cannot read as a MATLAB file"):
        build_dataset(f"lspet:{tmp_path / 'broken'}")
    root = tmp_path / "set"
    small_lsp(root, "lspet")
    (root / "images" / "im00002.jpg").unlink()
    (root / "images" / "im00003.jpg").write_bytes(b"not a jpeg")
    dataset = build_dataset(f"lspet:{root}@0:6", split="val")
    summary = dataset.summary()
    assert len(dataset) == 4
    assert summary.skipped["image file missing"] == 1 and summary.skipped[
        "image file unreadable (not an image, or damaged)"] == 1  # fmt: skip
    assert "im00002.jpg" in str(summary)
    # a file damaged after the check: the sample is replaced by the next one and counted, no crash
    (root / "images" / "im00001.jpg").write_bytes(b"\xff\xd8\xff garbage")
    sample = dataset[0]
    assert sample["source_id"] == "lspet:im00004.jpg" and dataset.summary().load_failures == 1
    with pytest.raises(DataError, match="val=6 leaves no training entries"):
        build_dataset(f"lspet:{root}?val=6", split="train")
    with pytest.raises(DataError, match="goes past the 6 images"):
        build_dataset(f"lspet:{root}@3:9", split="train")


def test_build_dataset_rejects_mismatched_options(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="never augmented"):
        build_dataset(f"frames:{tmp_path}", split="val", augment=AugmentConfig())
    with pytest.raises(ConfigError, match="codec input_size"):
        build_dataset(f"frames:{tmp_path}", input_size=(128, 128), codec=HeatmapCodec())


# --- unlabelled frames -------------------------------------------------------------------------------------


@needs_lspet
def test_unlabelled_frames_with_and_without_boxes(tmp_path: Path) -> None:
    for i in (1, 2, 3):
        shutil.copy(LSPET / "images" / f"im{i:05d}.jpg", tmp_path / f"frame{i}.jpg")
    whole = build_dataset(f"frames:{tmp_path}", split="train", augment=AugmentConfig())
    assert len(whole) == 3 and whole.labelled is False
    sample = whole[0]
    assert sample["labelled"] is False and sample["heatmaps"].abs().sum() == 0 and sample["target_weight"].sum() == 0
    plain = build_dataset(f"frames:{tmp_path}", split="val")[0]
    import cv2

    h, w = cv2.imread(str(tmp_path / "frame1.jpg")).shape[:2]
    affine = plain["image_to_input"].numpy().astype(np.float64)
    assert affine[0, 0] == pytest.approx(256 / min(w, h))  # centre crop, aspect kept, nothing stretched
    np.testing.assert_allclose(apply_affine(np.array([(w - 1) / 2, (h - 1) / 2]), affine), [128, 128], atol=1e-6)
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({"frame1.jpg": [[10, 10, 50, 100], [60, 10, 50, 100]], "frame2.jpg": []}))
    boxed = build_dataset(f"frames:{tmp_path}?boxes={boxes}", split="val")
    assert len(boxed) == 2 and boxed.summary().skipped == {"frame not in the boxes file": 1}
    assert [boxed[i]["source_id"] for i in range(2)] == ["frames:frame1.jpg#0", "frames:frame1.jpg#1"]


# --- CLI ---------------------------------------------------------------------------------------------------


@needs_lspet
def test_cli_check_and_bad_spec(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "check", f"lspet:{LSPET}@0:8", "--preview", str(tmp_path), "--count", "2"]) == 0
    out = capsys.readouterr().out
    assert "8 samples from 8 entries" in out and "PCK@0.2" in out and len(list(tmp_path.glob("*.png"))) == 2
    assert main(["data", "check", "lspt:x"]) == 2
    err = capsys.readouterr().err
    assert "unknown kind 'lspt'" in err and "Traceback" not in err
