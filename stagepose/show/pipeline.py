"""The per-frame pose pipeline shared by `stagepose live` and `stagepose replay`.

Data flows one way: frames (one per camera) -> crop (tracker) -> one batched inference -> heatmap
decode -> image pixels -> tracker update -> smoothing -> stage mapping. The pipeline owns no I/O:
the caller feeds frames and sends the results (OSC, record, overlay). Each stage is timed so the
model's share of the frame time is visible.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from stagepose.calibration.mapper import StageMapper
from stagepose.codec import HeatmapCodec
from stagepose.errors import ConfigError
from stagepose.runtime.backends.base import Backend
from stagepose.show.config import CameraConfig, ShowConfig
from stagepose.show.filters import JointSmoother, SmoothedPose, make_smoother
from stagepose.show.sources.frame import Frame
from stagepose.show.tracking import CropBox, PerformerTracker
from stagepose.transforms import INPUT_MEAN, INPUT_STD, crop_affine, to_model_input, warp_crop

log = logging.getLogger(__name__)

STAGES = ("crop", "infer", "decode", "filter")
DEFAULT_TIMING_WINDOW = 3000  # batches of stage timings kept by default (constant memory in a long show)


@dataclass(frozen=True)
class PoseResult:
    """One performer in one frame, raw and smoothed.

    Attributes:
        camera_id, performer: from the show config.
        seq: this performer's result counter; frame_seq: the source's frame number.
        t_capture: capture time of the frame (Unix seconds).
        image_size: (w, h) of the frame.
        raw_joints: (16, 2) image pixels straight from the model; raw_confidence: (16,) heatmap peaks.
        smoothed: the smoother's estimate at t_capture (positions in image pixels).
        tracked: the performer was found in this frame's crop (see `PerformerTracker`).
        crop: the box the model looked at.
        floor: stage floor (x, y) in metres, None without calibration or when not found.
        joints_stage: (16, 2) floor-plane stage metres of the smoothed joints, None without calibration.
    """

    camera_id: str
    performer: str
    seq: int
    frame_seq: int
    t_capture: float
    image_size: tuple[int, int]
    raw_joints: np.ndarray
    raw_confidence: np.ndarray
    smoothed: SmoothedPose
    tracked: bool
    crop: CropBox
    floor: tuple[float, float] | None = None
    joints_stage: np.ndarray | None = None


@dataclass
class CameraState:
    """What the pipeline keeps per camera between frames."""

    config: CameraConfig
    tracker: PerformerTracker
    smoother: JointSmoother
    mapper: StageMapper | None = None
    image_size: tuple[int, int] | None = None
    results: int = 0
    error: str | None = None


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
    """Crop, infer, decode, track and smooth a batch of frames from several cameras."""

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
        height, width = backend.input_size
        self.input_wh = (width, height)
        sidecar = backend.sidecar
        self.mean = tuple(sidecar.mean) if sidecar else INPUT_MEAN
        self.std = tuple(sidecar.std) if sidecar else INPUT_STD
        # decode with the sigma the model was trained with (from its sidecar or weights)
        self.codec = HeatmapCodec((width, height), (width // 4, height // 4), sigma=backend.heatmap_sigma)
        self.times = StageTimes(timing_window)
        self.cameras: dict[str, CameraState] = {}
        for camera in cameras if cameras is not None else show.active_cameras:
            zone = None if camera.zone is None else np.asarray(camera.zone, dtype=np.float32)
            self.cameras[camera.id] = CameraState(
                config=camera,
                tracker=PerformerTracker(show.tracking, width / height, zone),
                smoother=make_smoother(show.smoothing),
            )

    def _admit(self, state: CameraState, image_size: tuple[int, int]) -> bool:
        """Load the camera's calibration at its first frame (or after a resolution change).

        A calibration that does not fit the camera keeps that camera out of the batches (with
        ``state.error`` saying why, for the status line) instead of stopping the other cameras.
        """
        if state.image_size == image_size:
            return state.error is None
        if state.image_size is not None:
            log.warning("camera %r: resolution changed %s -> %s; restarting its tracking",
                        state.config.id, state.image_size, image_size)  # fmt: skip
            self.reset_camera(state.config.id)
            state = self.cameras[state.config.id]
        state.image_size = image_size
        state.error = None
        if state.config.calibration is not None:
            try:
                state.mapper = StageMapper.from_file(
                    self.show.resolve(state.config.calibration),
                    image_size,
                    require_stage=self.show.needs_stage_calibration,
                )
            except ConfigError as exc:
                state.error = str(exc)
                log.error("camera %r left out: %s", state.config.id, exc)
        return state.error is None

    def reset_camera(self, camera_id: str) -> None:
        """Forget a camera's tracking, smoothing and resolution (after its feed restarted)."""
        old = self.cameras[camera_id]
        self.cameras[camera_id] = CameraState(
            config=old.config,
            tracker=PerformerTracker(self.show.tracking, old.tracker.input_aspect, old.tracker.zone),
            smoother=make_smoother(self.show.smoothing),
            results=old.results,
        )

    def process(self, frames: Sequence[Frame]) -> list[PoseResult]:
        """Run one batch: at most one frame per camera. Returns one result per frame, in order.

        A frame from a camera whose calibration does not fit is left out (see ``CameraState.error``).
        """
        frames = [f for f in frames if self._admit(self.cameras[f.camera_id], (f.width, f.height))]
        if not frames:
            return []
        t0 = time.perf_counter()
        crops, affines, boxes, states = [], [], [], []
        for frame in frames:
            state = self.cameras[frame.camera_id]
            box = state.tracker.crop((frame.width, frame.height))
            affine = crop_affine(box.center, box.size, self.input_wh)
            crops.append(warp_crop(frame.image, affine, self.input_wh))
            affines.append(affine)
            boxes.append(box)
            states.append(state)
        batch = to_model_input(np.stack(crops), self.mean, self.std)
        t1 = time.perf_counter()
        heatmaps = self.backend.infer(batch)
        t2 = time.perf_counter()
        coords, confidence = self.codec.decode(heatmaps)
        joints = self.codec.heatmap_to_image(coords, np.stack(affines))
        confidence = np.clip(confidence, 0.0, 1.0)
        t3 = time.perf_counter()
        results = []
        for i, (frame, state, box) in enumerate(zip(frames, states, boxes)):
            size = (frame.width, frame.height)
            mapper = state.mapper
            tracked = state.tracker.update(joints[i], confidence[i], size)
            # An untracked performer's joints are not measurements: the smoother only predicts them.
            measured_conf = confidence[i] if tracked else np.zeros_like(confidence[i])
            smoothed = state.smoother.update(frame.t_capture, joints[i], measured_conf)
            floor = joints_stage = None
            if mapper is not None and mapper.has_stage:
                joints_stage = mapper.to_stage(np.asarray(smoothed.position))
                floor = mapper.floor_position(np.asarray(smoothed.position), np.asarray(smoothed.quality))
            results.append(
                PoseResult(
                    camera_id=frame.camera_id,
                    performer=state.config.performer,
                    seq=state.results,
                    frame_seq=frame.seq,
                    t_capture=frame.t_capture,
                    image_size=size,
                    raw_joints=joints[i],
                    raw_confidence=confidence[i],
                    smoothed=smoothed,
                    tracked=tracked,
                    crop=box,
                    floor=floor,
                    joints_stage=joints_stage,
                )
            )
            state.results += 1
        t4 = time.perf_counter()
        for stage, seconds in zip(STAGES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            self.times.add(stage, seconds)
        return results
