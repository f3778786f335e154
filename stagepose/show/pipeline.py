"""The per-frame pose pipeline shared by `stagepose live`, `stagepose replay` and the benchmarks.

Data flows one way: frames (one per camera) -> crops (one per performer track, plus a bounded number
of search windows for tracks that look for their performer) -> one batched inference for all crops of
all cameras -> heatmap decode -> image pixels -> assignment of poses to performers (`assign`) ->
occluded joints (those a performer's pose puts on someone standing in front) -> tracker update ->
smoothing (and, when the show asks, a forecast to the send time) -> stage mapping of that same pose.
`PosePipeline.process` returns one finished `PerformerResult` per performer the
frame's camera follows; consumers (OSC, record, overlay) read nothing else. Calibration
files are read and checked when the pipeline is built, so a bad one stops the show before it starts;
a calibrated file camera's clip size is read then too. A live feed's size is only known at its first
frame: frames that do not fit its calibration come back as ``refused`` results. Each stage is timed so
the model's share of the frame time is visible.
"""

from __future__ import annotations

import collections
import functools
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
from stagepose.show import appearance
from stagepose.show.assign import Candidate, SamePerson, TrackView, assign
from stagepose.show.bodies import in_front, on_body
from stagepose.show.config import CameraConfig, PerformerConfig, ShowConfig
from stagepose.show.filters import JointSmoother, make_smoother
from stagepose.show.result import CameraState, PerformerResult
from stagepose.show.sources.frame import Frame
from stagepose.show.sources.uri import FileSpec, parse_source_uri
from stagepose.show.tracking import CropBox, PerformerTracker
from stagepose.skeleton import NUM_JOINTS
from stagepose.transforms import crop_affine

log = logging.getLogger(__name__)

STAGES = ("crop", "infer", "decode", "filter")
DEFAULT_TIMING_WINDOW = 3000  # batches of stage timings kept by default (constant memory in a long show)


@dataclass
class _Track:
    """One performer followed in one camera (private): crop state, smoother, result counter."""

    performer: PerformerConfig
    tracker: PerformerTracker
    smoother: JointSmoother
    results: int = 0
    floor: np.ndarray | None = None  # stage floor (x, y) of the last pose taken, with a stage calibration


