"""``stagepose data convert-mpii`` on a .mat written here in the official nested-struct layout.

The real ``mpii_human_pose_v1_u12_1.mat`` is not in ../shared/data; this file reproduces its structure
(RELEASE.annolist(i).image.name, .annorect(j).{x1,y1,x2,y2,scale,objpos.{x,y},annopoints.point(k).{id,x,y,
is_visible}}, RELEASE.img_train, RELEASE.single_person) with the five real persons of the MPII fixture,
plus the irregular cases the real file has: a person without joint annotations, a test image, a single
point (squeezed to a struct, not an array), is_visible as a string or empty, an image with no annorect.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.io

from stagepose.cli import main
from stagepose.data.convert_mpii import convert_mpii
from stagepose.data.registry import build_dataset
from stagepose.errors import DataError

MPII = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mpii_fixture"
pytestmark = pytest.mark.skipif(not (MPII / "test_mpii.json").is_file(), reason="../shared/data/mpii_fixture is absent")
EMPTY = np.zeros((0, 0))


def struct_array(records: list[dict[str, Any]]) -> np.ndarray:
    """A 1 x N MATLAB struct array (fields missing from a record are empty, as in MATLAB)."""
    fields = sorted({k for r in records for k in r})
    array = np.zeros((1, len(records)), dtype=[(f, object) for f in fields])
    for i, record in enumerate(records):
        for f in fields:
            array[0, i][f] = record.get(f, EMPTY)
    return array


def person(item: dict[str, Any], headbox: tuple[float, float, float, float]) -> dict[str, Any]:
    points = []
    for jid, ((x, y), vis) in enumerate(zip(item["joints"], item["joints_vis"])):
        if vis:
            flag = [np.array([[1.0]]), "1", EMPTY][jid % 3]  # number, string or empty, as in the real file
            points.append({"id": np.array([[jid]]), "x": np.array([[x]]), "y": np.array([[y]]), "is_visible": flag})
    x1, y1, x2, y2 = headbox
    return {
        "x1": np.array([[x1]]), "y1": np.array([[y1]]), "x2": np.array([[x2]]), "y2": np.array([[y2]]),
        "scale": np.array([[item["scale"]]]),
        "objpos": {"x": np.array([[item["center"][0]]]), "y": np.array([[item["center"][1]]])},
        "annopoints": {"point": struct_array(points)},
    }  # fmt: skip


def write_release(path: Path) -> list[dict[str, Any]]:
    """Write the test .mat; returns the fixture items it holds (with their head boxes)."""
    items = json.loads((MPII / "test_mpii.json").read_text())
    annolist, img_train, single = [], [], []
    for n, item in enumerate(items):
        x, y = item["joints"][9]  # head top
        item["headbox"] = [x - 40.0 - n, y - 10.0, x + 40.0, y + 90.0]
        rects = [person(item, item["headbox"])]
        if n == 0:  # a second, unannotated person (MPII has many)
            rects.append({"x1": np.array([[1.0]]), "y1": np.array([[1.0]]), "x2": np.array([[9.0]]),
                          "y2": np.array([[9.0]]), "scale": np.array([[1.0]])})  # fmt: skip
        annolist.append({"image": {"name": item["image"]}, "annorect": struct_array(rects), "vididx": EMPTY})
        img_train.append(1)
        single.append(np.array([[1]]) if n % 2 == 0 else EMPTY)
    # a person with a single annotated point: loadmat squeezes its point list to one struct
    lone = {"objpos": {"x": np.array([[50.0]]), "y": np.array([[60.0]])}, "scale": np.array([[0.5]]),
            "annopoints": {"point": struct_array([{"id": np.array([[9]]), "x": np.array([[51.0]]),
                                                   "y": np.array([[20.0]]), "is_visible": EMPTY}])}}  # fmt: skip
    annolist.append({"image": {"name": "lone.jpg"}, "annorect": struct_array([lone]), "vididx": EMPTY})
    img_train.append(1)
    single.append(EMPTY)
    annolist.append({"image": {"name": "test_only.jpg"}, "annorect": struct_array([{"scale": np.array([[2.0]])}]),
                     "vididx": EMPTY})  # fmt: skip
    img_train.append(0)
    single.append(EMPTY)
    annolist.append({"image": {"name": "nobody.jpg"}, "annorect": EMPTY, "vididx": EMPTY})
    img_train.append(1)
    single.append(EMPTY)
    cells = np.empty((len(single), 1), dtype=object)
    for i, s in enumerate(single):
        cells[i, 0] = s
    release = {"annolist": struct_array(annolist), "img_train": np.array([img_train]), "single_person": cells,
               "version": "12"}  # fmt: skip
    scipy.io.savemat(str(path), {"RELEASE": release})
    return items


def test_convert_then_load(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    items = write_release(tmp_path / "release.mat")
    valid = [items[1]["image"], items[3]["image"]]
    (tmp_path / "valid.txt").write_text("\n".join(valid) + "\n")
    rc = main(["data", "convert-mpii", "--mat", str(tmp_path / "release.mat"), "--out", str(tmp_path / "out"),
               "--valid-images", str(tmp_path / "valid.txt")])  # fmt: skip
    assert rc == 0
    out = capsys.readouterr().out
    assert "train: 4 persons in 4 images" in out and "valid: 2 persons in 2 images" in out
    assert "skipped 1: person without joint annotations" in out and "skipped 1: test image" in out
    train = json.loads((tmp_path / "out" / "train.json").read_text())
    val = json.loads((tmp_path / "out" / "valid.json").read_text())
    assert sorted(v["image"] for v in val) == sorted(valid)
    by_name = {v["image"]: v for v in train + val}
    for item in items:
        got = by_name[item["image"]]
        assert got["center"] == item["center"] and got["scale"] == pytest.approx(item["scale"])
        assert got["joints_vis"] == item["joints_vis"] and got["headbox"] == pytest.approx(item["headbox"])
        vis = np.array(item["joints_vis"]) > 0
        np.testing.assert_allclose(np.array(got["joints"])[vis], np.array(item["joints"])[vis])
    assert [by_name[i["image"]]["single_person"] for i in items] == [True, False, True, False, True]
    lone = by_name["lone.jpg"]
    assert lone["joints_vis"][9] == 1 and sum(lone["joints_vis"]) == 1 and lone["joints"][9] == [51.0, 20.0]
    # the loader reads the converted file (images from the fixture) and gets PCKh head sizes
    dataset = build_dataset(f"mpii:{tmp_path / 'out' / 'valid.json'}:{MPII}", split="val")
    assert len(dataset) == 2 and dataset.metric == "pckh"
    head = np.array(items[1]["headbox"])
    assert dataset[0]["head_size"].item() == pytest.approx(0.6 * np.hypot(*(head[2:] - head[:2])), rel=1e-5)


def test_fraction_split_is_by_image_and_deterministic(tmp_path: Path) -> None:
    write_release(tmp_path / "release.mat")
    one = convert_mpii(tmp_path / "release.mat", tmp_path / "a", valid_fraction=0.5)
    two = convert_mpii(tmp_path / "release.mat", tmp_path / "b", valid_fraction=0.5)
    assert (tmp_path / "a" / "valid.json").read_text() == (tmp_path / "b" / "valid.json").read_text()
    assert one.train_persons + one.valid_persons == 6 and one.valid_persons == two.valid_persons
    only = convert_mpii(tmp_path / "release.mat", tmp_path / "c", valid_fraction=0.0, single_person_only=True)
    assert only.train_persons == 3 and only.valid_persons == 0


def test_bad_mat_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        convert_mpii(tmp_path / "missing.mat", tmp_path / "out")
    scipy.io.savemat(str(tmp_path / "other.mat"), {"joints": np.zeros((3, 14, 2))})
    with pytest.raises(DataError, match="no RELEASE.annolist"):
        convert_mpii(tmp_path / "other.mat", tmp_path / "out")
    (tmp_path / "text.mat").write_text("hello")
    with pytest.raises(DataError, match="cannot read as a MATLAB file"):
        convert_mpii(tmp_path / "text.mat", tmp_path / "out")
