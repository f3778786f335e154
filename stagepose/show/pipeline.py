"""The per-frame pose pipeline shared by `stagepose live`, `stagepose replay` and the benchmarks.

Data flows one way: frames (one per camera) -> crop (tracker) -> one batched inference -> heatmap
decode -> image pixels -> tracker update -> smoothing (and, when the show asks, a forecast to the send
time) -> stage mapping of that same pose. `PosePipeline.process` returns one finished
`PerformerResult` per frame given; consumers (OSC, record, overlay) read nothing else. Calibration
files are read and checked when the pipeline is built, so a bad one stops the show before it starts;
a calibrated file camera's clip size is read then too. A live feed's size is only known at its first
frame: frames that do not fit its calibration come back as ``refused`` results. Each stage is timed so
the model's share of the frame time is visible.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stagepose.calibration.files import CameraCalibration
from stagepose.calibration.mapper import StageMapper, load_checked_calibration
from stagepose.errors import ConfigError
from stagepose.runtime.backends.base import Backend
from stagepose.show.config import CameraConfig, ShowConfig
from stagepose.show.filters import JointSmoother, make_smoother
from stagepose.show.result import CameraState, PerformerResult
from stagepose.show.sources.frame import Frame
from stagepose.show.sources.uri import FileSpec, parse_source_uri
from stagepose.show.tracking import PerformerTracker
from stagepose.transforms import crop_affine

log = logging.getLogger(__name__)

STAGES = ("crop", "infer", "decode", "filter")
DEFAULT_TIMING_WINDOW = 3000  # batches of stage timings kept by default (constant memory in a long show)


@dataclass
class _Camera:
    """What the pipeline keeps per camera between frames (private: consumers get `CameraState`)."""

    config: CameraConfig
    tracker: PerformerTracker
    smoother: JointSmoother
    calibration: CameraCalibration | None = None
    mapper: StageMapper | None = None
    image_size: tuple[int, int] | None = None
    results: int = 0
    refused: str | None = None


class StageTimes:
    """Milliseconds per pipeline stage over the last ``window`` batches (None: every batch).

    A live show runs for hours, so it keeps a window (constant memory); replay keeps every batch for
    its histogram.
    """

    def __init__(self, window: int | None = DEFAULT_TIMING_WINDOW) -> None:
        if window is not None and window < 1:
            raise ValueError(f"window must be >= 1 (or None: keep all), got {window}")
        self.window = window
        self.ms: dict[str, collections.deque[float]] = {s: collections.deque(maxlen=window) for s in STAGES}

    def add(self, stage: str, seconds: float) -> None:
        if stage not in self.ms:
            self.ms[stage] = collections.deque(maxlen=self.window)
        self.ms[stage].append(seconds * 1e3)


class PosePipeline:
    """Crop, infer, decode, track, smooth and map a batch of frames from several cameras.

    Raises (at construction):
        ConfigError: a camera's calibration file is unreadable or invalid, lacks the stage homography
            the show needs, or does not fit the size of the camera's clip; the message names the camera
            and the file.
    """

    def __init__(
        self,
        show: ShowConfig,
        backend: Backend,
        cameras: Sequence[CameraConfig] | None = None,
        *,
        timing_window: int | None = DEFAULT_TIMING_WINDOW,
    ) -> None:
        """Args:
        show: tracking, smoothing and calibration settings.
        backend: the opened model.
        cameras: the cameras to expect (default: the show's active cameras).
        timing_window: batches of stage timings kept in ``times`` (None: all, for finite replays).
        """
        self.show = show
        self.backend = backend
        width, height = backend.input_size
        self.input_wh = (width, height)
        # size, channel order and normalisation the model was exported with (its sidecar)
        self.input_format = backend.input_format
        # decode with the sigma the model was trained with (from its sidecar or weights)
        self.codec = backend.codec()
        self.times = StageTimes(timing_window)
        self._cameras: dict[str, _Camera] = {}
        for camera in cameras if cameras is not None else show.active_cameras:
            zone = None if camera.zone is None else np.asarray(camera.zone, dtype=np.float32)
            state = _Camera(
                config=camera,
                tracker=PerformerTracker(show.tracking, width / height, zone),
                smoother=make_smoother(show.smoothing),
                calibration=self._load_calibration(camera),
            )
            self._cameras[camera.id] = state
            size = self._clip_size(camera) if state.calibration is not None else None
            if size is not None and (problem := self._fit(state, size)) is not None:
                raise ConfigError(f"camera {camera.id!r}: {problem}")

    def _load_calibration(self, camera: CameraConfig) -> CameraCalibration | None:
        if camera.calibration is None:
            return None
        path = self.show.resolve(camera.calibration)
        try:
            return load_checked_calibration(path, require_stage=self.show.needs_stage_calibration)
        except ConfigError as exc:
            raise ConfigError(f"camera {camera.id!r}: calibration {exc}") from None

    def _clip_size(self, camera: CameraConfig) -> tuple[int, int] | None:
        """(w, h) of a file camera's frames, read from its clip's first frame; None for a live feed."""
        try:
            spec = parse_source_uri(camera.uri, base_dir=self.show.base_dir)
        except ValueError:
            return None  # the source reports a bad address when it opens
        if not isinstance(spec, FileSpec):
            return None
        return clip_frame_size(spec.path)

    def _fit(self, state: _Camera, image_size: tuple[int, int]) -> str | None:
        """Map the camera's calibration onto frames of ``image_size``; why it does not fit, or None."""
        state.image_size = image_size
        state.mapper = None
        state.refused = None
        if state.calibration is not None:
            source = str(self.show.resolve(state.config.calibration or ""))
            try:
                state.mapper = StageMapper(
                    state.calibration, image_size, source, require_stage=self.show.needs_stage_calibration
                )
            except ConfigError as exc:
                state.refused = str(exc)
        return state.refused

    def _admit(self, state: _Camera, image_size: tuple[int, int]) -> bool:
        """Fit the camera's calibration to its first frame (or after a resolution change).

        A calibration that does not fit a live feed refuses that camera's frames (``refused`` results,
        and `camera_state` says why) instead of stopping the other cameras.
        """
        if state.image_size == image_size:
            return state.refused is None
        if state.image_size is not None:
            log.warning("camera %r: resolution changed %s -> %s; restarting its tracking",
                        state.config.id, state.image_size, image_size)  # fmt: skip
            self.reset_camera(state.config.id)
            state = self._cameras[state.config.id]
        problem = self._fit(state, image_size)
        if problem is not None:
            log.error("camera %r: frames refused: %s", state.config.id, problem)
        return problem is None

    def camera_state(self, camera_id: str) -> CameraState:
        """What the pipeline knows of a camera now (size, results so far, why its frames are refused)."""
        state = self._cameras[camera_id]
        return CameraState(
            camera_id=camera_id,
            performer=state.config.performer,
            image_size=state.image_size,
            results=state.results,
            refused=state.refused,
        )

    def no_frame(self, camera_id: str, t: float) -> PerformerResult:
        """The result for a camera that gives no pose now (no frame, or frames refused): status lost."""
        return PerformerResult.empty(self.camera_state(camera_id), t)

    def reset_camera(self, camera_id: str) -> None:
        """Forget a camera's tracking, smoothing and resolution (after its feed restarted)."""
        old = self._cameras[camera_id]
        self._cameras[camera_id] = _Camera(
            config=old.config,
            tracker=PerformerTracker(self.show.tracking, old.tracker.input_aspect, old.tracker.zone),
            smoother=make_smoother(self.show.smoothing),
            calibration=old.calibration,
            results=old.results,
        )

    def process(
        self, frames: Sequence[Frame], t_send: float | Callable[[], float] | None = None
    ) -> list[PerformerResult]:
        """Run one batch (at most one frame per camera). Returns one result per frame, in order.

        Args:
            frames: the newest frame of some cameras.
            t_send: when the results will be sent: a time, or a clock read once the model's output is
                decoded (live passes ``time.time``). With ``smoothing.forecast_to_send`` each pose, and the
                stage coordinates computed from it, is forecast to that time; otherwise (or None) every
                result is for its frame's capture time.

        Returns:
            One `PerformerResult` per frame; a frame whose camera's calibration does not fit it gives a
            ``refused`` result with the reason (its ``seq`` is not used up).
        """
        results: list[PerformerResult | None] = [None] * len(frames)
        batch_index: list[int] = []
        for i, frame in enumerate(frames):
            state = self._cameras[frame.camera_id]
            if self._admit(state, (frame.width, frame.height)):
                batch_index.append(i)
            else:
                results[i] = PerformerResult.empty(
                    self.camera_state(frame.camera_id), frame.t_capture, "refused", state.refused, frame.seq
                )
        if batch_index:
            for i, result in zip(batch_index, self._run_batch([frames[i] for i in batch_index], t_send)):
                results[i] = result
        return [r for r in results if r is not None]

    def _run_batch(self, frames: list[Frame], t_send: float | Callable[[], float] | None) -> list[PerformerResult]:
        t0 = time.perf_counter()
        affines, boxes, states = [], [], []
        for frame in frames:
            state = self._cameras[frame.camera_id]
            box = state.tracker.crop((frame.width, frame.height))
            affines.append(crop_affine(box.center, box.size, self.input_wh))
            boxes.append(box)
            states.append(state)
        batch = self.input_format.crop_batch([frame.image for frame in frames], affines)
        t1 = time.perf_counter()
        heatmaps = self.backend.infer(batch)
        t2 = time.perf_counter()
        coords, confidence = self.codec.decode(heatmaps)
        joints = self.codec.heatmap_to_image(coords, np.stack(affines))
        confidence = np.clip(confidence, 0.0, 1.0)
        t3 = time.perf_counter()
        forecast_to: float | None = None
        if t_send is not None and self.show.smoothing.forecast_to_send:
            forecast_to = t_send() if callable(t_send) else t_send
        results = []
        for i, (frame, state, box) in enumerate(zip(frames, states, boxes)):
            size = (frame.width, frame.height)
            tracked = state.tracker.update(joints[i], confidence[i], size)
            # An untracked performer's joints are not measurements: the smoother only predicts them.
            measured_conf = confidence[i] if tracked else np.zeros_like(confidence[i])
            pose = state.smoother.update(frame.t_capture, joints[i], measured_conf)
            if forecast_to is not None:
                pose = state.smoother.forecast(forecast_to)
            position = np.asarray(pose.position)
            quality = np.asarray(pose.quality, dtype=np.float64)
            floor = joints_stage = None
            mapper = state.mapper
            if mapper is not None and mapper.has_stage:  # from the very pose sent, forecast or not
                joints_stage = mapper.to_stage(position)
                floor = mapper.floor_position(position, quality)
            results.append(
                PerformerResult(
                    camera_id=frame.camera_id,
                    performer=state.config.performer,
                    seq=state.results,
                    frame_seq=frame.seq,
                    t_capture=frame.t_capture,
                    t=pose.t,
                    image_size=size,
                    status="tracked" if tracked else "lost",
                    raw_joints=joints[i],
                    raw_confidence=confidence[i],
                    joints=position,
                    confidence=quality,
                    crop=box,
                    joints_stage=joints_stage,
                    floor=floor,
                )
            )
            state.results += 1
        t4 = time.perf_counter()
        for stage, seconds in zip(STAGES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            self.times.add(stage, seconds)
        return results


def clip_frame_size(path: Path) -> tuple[int, int]:
    """(w, h) of the first decoded frame of a video file.

    Raises:
        ConfigError: the file is not a readable video.
    """
    import av

    try:
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                return int(frame.width), int(frame.height)
    except (av.error.FFmpegError, OSError, ValueError, IndexError) as exc:
        raise ConfigError(f"{path}: not a readable video: {exc}") from None
    raise ConfigError(f"{path}: no frame decodes (damaged or truncated clip)")
