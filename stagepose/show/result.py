"""What the pose pipeline hands to every consumer: one finished result per performer and frame
(a camera that follows several performers gives one result for each, every frame).

Live, replay and the benchmarks read only this (OSC, the keypoint record, overlays): smoothed, or
forecast to the send time when the show asks, with the stage coordinates computed from that same
pose, so every output of one result describes the same instant.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from stagepose.show.tracking import CropBox
from stagepose.skeleton import NUM_JOINTS

ResultStatus = Literal["tracked", "lost", "refused"]


@dataclass(frozen=True)
class CameraState:
    """What the pipeline currently knows of one camera (for status lines and 'lost' reports).

    Attributes:
        camera_id: from the show config.
        performers: the names (OSC names) of the performers it follows, in the order of the show file.
        image_size: (w, h) of its last frame, None before the first.
        results: frames of it processed so far.
        refused: why its frames are refused (calibration does not fit them), else None.
    """

    camera_id: str
    performers: tuple[str, ...]
    image_size: tuple[int, int] | None
    results: int
    refused: str | None


@dataclass(frozen=True)
class PerformerResult:
    """One performer in one frame, finished: raw, smoothed or forecast, in image and stage space.

    Attributes:
        camera_id: from the show config; performer: the performer's OSC name (``osc_name`` or ``name``).
        seq: this performer's result counter in this camera; frame_seq: the source's frame number (-1: no frame).
        t_capture: capture time of the frame (Unix seconds).
        t: the time ``joints`` are for: ``t_capture``, or the send time when forecast.
        image_size: (w, h) of the frame.
        status: ``tracked``, ``lost`` (not found in the crop, or no frame) or ``refused`` (the camera's
            calibration does not fit its frames; ``reason`` says why, joints are NaN).
        raw_joints: (16, 2) image pixels straight from the model; raw_confidence: (16,) heatmap peaks,
            0 for an occluded joint (what the smoother was given).
        joints: (16, 2) image pixels of the smoothed pose at ``t``; NaN for a joint never seen.
        confidence: (16,) 0..1 how much to trust each joint at ``t`` (the smoother's quality).
        crop: the box the model looked at (None when refused or without a frame).
        occluded: (16,) bool, the joints the model put on another performer standing in front (not
            measurements; see `stagepose.show.bodies`); None when no pose was taken.
        joints_stage: (16, 2) floor-plane stage metres of ``joints``, None without a stage calibration.
        floor: stage floor (x, y) metres of the performer at ``t``, None without calibration or when
            not found.
        reason: why the frame was refused, else None.
    """

    camera_id: str
    performer: str
    seq: int
    frame_seq: int
    t_capture: float
    t: float
    image_size: tuple[int, int]
    status: ResultStatus
    raw_joints: np.ndarray
    raw_confidence: np.ndarray
    joints: np.ndarray
    confidence: np.ndarray
    crop: CropBox | None = None
    occluded: np.ndarray | None = None
    joints_stage: np.ndarray | None = None
    floor: tuple[float, float] | None = None
    reason: str | None = None

    def __post_init__(self) -> None:
        for name in ("raw_joints", "joints", "joints_stage"):
            value = getattr(self, name)
            if value is not None and np.shape(value) != (NUM_JOINTS, 2):
                raise ValueError(f"{name} must have shape ({NUM_JOINTS}, 2), got {np.shape(value)}")
        if self.occluded is not None and np.shape(self.occluded) != (NUM_JOINTS,):
            raise ValueError(f"occluded must have shape ({NUM_JOINTS},), got {np.shape(self.occluded)}")
        for name in ("raw_confidence", "confidence"):
            if np.shape(getattr(self, name)) != (NUM_JOINTS,):
                raise ValueError(f"{name} must have shape ({NUM_JOINTS},), got {np.shape(getattr(self, name))}")
        if (self.status == "refused") != (self.reason is not None):
            raise ValueError(f"a reason goes with status 'refused' only, got {self.status!r} with {self.reason!r}")

    @property
    def tracked(self) -> bool:
        return self.status == "tracked"

    @property
    def refused(self) -> bool:
        return self.status == "refused"

    @classmethod
    def empty(
        cls,
        camera: CameraState,
        performer: str,
        seq: int,
        t: float,
        status: ResultStatus = "lost",
        reason: str | None = None,
        frame_seq: int = -1,
    ) -> PerformerResult:
        """A result without a pose: a camera without frames (lost) or with refused frames."""
        nan = np.full((NUM_JOINTS, 2), np.nan)
        zeros = np.zeros(NUM_JOINTS)
        return cls(
            camera_id=camera.camera_id,
            performer=performer,
            seq=seq,
            frame_seq=frame_seq,
            t_capture=t,
            t=t,
            image_size=camera.image_size or (1, 1),
            status=status,
            raw_joints=nan,
            raw_confidence=zeros,
            joints=nan,
            confidence=zeros,
            reason=reason,
        )
