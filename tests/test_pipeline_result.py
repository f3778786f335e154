"""The pose pipeline's public result: one per frame, forecast and stage coordinates of the same pose,
calibrations checked at start-up. Real parts: the shipped ONNX model on the CPU, frames of the bundled
clip, calibration files written to disk."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from show_support import DEMO_CLIP, REPO, base_show, write_show

from stagepose.calibration.files import CameraCalibration, Intrinsics, matrix3, save_calibration
from stagepose.calibration.geometry import look_at_pose
from stagepose.calibration.mapper import StageMapper
from stagepose.calibration.stage import fit_stage
from stagepose.errors import ConfigError
from stagepose.runtime.backends.base import Backend, BackendConfig
from stagepose.show.config import ModelConfig, load_show
from stagepose.show.pipeline import PosePipeline
from stagepose.show.sources import Frame

SHIPPED = REPO / "engines" / "lshm2_campaign_lspet_128.onnx"
CALIBRATION_1088 = REPO / "calibration" / "cam01.yaml"  # made for 1088x1920 frames; the clip is 1080x1920
CLIP_SIZE = (1080, 1920)
FRAMES = 12


@pytest.fixture(scope="module")
def backend() -> Iterator[Backend]:
    from stagepose.runtime.backends.select import open_backend

    with open_backend(BackendConfig(SHIPPED, backend="onnxruntime", device="cpu", threads=1)) as opened:
        yield opened


@pytest.fixture(scope="module")
def clip_frames() -> list[Frame]:
    """The first frames of the bundled clip, 1/60 s apart, as camera cam1 delivers them."""
    import av

    with av.open(str(DEMO_CLIP)) as container:
        images = [f.to_ndarray(format="bgr24") for _, f in zip(range(FRAMES), container.decode(video=0))]
    return [Frame(image=img, t_capture=1000.0 + i / 60, camera_id="cam1", seq=i) for i, img in enumerate(images)]


def _calibration_for_clip(path: Path) -> Path:
    """A stage calibration that fits the clip's 1080x1920 frames: a camera 3 m up, 6 m downstage."""
    k = np.array([[1500.0, 0.0, 540.0], [0.0, 1500.0, 960.0], [0.0, 0.0, 1.0]])
    marks = np.array(
        [[-2.0, 0.0], [0.0, 0.0], [2.0, 0.0], [-1.5, 2.0], [1.5, 2.0], [-2.0, 4.0], [0.0, 4.0], [2.0, 4.0]]
    )
    pose = look_at_pose((0.0, -6.0, 3.0), (0.0, 2.0))
    pixels = pose.project(k, None, np.column_stack([marks, np.zeros(len(marks))]))
    fit = fit_stage([f"m{i}" for i in range(len(marks))], marks, pixels, k, np.zeros(4))
    lens = Intrinsics(camera_matrix=matrix3(k), distortion=(0.0, 0.0, 0.0, 0.0), rms_px=0.1)
    calibration = CameraCalibration(
        version=1, image_size=CLIP_SIZE, intrinsics=lens, camera="cam1", stage=fit.calibration()
    )
    return save_calibration(path, calibration)


def _show(tmp_path: Path, *, forecast: bool, **camera: object):  # type: ignore[no-untyped-def]
    config = base_show(SHIPPED, str(DEMO_CLIP), 9, **camera)
    config["outputs"]["osc"][0]["coords"] = "stage"
    config["smoothing"] = {"method": "kalman", "forecast_to_send": forecast}
    return load_show(write_show(tmp_path, config, f"show_{forecast}.yaml"))


def test_forecast_and_stage_coordinates_describe_the_same_pose(tmp_path, backend, clip_frames) -> None:
    calibration = _calibration_for_clip(tmp_path / "cam1.yaml")
    forecast = PosePipeline(_show(tmp_path, forecast=True, calibration=str(calibration)), backend)
    at_capture = PosePipeline(_show(tmp_path, forecast=False, calibration=str(calibration)), backend)
    mapper = StageMapper.from_file(calibration, CLIP_SIZE)
    ahead = 0.1  # s from capture to send
    moved = 0
    for frame in clip_frames:
        [sent] = forecast.process([frame], t_send=frame.t_capture + ahead)
        [plain] = at_capture.process([frame], t_send=frame.t_capture + ahead)
        assert plain.t == frame.t_capture  # no forecast unless the show asks
        np.testing.assert_array_equal(sent.raw_joints, plain.raw_joints)  # same frame, same model
        if frame.seq == 0:
            continue  # the first pose has no velocity yet
        assert sent.t == pytest.approx(frame.t_capture + ahead) and sent.t_capture == frame.t_capture
        # the stage coordinates are those of the forecast pose itself, not of the capture-time pose
        assert sent.joints_stage is not None and np.isfinite(sent.joints_stage).any()
        np.testing.assert_allclose(sent.joints_stage, mapper.to_stage(sent.joints), equal_nan=True)
        floor = mapper.floor_position(sent.joints, sent.confidence)
        assert (sent.floor is None) == (floor is None) and (floor is None or np.allclose(sent.floor, floor))
        np.testing.assert_allclose(plain.joints_stage, mapper.to_stage(plain.joints), equal_nan=True)
        moved += int(np.nanmax(np.abs(sent.joints - plain.joints)) > 0.5)
    assert moved >= FRAMES // 2, "the forecast never moved the joints: the test proves nothing"


