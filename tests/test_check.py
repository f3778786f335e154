"""`stagepose check` refuses, with one line naming file, line and field, everything `live` would refuse.

Every case here passed `check` once and then stopped `live` with a traceback (issue 12). Each runs the
command as a technician would and expects exit code 2 and a single line of error.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from show_support import DEMO_CLIP, REPO

from stagepose.cli import main
from stagepose.errors import ConfigError
from stagepose.show.config import load_show

ENGINE = REPO / "engines" / "lshm2_campaign_lspet_128"
CALIBRATION = REPO / "calibration" / "cam01.yaml"  # made at 1088x1920; the demo clip is 1080x1920


def demo_show(folder: Path) -> dict:
    """demo.yaml with absolute paths to the shipped clip and model, its record under ``folder``."""
    show = yaml.safe_load((REPO / "show_configs" / "demo.yaml").read_text())
    show["cameras"][0]["uri"] = str(DEMO_CLIP)
    show["model"]["path"] = str(ENGINE.with_suffix(".onnx"))
    show["outputs"]["record"]["path"] = str(folder / "out" / "keypoints.jsonl")
    return show


def run_check(folder: Path, show: dict, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, str]:
    path = folder / "show.yaml"
    path.write_text(yaml.safe_dump(show, sort_keys=False))
    code = main(["check", "--show", str(path), *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_refused(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "show.yaml:" in err, err
    for needle in needles:
        assert needle in err, err


def test_demo_passes_and_reports_the_clip(tmp_path, capsys) -> None:
    code, out, err = run_check(tmp_path, demo_show(tmp_path), capsys)
    assert code == 0, err
    assert "1080x1920 60.00 fps, 100 frames" in out and "ok: show 'demo'" in out


def _loop(folder: Path) -> str:
    (folder / "a").symlink_to(folder / "b")
    (folder / "b").symlink_to(folder / "a")
    return str(folder / "a")


# (edit of the show dict given the tmp folder, field the message names, words it contains)
LOAD_TIME: dict[str, tuple[Callable[[dict, Path], None], str, str]] = {
    "threads -5": (lambda d, t: d["model"].update(threads=-5), "model.threads", "1..256"),
    "device tpu": (lambda d, t: d["model"].update(device="tpu"), "model.device", "'cuda:N'"),
    "window_frames 1e30": (lambda d, t: d.update(telemetry={"window_frames": 10**30}), "telemetry.window_frames",
                           "10..100000"),
    "stall_timeout_s 1e308": (lambda d, t: d["cameras"][0].update(stall_timeout_s=1e308),
                              "cameras[0].stall_timeout_s", "<= 3600"),
    "status_interval_s nan": (lambda d, t: d.update(telemetry={"status_interval_s": float("nan")}),
                              "telemetry.status_interval_s", "finite"),
    "box_margin nan": (lambda d, t: d["tracking"].update(box_margin=float("nan")), "tracking.box_margin", "finite"),
    "measurement_std inf": (lambda d, t: d["smoothing"].update(kalman={"measurement_std": float("inf")}),
                            "smoothing.kalman.measurement_std", "finite"),
    "max_duration_s -1": (lambda d, t: d["run"].update(max_duration_s=-1), "run.max_duration_s", "> 0"),
    "zone nan": (lambda d, t: d["performers"][0]["cameras"].update(cam1=[[0, 0], [10, 0], [float("nan"), 5]]),
                 "performers[0]", "finite pixel"),
    "record ~nosuchuser": (lambda d, t: d["outputs"]["record"].update(path="~nosuchuser/k.jsonl"),
                           "outputs.record.path", "no home folder for nosuchuser"),
    "model ~nosuchuser": (lambda d, t: d["model"].update(path="~nosuchuser/m.onnx"), "model.path", "nosuchuser"),
    "uri ~nosuchuser": (lambda d, t: d["cameras"][0].update(uri="~nosuchuser/clip.mp4"), "cameras[0].uri",
                        "nosuchuser"),
    "calibration ~nosuchuser": (lambda d, t: d["cameras"][0].update(calibration="~nosuchuser/c.yaml"),
                                "cameras[0].calibration", "nosuchuser"),
    "model path 3000 chars": (lambda d, t: d["model"].update(path="m" * 3000 + ".onnx"), "model.path",
                              "3005 characters long"),
    "uri 3000 chars": (lambda d, t: d["cameras"][0].update(uri="c" * 3000 + ".mp4"), "cameras[0].uri",
                       "characters long"),
    "model symlink loop": (lambda d, t: d["model"].update(path=_loop(t)), "model.path", "symbolic link loop"),
    "uri symlink loop": (lambda d, t: d["cameras"][0].update(uri=_loop(t)), "cameras[0].uri", "symbolic link loop"),
    "engines_dir ~nosuchuser": (lambda d, t: d["model"].update(engines_dir="~nosuchuser/e"), "model.engines_dir",
                                "nosuchuser"),
}  # fmt: skip


@pytest.mark.parametrize("case", LOAD_TIME)
def test_refused_at_load(tmp_path, capsys, case) -> None:
    edit, field, words = LOAD_TIME[case]
    show = demo_show(tmp_path)
    edit(show, tmp_path)
    code, _, err = run_check(tmp_path, show, capsys)
    assert_refused(code, err, f"field '{field}'" if case != "zone nan" else field, words)


def _truncated_faststart(folder: Path) -> str:
    """The demo clip remuxed with the index first, then cut in half (a copy that stopped midway)."""
    import av

    whole = folder / "faststart.mp4"
    with av.open(str(DEMO_CLIP)) as src, av.open(str(whole), "w", options={"movflags": "faststart"}) as dst:
        stream = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                dst.mux(packet)
    cut = folder / "cut.mp4"
    data = whole.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    return str(cut)


def _file(folder: Path, name: str, data: bytes) -> str:
    (folder / name).write_bytes(data)
    return str(folder / name)


MEDIA: dict[str, tuple[Callable[[dict, Path], None], str, str]] = {
    "zero-byte clip": (lambda d, t: d["cameras"][0].update(uri=_file(t, "empty.mp4", b"")), "cameras[0].uri",
                       "empty file (0 bytes)"),
    "truncated clip (index at the end)": (lambda d, t: d["cameras"][0].update(
        uri=_file(t, "cut.mp4", DEMO_CLIP.read_bytes()[:200_000])), "cameras[0].uri", "damaged or truncated"),
    "truncated clip (index first)": (lambda d, t: d["cameras"][0].update(uri=_truncated_faststart(t)),
                                     "cameras[0].uri", "truncated: 5"),
    "not a video": (lambda d, t: d["cameras"][0].update(uri=_file(t, "notes.mp4", b"hello" * 100)),
                    "cameras[0].uri", "not a readable video"),
    "calibration 1088x1920 for a 1080x1920 clip": (lambda d, t: d["cameras"][0].update(calibration=str(CALIBRATION)),
                                                   "cameras[0].calibration", "calibrated at 1088x1920"),
    "zone outside the frame": (lambda d, t: d["performers"][0]["cameras"].update(
                                   cam1=[[0, 250], [1500, 250], [1080, 1500]]),
                               "performers[0].cameras.cam1[1]", "outside the 1080x1920 frame"),
    "record on /dev/full": (lambda d, t: d["outputs"]["record"].update(path="/dev/full"), "outputs.record.path",
                            "not a file"),
    "record is a folder": (lambda d, t: d["outputs"]["record"].update(path=str(t)), "outputs.record.path",
                           "is a folder"),
}  # fmt: skip


@pytest.mark.parametrize("case", MEDIA)
def test_refused_against_the_media_and_outputs(tmp_path, capsys, case) -> None:
    edit, field, words = MEDIA[case]
    show = demo_show(tmp_path)
    edit(show, tmp_path)
    code, _, err = run_check(tmp_path, show, capsys)
    assert_refused(code, err, f"field '{field}'", words)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into read-only folders")
def test_record_in_a_read_only_folder_is_refused(tmp_path, capsys) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    show = demo_show(tmp_path)
    show["outputs"]["record"]["path"] = str(locked / "sub" / "k.jsonl")
    code, _, err = run_check(tmp_path, show, capsys)
    assert_refused(code, err, "field 'outputs.record.path'", "cannot write")


def test_record_under_a_file_is_refused(tmp_path, capsys) -> None:
    (tmp_path / "notes.txt").write_text("x")
    show = demo_show(tmp_path)
    show["outputs"]["record"]["path"] = str(tmp_path / "notes.txt" / "day1" / "k.jsonl")
    code, _, err = run_check(tmp_path, show, capsys)
    assert_refused(code, err, "field 'outputs.record.path'", "is not a folder")


def test_with_rotation_the_part_the_show_writes_is_checked(tmp_path) -> None:
    from stagepose.show.record import RecordConfig, first_file

    base = tmp_path / "keypoints.jsonl"
    for name in ("keypoints.0001.jsonl", "keypoints.0002.jsonl"):
        (tmp_path / name).write_text("{}\n")
    assert first_file(RecordConfig(path=str(base), rotate_minutes=60), base) == tmp_path / "keypoints.0003.jsonl"
    assert first_file(RecordConfig(path=str(base)), base) == base


def test_ndi_camera_without_the_ndi_extra_is_refused(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "NDIlib", None)  # as if ndi-python were not installed
    show = demo_show(tmp_path)
    show["cameras"][0]["uri"] = "ndi://STAGE-PC (Cam 1)"
    code, _, err = run_check(tmp_path, show, capsys)
    assert_refused(code, err, "field 'cameras[0].uri'", "stagepose[ndi]")


def _engine_copy(folder: Path, edit_sidecar: Callable[[dict], None] | None = None, preset: str | None = None) -> Path:
    """The shipped engine copied into ``folder``: its sidecar edited, or its weights relabelled."""
    onnx = folder / "model.onnx"
    shutil.copy(ENGINE.with_suffix(".onnx"), onnx)
    sidecar = json.loads(ENGINE.with_suffix(".json").read_text())
    sidecar["checkpoint"] = "model.safetensors"
    if edit_sidecar:
        edit_sidecar(sidecar)
    onnx.with_suffix(".json").write_text(json.dumps(sidecar, indent=2))
    weights = folder / "model.safetensors"
    if preset is None:
        shutil.copy(ENGINE.with_suffix(".safetensors"), weights)
    else:
        from safetensors import safe_open
        from safetensors.numpy import save_file

        with safe_open(str(ENGINE.with_suffix(".safetensors")), framework="np") as handle:
            metadata = dict(handle.metadata() or {})
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
        save_file(tensors, str(weights), metadata={**metadata, "preset": preset})
    return onnx


def _weights_only(onnx: Path) -> Path:
    onnx.unlink()
    onnx.with_suffix(".json").unlink()
    return onnx.with_suffix(".safetensors")


MODEL: dict[str, tuple[Callable[[Path], Path], dict, str]] = {
    "sidecar mean NaN": (lambda t: _engine_copy(t, lambda s: s.update(mean=[float("nan"), 0.456, 0.406])), {},
                         "field 'mean'"),
    "sidecar input_size disagrees with the ONNX": (lambda t: _engine_copy(t, lambda s: s.update(
        input_size=[256, 256], heatmap_size=[64, 64])), {}, "does not match its sidecar"),
    "sidecar input_size 100000x100000": (lambda t: _engine_copy(t, lambda s: s.update(
        input_size=[100000, 100000])), {}, "16..4096"),
    "sidecar labels lshm-2 weights teacher-hg8": (lambda t: _engine_copy(t, lambda s: s.update(
        preset="teacher-hg8")), {}, "preset 'teacher-hg8' but the weights"),
    "lshm-2 weights labelled teacher-hg8 (torch)": (lambda t: _weights_only(_engine_copy(t, preset="teacher-hg8")),
                                                    {"backend": "torch"}, "do not fit preset 'teacher-hg8'"),
}  # fmt: skip


@pytest.mark.parametrize("case", MODEL)
def test_model_refused_with_model_flag(tmp_path, capsys, case) -> None:
    make, model_fields, words = MODEL[case]
    show = demo_show(tmp_path)
    show["model"].update(path=str(make(tmp_path)), **model_fields)
    code, _, err = run_check(tmp_path, show, capsys, "--model")
    assert_refused(code, err, "model.path" if "mean" not in case else "", words)


def test_model_flag_runs_one_inference(tmp_path, capsys) -> None:
    code, out, err = run_check(tmp_path, demo_show(tmp_path), capsys, "--model")
    assert code == 0, err
    assert "one inference ok" in out


def test_print_shows_the_resolved_config_with_defaults(tmp_path, capsys) -> None:
    code, out, err = run_check(tmp_path, demo_show(tmp_path), capsys, "--print")
    assert code == 0, err
    printed = yaml.safe_load(out)  # the whole output is one YAML document: the report lines are comments
    assert "# camera cam1:" in out and out.rstrip().endswith("active camera(s)")
    assert printed["telemetry"]["window_frames"] == 300  # a default the file does not set
    assert printed["tracking"]["min_box_fraction"] == 0.5  # a value the file sets
    assert printed["smoothing"]["kalman"]["measurement_std"] == 4.0
    assert printed["base_dir"] == str(tmp_path)


def test_replay_needs_no_uri_when_inputs_replace_the_feeds(tmp_path, capsys) -> None:
    show = demo_show(tmp_path)
    del show["cameras"][0]["uri"]
    path = tmp_path / "show.yaml"
    path.write_text(yaml.safe_dump(show, sort_keys=False))
    with pytest.raises(ConfigError, match=r"show.yaml:\d+: field 'cameras\[0\]\.uri': required field is missing"):
        load_show(path)
    assert load_show(path, replay_inputs=1).cast[0].name == "performer1"
    out = tmp_path / "replay"
    code = main(["replay", "--show", str(path), "--input", str(DEMO_CLIP), "--out", str(out), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    assert (out / "keypoints.jsonl").stat().st_size > 0
