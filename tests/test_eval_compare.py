"""``stagepose eval-compare``: reports written by ``stagepose eval --json`` side by side, differences, a chart."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from show_support import REPO, SHARED_DATA

from stagepose.cli import main
from stagepose.errors import DataError
from stagepose.train.compare import comparison_table, read_report

LSPET = SHARED_DATA / "lspet"
STAGE1 = REPO / "engines" / "lshm2_lspet_128.safetensors"
needs_lspet = pytest.mark.skipif(not (LSPET / "joints.mat").exists(), reason="../shared/data/lspet not present")


def _report(tmp_path: Path, name: str, mean: float, **extra: object) -> Path:
    groups = {"head": 60.0, "shoulder": 40.0, "elbow": 30.0, "wrist": 30.0, "hip": 30.0, "knee": 20.0,
              "ankle": 30.0, "mean": mean}  # fmt: skip
    payload = {"label": name, "metric": "PCK@0.2", "data": "lspet:x@0:10", "samples": 10, "groups": groups,
               "limb_mean": mean - 5.0, **extra}  # fmt: skip
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(payload))
    return path


def test_table_gives_each_row_and_its_difference_to_the_baseline(tmp_path: Path) -> None:
    reports = [read_report(_report(tmp_path, "without", 35.0)), read_report(_report(tmp_path, "with", 37.5))]
    lines = comparison_table(reports).splitlines()
    assert lines[0].split()[-2:] == ["mean", "limbs"]
    assert lines[1].split()[-2:] == ["35.0", "30.0"]
    assert lines[2].split()[-2:] == ["37.5", "32.5"]
    assert lines[3].startswith("  - without") and lines[3].split()[-2:] == ["+2.5", "+2.5"]
    assert lines[3].split()[3] == "+0.0"  # head: equal


def test_reports_of_other_data_or_files_that_are_not_reports_are_refused(tmp_path: Path) -> None:
    base = read_report(_report(tmp_path, "a", 35.0))
    other = read_report(_report(tmp_path, "b", 36.0, data="lspet:x@10:20"))
    with pytest.raises(DataError, match="same --data"):
        comparison_table([base, other])
    with pytest.raises(DataError, match="at least two"):
        comparison_table([base])
    with pytest.raises(DataError, match="missing.json: eval report not found; write it with: stagepose eval"):
        read_report(tmp_path / "missing.json")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(DataError, match="broken.json: not a JSON eval report"):
        read_report(tmp_path / "broken.json")
    (tmp_path / "other.json").write_text(json.dumps({"label": "x", "metric": "PCK@0.2"}))
    with pytest.raises(DataError, match="field 'data' missing"):
        read_report(tmp_path / "other.json")
    with pytest.raises(DataError, match="field 'samples' must be a whole number"):
        read_report(_report(tmp_path, "c", 35.0, samples="many"))


def test_cli_errors_name_the_file_without_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval-compare", str(_report(tmp_path, "a", 35.0)), str(tmp_path / "nope.json")]) == 2
    err = capsys.readouterr().err
    assert "nope.json: eval report not found" in err and "Traceback" not in err


@needs_lspet
@pytest.mark.skipif(not STAGE1.is_file(), reason="engines/lshm2_lspet_128.safetensors not present")
def test_real_reports_compare_and_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # two real `stagepose eval --json` runs over the same 24 held-out images: trained weights vs the same
    # weights with the flip test; the chart is a real PNG with one bar group per column
    data = f"lspet:{LSPET}@8976:9000"
    plain, flipped = tmp_path / "plain.json", tmp_path / "flip.json"
    common = ["eval", "--checkpoint", str(STAGE1), "--data", data, "--workers", "0", "--device", "cpu", "--no-progress"]
    assert main([*common, "--json", str(plain), "--label", "plain"]) == 0
    assert main([*common, "--json", str(flipped), "--label", "flip", "--flip"]) == 0
    capsys.readouterr()
    png = tmp_path / "compare.png"
    assert main(["eval-compare", str(plain), str(flipped), "--plot", str(png)]) == 0
    out = capsys.readouterr().out.splitlines()
    means = [json.loads(p.read_text())["groups"]["mean"] for p in (plain, flipped)]
    # what was scored: samples read, scored (the rest lack a torso) and joints per group, from the joint counts
    report = json.loads(plain.read_text())
    assert report["samples"] == report["samples_read"] == 24
    assert report["samples_scored"] + report["samples_not_scored"] == 24 and report["samples_scored"] > 0
    assert report["group_counts"]["hip"] == report["counts"]["r_hip"] + report["counts"]["l_hip"]
    assert report["counts"]["r_hip"] == report["samples_scored"]  # a scored sample has its right hip labelled
    assert any(f"24 samples ({report['samples_scored']} scored)" in line for line in out)
    assert out[1].startswith("plain") and float(out[1].split()[-2]) == pytest.approx(means[0], abs=0.051)
    assert out[3].startswith("  - plain") and float(out[3].split()[-2]) == pytest.approx(means[1] - means[0], abs=0.11)
    import cv2

    image = cv2.imread(str(png))
    assert image is not None and image.shape[:2] == (450, 1100)
    assert np.unique(image.reshape(-1, 3), axis=0).shape[0] > 20  # bars, labels and text, not a blank canvas