@dataclass
class _Camera:
    """What the pipeline keeps per camera between frames (private: consumers get `CameraState`)."""

    config: CameraConfig
    tracks: list[_Track]
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
        self._search_turn = 0  # which searching track gets the first search window next
        for camera in cameras if cameras is not None else show.active_cameras:
            state = _Camera(
                config=camera,
                tracks=[self._new_track(p, camera.id) for p in show.performers_of(camera.id)],
                calibration=self._load_calibration(camera),
            )
            self._cameras[camera.id] = state
            size = self._clip_size(camera) if state.calibration is not None else None
            if size is not None and (problem := self._fit(state, size)) is not None:
                raise ConfigError(f"camera {camera.id!r}: {problem}")

    def _new_track(self, performer: PerformerConfig, camera_id: str) -> _Track:
        zone = performer.zone(camera_id)
        aspect = self.input_wh[0] / self.input_wh[1]
        tracker = PerformerTracker(self.show.tracking, aspect, None if zone is None else np.asarray(zone, np.float32))
        return _Track(performer=performer, tracker=tracker, smoother=make_smoother(self.show.smoothing))

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
        """What the pipeline knows of a camera now (size, frames so far, why its frames are refused)."""
        state = self._cameras[camera_id]
        return CameraState(
            camera_id=camera_id,
            performers=tuple(t.performer.address for t in state.tracks),
            image_size=state.image_size,
            results=state.results,
            refused=state.refused,
        )

    def no_frame(self, camera_id: str, t: float) -> list[PerformerResult]:
        """The results for a camera that gives no pose now (no frame, or frames refused): each of its
        performers, status lost."""
        camera = self.camera_state(camera_id)
        tracks = self._cameras[camera_id].tracks
        return [PerformerResult.empty(camera, tr.performer.address, tr.results, t) for tr in tracks]

    def reset_camera(self, camera_id: str) -> None:
        """Forget a camera's tracking, smoothing and resolution (after its feed restarted)."""
        old = self._cameras[camera_id]
        tracks = [self._new_track(t.performer, camera_id) for t in old.tracks]
        for new, previous in zip(tracks, old.tracks):
            new.results = previous.results
        self._cameras[camera_id] = _Camera(
            config=old.config, tracks=tracks, calibration=old.calibration, results=old.results
        )

    def process(
        self, frames: Sequence[Frame], t_send: float | Callable[[], float] | None = None
    ) -> list[PerformerResult]:
        """Run one batch (at most one frame per camera): all crops of all cameras in one inference.

        Args:
            frames: the newest frame of some cameras.
            t_send: when the results will be sent: a time, or a clock read once the model's output is
                decoded (live passes ``time.time``). With ``smoothing.forecast_to_send`` each pose, and the
                stage coordinates computed from it, is forecast to that time; otherwise (or None) every
                result is for its frame's capture time.

        Returns:
            One `PerformerResult` per performer of each frame's camera, frame by frame, performers in the
            order of the show file. A frame whose camera's calibration does not fit it gives ``refused``
            results with the reason (their ``seq`` is not used up).
        """
        results: list[list[PerformerResult]] = [[] for _ in frames]
        batch_index: list[int] = []
        for i, frame in enumerate(frames):
            state = self._cameras[frame.camera_id]
            if self._admit(state, (frame.width, frame.height)):
                batch_index.append(i)
            else:
                camera = self.camera_state(frame.camera_id)
                results[i] = [
                    PerformerResult.empty(camera, tr.performer.address, tr.results, frame.t_capture, "refused",
                                          state.refused, frame.seq)  # fmt: skip
                    for tr in state.tracks
                ]
        if batch_index:
            for i, done in zip(batch_index, self._run_batch([frames[i] for i in batch_index], t_send)):
                results[i] = done
        return [r for done in results for r in done]

    def _search_budget(self, frames: list[Frame]) -> dict[tuple[str, int], int]:
        """Search windows per searching track this batch: ``tracking.search_windows`` shared in turn."""
        searching = [(f.camera_id, k) for f in frames for k, tr in enumerate(self._cameras[f.camera_id].tracks)
                     if tr.tracker.searching]  # fmt: skip
        budget = {key: 0 for key in searching}
        if not searching:
            return budget
        for n in range(self.show.tracking.search_windows):
            budget[searching[(self._search_turn + n) % len(searching)]] += 1
        self._search_turn = (self._search_turn + 1) % len(searching)
        return budget

    def _head_of(self, camera_id: str) -> Callable[[np.ndarray], np.ndarray] | None:
        """Feet pixels -> head pixels of a performer standing there, for a camera with a stage calibration."""
        mapper = self._cameras[camera_id].mapper
        if mapper is None or not mapper.has_stage:
            return None
        return functools.partial(mapper.head_pixels, height_m=self.show.tracking.performer_height_m)

    def _run_batch(
        self, frames: list[Frame], t_send: float | Callable[[], float] | None
    ) -> list[list[PerformerResult]]:
        t0 = time.perf_counter()
        budget = self._search_budget(frames)
        # per frame: the crops of its camera; per track: the index (within the frame's crops) of its own crop
        boxes: list[list[CropBox]] = []
        own: list[list[int]] = []
        for frame in frames:
            size = (frame.width, frame.height)
            tracks = self._cameras[frame.camera_id].tracks
            frame_boxes = [tr.tracker.crop(size) for tr in tracks]
            head_of = self._head_of(frame.camera_id)
            for k, tr in enumerate(tracks):
                frame_boxes += tr.tracker.windows(size, budget.get((frame.camera_id, k), 0), head_of)
            boxes.append(frame_boxes)
            own.append(list(range(len(tracks))))
        affines = [crop_affine(b.center, b.size, self.input_wh) for frame_boxes in boxes for b in frame_boxes]
        images = [frame.image for frame, frame_boxes in zip(frames, boxes) for _ in frame_boxes]
        t1 = time.perf_counter()
        if affines:
            heatmaps = self.backend.infer(self.input_format.crop_batch(images, affines))
        t2 = time.perf_counter()
        joints = np.zeros((0, NUM_JOINTS, 2))
        confidence = np.zeros((0, NUM_JOINTS))
        if affines:
            coords, confidence = self.codec.decode(heatmaps)
            joints = self.codec.heatmap_to_image(coords, np.stack(affines))
            confidence = np.clip(confidence, 0.0, 1.0)
        t3 = time.perf_counter()
        forecast_to: float | None = None
        if t_send is not None and self.show.smoothing.forecast_to_send:
            forecast_to = t_send() if callable(t_send) else t_send
        out: list[list[PerformerResult]] = []
        offset = 0
        for frame, frame_boxes, frame_own in zip(frames, boxes, own):
            n = len(frame_boxes)
            out.append(self._finish_frame(frame, frame_boxes, frame_own, joints[offset : offset + n],
                                          confidence[offset : offset + n], forecast_to))  # fmt: skip
            offset += n
        t4 = time.perf_counter()
        for stage, seconds in zip(STAGES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            self.times.add(stage, seconds)
        return out

    def _finish_frame(
        self,
        frame: Frame,
        boxes: list[CropBox],
        own: list[int],
        joints: np.ndarray,
        confidence: np.ndarray,
        forecast_to: float | None,
    ) -> list[PerformerResult]:
        """Assign this frame's poses to its camera's performers, then track, smooth and map each."""
        state = self._cameras[frame.camera_id]
        size = (frame.width, frame.height)
        tracking = self.show.tracking
        mapper = state.mapper if state.mapper is not None and state.mapper.has_stage else None
        several_tracks = len(state.tracks) > 1
        # floor positions only matter to tell performers apart, and only when the show asks
        on_floor = several_tracks and tracking.assign_on_floor
        candidates = []
        for j, c in zip(joints, confidence):
            seen = (c >= tracking.min_confidence) & np.isfinite(j).all(axis=1)
            floor = mapper.floor_position(j, c, tracking.min_confidence) if mapper and on_floor else None
            candidates.append(Candidate(j, c, seen, None if floor is None else np.asarray(floor)))
        # each performer's look (torso colours) refuses poses of someone else (`stagepose.show.appearance`)
        looks = [tr.tracker.look for tr in state.tracks] if several_tracks and tracking.appearance else None
        histograms = [appearance.torso_histogram(frame.image, c.joints, c.seen) for c in candidates] if looks else []
        states = [tr.tracker.state for tr in state.tracks] if looks else []
        refused = appearance.refusals(looks, histograms, states) if looks else None
        views = []
        for k, tr in enumerate(state.tracks):
            prediction = tr.tracker.prediction()
            if prediction is None:
                tr.floor = None
            shares = [tr.tracker.zone_share(c.joints, c.confidence) for c in candidates] if several_tracks else None
            views.append(TrackView(
                prediction=prediction,
                own=own[k],
                qualifies=[tr.tracker.qualifies(c.joints, c.confidence, None if shares is None else shares[i])
                           for i, c in enumerate(candidates)],
                floor=None if tr.floor is None else (tr.floor, tracking.performer_height_m),
                zone_share=shares,
                refused=None if refused is None else refused[k],
            ))  # fmt: skip
        same = SamePerson(tracking.overlap, tracking.body_radius, tracking.body_share)
        taken = assign(views, candidates, gate=tracking.gate, same=same)
        hidden = self._occluded(taken, candidates)
        if looks:
            appearance.learn(looks, histograms, taken, [c.joints for c in candidates], [c.seen for c in candidates],
                             hidden, states)  # fmt: skip
        results = []
        for k, (track, choice) in enumerate(zip(state.tracks, taken)):
            pick = own[k] if choice is None else choice
            measured = confidence[pick]
            if choice is None and several_tracks:  # a pose not assigned to this performer may be anyone's
                measured = np.zeros_like(measured)
            if choice is not None and hidden[k].any():
                measured = np.where(hidden[k], 0.0, measured)
            if choice is not None and int((measured >= tracking.min_confidence).sum()) >= tracking.min_joints:
                track.tracker.accept(joints[choice], measured, size)
                track.floor = candidates[choice].floor  # None without feet or calibration: image distance
                tracked = True
            elif choice is None and views[k].prediction is not None and any(
                c is not None and same(candidates[own[k]], candidates[c]) for c in taken
            ):
                track.tracker.lose()  # another performer's track has this person: search again now
                tracked = False
            else:
                tracked = track.tracker.miss()  # not found, or hidden behind someone in front
            results.append(self._result(frame, state, track, boxes[pick], joints[pick], measured,
                                        hidden[k] if choice is not None else None, tracked, forecast_to))  # fmt: skip
        state.results += 1
        return results

    def _occluded(self, taken: list[int | None], candidates: list[Candidate]) -> list[np.ndarray]:
        """Per track, (16,) bool: the joints of its pose that lie on the body of another performer's pose
        standing in front of it (lower in the image); all False with ``tracking.occlusion`` off."""
        hidden = [np.zeros(NUM_JOINTS, dtype=bool) for _ in taken]
        if not self.show.tracking.occlusion:
            return hidden
        radius = self.show.tracking.body_radius
        chosen = [(k, candidates[c]) for k, c in enumerate(taken) if c is not None]
        for k, back in chosen:
            for m, front in chosen:
                if m != k and back.seen.any() and front.seen.any() and in_front(front.joints, front.seen,
                                                                                 back.joints, back.seen):  # fmt: skip
                    hidden[k] |= on_body(back.joints, back.seen, front.joints, front.seen, radius)
        return hidden

    def _result(
        self,
        frame: Frame,
        state: _Camera,
        track: _Track,
        box: CropBox,
        joints: np.ndarray,
        confidence: np.ndarray,
        occluded: np.ndarray | None,
        tracked: bool,
        forecast_to: float | None,
    ) -> PerformerResult:
        # An untracked performer's joints are not measurements: the smoother only predicts them.
        measured_conf = confidence if tracked else np.zeros_like(confidence)
        pose = track.smoother.update(frame.t_capture, joints, measured_conf)
        if forecast_to is not None:
            pose = track.smoother.forecast(forecast_to)
        position = np.asarray(pose.position)
        quality = np.asarray(pose.quality, dtype=np.float64)
        floor = joints_stage = None
        mapper = state.mapper
        if mapper is not None and mapper.has_stage:  # from the very pose sent, forecast or not
            joints_stage = mapper.to_stage(position)
            floor = mapper.floor_position(position, quality)
        result = PerformerResult(
            camera_id=frame.camera_id,
            performer=track.performer.address,
            seq=track.results,
            frame_seq=frame.seq,
            t_capture=frame.t_capture,
            t=pose.t,
            image_size=(frame.width, frame.height),
            status="tracked" if tracked else "lost",
            raw_joints=joints,
            raw_confidence=confidence,
            joints=position,
            confidence=quality,
            crop=box,
            occluded=occluded,
            joints_stage=joints_stage,
            floor=floor,
        )
        track.results += 1
        return result


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