def test_one_result_per_frame_when_a_live_camera_is_refused(tmp_path, backend, clip_frames) -> None:
    config = base_show(SHIPPED, str(DEMO_CLIP), 9)
    # a live feed: its size is unknown until its first frame, so the misfit shows only then
    config["cameras"].append({"id": "cam2", "uri": "rtsp://127.0.0.1:9/none", "performer": "p2",
                              "calibration": str(CALIBRATION_1088)})  # fmt: skip
    pipeline = PosePipeline(load_show(write_show(tmp_path, config)), backend)
    assert pipeline.camera_state("cam2").refused is None
    frames = [clip_frames[0], dataclasses.replace(clip_frames[0], camera_id="cam2")]
    results = pipeline.process(frames)
    assert [(r.camera_id, r.refused) for r in results] == [("cam1", False), ("cam2", True)]
    refused = results[1]
    assert refused.reason is not None and "1088x1920" in refused.reason and str(CALIBRATION_1088) in refused.reason
    assert np.isnan(refused.joints).all() and not refused.confidence.any() and not refused.tracked
    state = pipeline.camera_state("cam2")
    assert state.refused == refused.reason and state.image_size == CLIP_SIZE and state.results == 0
    assert pipeline.camera_state("cam1").results == 1
    assert len(pipeline.process(frames[1:])) == 1  # alone in a batch too


def test_a_calibration_that_does_not_fit_a_file_camera_stops_the_start(tmp_path, backend) -> None:
    show = load_show(write_show(tmp_path, base_show(SHIPPED, str(DEMO_CLIP), 9, calibration=str(CALIBRATION_1088))))
    with pytest.raises(ConfigError, match=r"camera 'cam1'.*cam01\.yaml: calibrated at 1088x1920.*1080x1920"):
        PosePipeline(show, backend)


@pytest.mark.parametrize("uri", [str(DEMO_CLIP), "rtsp://127.0.0.1:9/none"], ids=["file", "live"])
def test_an_invalid_calibration_file_stops_the_start(tmp_path, backend, uri) -> None:
    bad = _calibration_for_clip(tmp_path / "cam1.yaml")
    bad.write_text(re.sub(r"(homography:\s*\n\s*- \[)[-0-9.e]+", r"\g<1>.nan", bad.read_text(), count=1))
    show = load_show(write_show(tmp_path, base_show(SHIPPED, uri, 9, calibration=str(bad))))
    with pytest.raises(ConfigError, match=rf"camera 'cam1': calibration {re.escape(str(bad))}:\d+: .*non-finite"):
        PosePipeline(show, backend)


def test_show_model_section_and_backend_config_share_one_definition() -> None:
    from stagepose.runtime.backends.base import InferenceSettings

    shared = [f.name for f in dataclasses.fields(InferenceSettings)]
    assert {"backend", "device", "fp16", "cuda_graph", "threads"} <= set(shared)
    show_model, backend_config = ModelConfig(path="m.onnx"), BackendConfig(Path("m.onnx"))
    assert {n: getattr(show_model, n) for n in shared} == {n: getattr(backend_config, n) for n in shared}
    assert backend_config.fp16 is False  # one default: fp16 is opted into on a GPU show
    # every shared setting reaches the backend unchanged; the paths are resolved against the show file
    custom = ModelConfig(path="m.onnx", backend="torch", device="cuda:1", fp16=True, cuda_graph=True, threads=3,
                         engines_dir="eng", build_engine_if_missing=True)  # fmt: skip
    built = custom.backend_config(lambda p: Path("/show") / p, max_batch=3)
    assert {n: getattr(built, n) for n in shared} == {n: getattr(custom, n) for n in shared}
    assert (built.model, built.engines_dir, built.build_if_missing, built.max_batch) == (
        Path("/show/m.onnx"), Path("/show/eng"), True, 3)  # fmt: skip


def test_consumers_use_only_public_names_of_other_modules() -> None:
    """live, replay and the bench read the pipeline's result, not its internals or each other's privates."""
    for name in ("live", "replay", "bench"):
        text = (REPO / "stagepose" / "show" / f"{name}.py").read_text()
        private_imports = re.findall(r"^from stagepose\.\S+ import .*\b_[a-z]\w*", text, flags=re.MULTILINE)
        assert not private_imports, (name, private_imports)
        assert not re.search(r"pipeline\.(_\w+|cameras\b)|\.smoother\b", text), name
