"""OSC 1.0 packets of the pose stream, built in pure code (no sockets), testable to the byte.

Address space (``<p>`` is the performer name, ``<joint>`` a name from ``stagepose.skeleton.JOINT_NAMES``):

==============================  =============================================  ==========================
address                         arguments (all float32)                        when
==============================  =============================================  ==========================
``/stagepose/<p>/frame``        seq, t_show_s, latency_ms                       every frame
``/stagepose/<p>/status``       tracked (1 tracked, 0 lost), joints_tracked     every frame
``/stagepose/<p>/pose``         16 x (x, y, conf), MPII joint order (48)        every frame
``/stagepose/<p>/stage``        x_m, y_m (floor position)                       when calibrated
``/stagepose/<p>/pose3d``       16 x (x, y, z, conf), destination ``axes`` (64)  with several cameras
``/stagepose/<p>/<joint>``      x, y, conf                                      if per_joint_messages
``/stagepose/heartbeat``        uptime_s, performers_tracked                    heartbeat_hz, always
``/stagepose/record``           ok (1 writing, 0 failing), lines_lost           with each heartbeat
==============================  =============================================  ==========================

One performer's frame is one bundle in one UDP datagram whose OSC timetag is the frame's capture
time (NTP format converted from Unix time), never split over two datagrams: if it would exceed
``MAX_DATAGRAM_BYTES`` (1472 = Ethernet MTU 1500 - IPv4 20 - UDP 8) the optional per-joint messages
are left out of that bundle (``PerformerPacket.per_joint_dropped``); ``/pose3d`` (292 bytes for a
5-letter name) is part of the core and always fits: the core with the longest name (32 characters)
is under 900 bytes. Arguments are float32 only
(TouchDesigner's OSC In CHOP takes float32, int32 and timetags; doubles and strings raise warnings
there), so even codes and counters are floats: ``seq`` counts modulo 2^24 to stay exact, and the
time is sent as seconds since the show started (float32 holds that to 1 ms for 4.6 hours) while the
exact Unix capture time travels in the timetag.

What ``conf`` and the counts mean (one definition, for every destination):

- Lost joints: confidence 0 with the last known position (the smoother holds it), never NaN (NaN
  breaks many consumers); a joint never seen yet is at (0, 0) with confidence 0.
- A lost performer (``status 0``) sends every joint with confidence exactly 0.
- A joint outside the camera image (the model guesses past the frame edge) is sent with confidence 0,
  and in image coordinates (``normalized``, ``pixels``) its position is clamped to the image, so
  normalized values are always within 0..1.
- ``joints_tracked`` counts the joints whose sent confidence is > 0 and >= the show's
  ``tracking.min_confidence`` (``PerformerFrame.min_confidence``), the threshold at which the tracker
  counts a joint as seen.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Self

import numpy as np

from stagepose.show.osc.config import OscDestinationConfig
from stagepose.skeleton import JOINT_NAMES, NUM_JOINTS

if TYPE_CHECKING:
    from stagepose.show.result import PerformerResult

MAX_DATAGRAM_BYTES = 1472
ROOT = "/stagepose"
HEARTBEAT_ADDRESS = f"{ROOT}/heartbeat"
RECORD_ADDRESS = f"{ROOT}/record"
SEQ_MODULO = 1 << 24  # float32 holds every integer below 2^24 exactly
NTP_UNIX_OFFSET_S = 2_208_988_800  # seconds from 1900-01-01 (NTP epoch) to 1970-01-01 (Unix epoch)
STATUS_TRACKED = 1.0
STATUS_LOST = 0.0

_PERFORMER = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_RESERVED = {"heartbeat"}
_BUNDLE_TAG = b"#bundle\x00"


def validate_performer_name(name: str) -> str:
    """Return ``name`` if it is usable in an OSC address, else raise.

    Raises:
        ValueError: not 1-32 letters, digits, ``_`` or ``-`` (OSC reserves ``space # * , / ? [ ] { }``),
            or a reserved name (``heartbeat``).
    """
    if not isinstance(name, str) or not _PERFORMER.match(name):
        raise ValueError(
            f"performer name {name!r} must be 1-32 letters, digits, '_' or '-' (it becomes an OSC address)"
        )
    if name in _RESERVED:
        raise ValueError(f"performer name {name!r} is reserved by /stagepose/{name}")
    return name


def osc_string(text: str) -> bytes:
    """ASCII text, NUL-terminated and padded with NULs to a multiple of 4 bytes (OSC-string)."""
    raw = text.encode("ascii")
    return raw + b"\x00" * (4 - len(raw) % 4)


def osc_message(address: str, values: Sequence[float] | np.ndarray) -> bytes:
    """An OSC message whose arguments are all float32 (type tag ``,fff...``).

    Args:
        address: OSC address starting with ``/``.
        values: the arguments; each becomes a big-endian IEEE-754 float32.
    """
    args = np.asarray(values, dtype=">f4").ravel()
    return osc_string(address) + osc_string("," + "f" * args.size) + args.tobytes()


def ntp_timetag(unix_s: float) -> bytes:
    """64-bit OSC timetag (NTP: 32-bit seconds since 1900 + 32-bit fraction) of a Unix time.

    The seconds wrap modulo 2^32 (NTP era 1 begins on 2036-02-07), as NTP itself does.
    """
    whole = math.floor(unix_s)
    fraction = min(int(round((unix_s - whole) * 2**32)), 2**32 - 1)
    return struct.pack(">II", (whole + NTP_UNIX_OFFSET_S) % 2**32, fraction)


def unix_from_timetag(tag: bytes) -> float:
    """Inverse of ``ntp_timetag`` for times in NTP era 0 (before 2036-02-07)."""
    seconds, fraction = struct.unpack(">II", tag)
    return seconds - NTP_UNIX_OFFSET_S + fraction / 2**32


def osc_bundle(timetag: bytes, elements: Sequence[bytes]) -> bytes:
    """An OSC bundle: ``#bundle``, the 8-byte timetag, then each element prefixed by its int32 size."""
    return _BUNDLE_TAG + timetag + b"".join(struct.pack(">i", len(e)) + e for e in elements)


def heartbeat_message(uptime_s: float, performers_tracked: int) -> bytes:
    """``/stagepose/heartbeat uptime_s performers_tracked`` (a plain message, not a bundle)."""
    return osc_message(HEARTBEAT_ADDRESS, (uptime_s, float(performers_tracked)))


def record_status_message(ok: bool, lines_lost: int) -> bytes:
    """``/stagepose/record ok lines_lost``: whether the keypoint record is being written (1) or failing (0)."""
    return osc_message(RECORD_ADDRESS, (1.0 if ok else 0.0, float(lines_lost)))


@dataclass(frozen=True)
class PerformerFrame:
    """What the live loop hands to the OSC sink for one performer and one frame.

    Attributes:
        performer: name used in the addresses (see ``validate_performer_name``).
        seq: frame counter of this performer (sent modulo 2^24).
        t_capture: capture time of the frame, Unix seconds (becomes the bundle's timetag).
        joints: (16, 2) image pixels (x right, y down from the top-left), smoothed; NaN where unknown.
        confidence: (16,) 0..1 per joint to send (the smoother's quality: 0 for lost joints).
        image_size: (width, height) of the camera image in pixels, for normalised coordinates.
        tracked: the performer is currently tracked (status 1) or lost (status 0).
        joints_stage: (16, 2) stage metres from the calibration, or None when not calibrated.
        floor_position: (x, y) stage metres of the performer on the floor, or None.
        min_confidence: a joint counts in ``joints_tracked`` from this sent confidence on (the show's
            ``tracking.min_confidence``).
        joints3d: (16, 3) metres in the calibration's world frame (several cameras), NaN where not
            triangulated; None: no ``/pose3d``.
        confidence3d: (16,) 0..1 per 3D joint (required with ``joints3d``).
    """

    performer: str
    seq: int
    t_capture: float
    joints: np.ndarray
    confidence: np.ndarray
    image_size: tuple[int, int]
    tracked: bool = True
    joints_stage: np.ndarray | None = None
    floor_position: tuple[float, float] | None = None
    min_confidence: float = 0.3
    joints3d: np.ndarray | None = None
    confidence3d: np.ndarray | None = None

    def __post_init__(self) -> None:
        validate_performer_name(self.performer)
        if (self.joints3d is None) != (self.confidence3d is None):
            raise ValueError("joints3d and confidence3d go together")
        if self.joints3d is not None and np.shape(self.joints3d) != (NUM_JOINTS, 3):
            raise ValueError(f"joints3d must have shape ({NUM_JOINTS}, 3), got {np.shape(self.joints3d)}")
        if self.confidence3d is not None and np.shape(self.confidence3d) != (NUM_JOINTS,):
            raise ValueError(f"confidence3d must have shape ({NUM_JOINTS},), got {np.shape(self.confidence3d)}")
        if np.shape(self.joints) != (NUM_JOINTS, 2):
            raise ValueError(f"joints must have shape ({NUM_JOINTS}, 2), got {np.shape(self.joints)}")
        if np.shape(self.confidence) != (NUM_JOINTS,):
            raise ValueError(f"confidence must have shape ({NUM_JOINTS},), got {np.shape(self.confidence)}")
        if self.joints_stage is not None and np.shape(self.joints_stage) != (NUM_JOINTS, 2):
            raise ValueError(f"joints_stage must have shape ({NUM_JOINTS}, 2), got {np.shape(self.joints_stage)}")
        if len(self.image_size) != 2 or min(self.image_size) <= 0:
            raise ValueError(f"image_size must be (width, height) > 0, got {self.image_size}")
        if not math.isfinite(self.t_capture):
            raise ValueError(f"t_capture must be a finite Unix time, got {self.t_capture}")
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be in 0..1, got {self.min_confidence}")

    @classmethod
    def from_result(cls, result: PerformerResult, min_confidence: float = 0.3) -> Self:
        """The OSC payload of one pipeline result: its pose at ``result.t`` (forecast or not), in image
        and stage coordinates alike; the capture time stays the timetag (latency is measured from it)."""
        return cls(
            performer=result.performer,
            seq=result.seq,
            t_capture=result.t_capture,
            joints=result.joints,
            confidence=result.confidence,
            image_size=result.image_size,
            tracked=result.tracked,
            joints_stage=result.joints_stage,
            floor_position=result.floor,
            min_confidence=min_confidence,
        )


@dataclass(frozen=True)
class PerformerPacket:
    """One destination's datagram for one performer frame.

    Attributes:
        datagram: the bundle bytes (at most ``MAX_DATAGRAM_BYTES``).
        per_joint_dropped: per-joint messages were asked for but left out to keep one datagram.
        pose_sent: False when the destination wants stage coordinates and the frame has none.
    """

    datagram: bytes
    per_joint_dropped: bool
    pose_sent: bool


def sent_confidence(frame: PerformerFrame) -> np.ndarray:
    """(16,) the confidence to send: 0 for a lost performer, unknown joints and joints outside the image."""
    conf = np.asarray(frame.confidence, dtype=np.float64)
    if not frame.tracked:
        return np.zeros(conf.shape)
    width, height = frame.image_size
    joints = np.asarray(frame.joints, dtype=np.float64)
    x, y = joints[:, 0], joints[:, 1]
    inside = (x >= 0) & (x <= width) & (y >= 0) & (y <= height)  # NaN compares False: unknown is outside
    # NaN and <= 0 become 0, > 1 becomes 1 (np.where/np.minimum: a few times cheaper than nan_to_num + clip)
    return np.where(inside & (conf > 0), np.minimum(conf, 1.0), 0.0)


def destination_points(frame: PerformerFrame, dest: OscDestinationConfig) -> np.ndarray | None:
    """(16, 2) float64 joint coordinates in the destination's space, or None (stage without calibration).

    Image coordinates are clamped to the image (normalized: 0..1); NaN (unknown) stays NaN.
    """
    if dest.coords == "stage":
        return None if frame.joints_stage is None else np.asarray(frame.joints_stage, dtype=np.float64)
    width, height = frame.image_size
    points = np.clip(np.array(frame.joints, dtype=np.float64), 0.0, (width, height))
    if dest.coords == "normalized":
        points /= (width, height)
        if dest.flip_y:
            points[:, 1] = 1.0 - points[:, 1]
    elif dest.flip_y:
        points[:, 1] = height - points[:, 1]
    return points


def _pose_values(points: np.ndarray, confidence: np.ndarray) -> np.ndarray:
    """(16, 3) x, y, conf with no NaN: unknown positions become 0 with confidence 0."""
    conf = np.asarray(confidence, dtype=np.float64)
    known = np.isfinite(points).all(axis=1)
    xy = np.where(known[:, None], points, 0.0)
    return np.column_stack([xy, np.where(known, conf, 0.0)])


def pose3d_values(frame: PerformerFrame, dest: OscDestinationConfig) -> np.ndarray | None:
    """(16, 4) x, y, z, conf of the 3D joints in the destination's ``axes``; unknown joints (and every joint
    of a lost performer) at (0, 0, 0) with confidence 0, never NaN. None without 3D joints."""
    if frame.joints3d is None or frame.confidence3d is None:
        return None
    from stagepose.multiview.axes import convert

    points = convert(np.asarray(frame.joints3d, dtype=np.float64), dest.axes)
    conf = np.asarray(frame.confidence3d, dtype=np.float64)
    known = np.isfinite(points).all(axis=1) & np.isfinite(conf) & frame.tracked
    return np.column_stack([np.where(known[:, None], points, 0.0), np.where(known, np.clip(conf, 0.0, 1.0), 0.0)])


def count_tracked(confidence: np.ndarray, min_confidence: float) -> int:
    """``joints_tracked``: joints whose sent confidence is > 0 and >= ``min_confidence``."""
    conf = np.asarray(confidence, dtype=np.float64)
    return int(np.count_nonzero((conf > 0) & (conf >= min_confidence)))


def build_performer_packet(
    frame: PerformerFrame,
    dest: OscDestinationConfig,
    show_start_unix: float,
    latency_ms: float,
) -> PerformerPacket:
    """The bundle of one performer frame for one destination.

    Args:
        frame: the performer's smoothed frame.
        dest: coordinates, flip and per-joint choice of the receiver.
        show_start_unix: Unix time the show started; ``t_show_s`` = t_capture - show_start_unix.
        latency_ms: capture-to-send latency to report in ``/frame``.

    Returns:
        The datagram, never larger than ``MAX_DATAGRAM_BYTES``.
    """
    prefix = f"{ROOT}/{frame.performer}"
    points = destination_points(frame, dest)
    values = None if points is None else _pose_values(points, sent_confidence(frame))
    joints_tracked = 0 if values is None else count_tracked(values[:, 2], frame.min_confidence)
    core = [
        osc_message(f"{prefix}/frame", (frame.seq % SEQ_MODULO, frame.t_capture - show_start_unix, latency_ms)),
        osc_message(f"{prefix}/status", (STATUS_TRACKED if frame.tracked else STATUS_LOST, joints_tracked)),
    ]
    if values is not None:
        core.append(osc_message(f"{prefix}/pose", values))
    if frame.floor_position is not None and all(math.isfinite(v) for v in frame.floor_position):
        core.append(osc_message(f"{prefix}/stage", frame.floor_position))
    values3d = pose3d_values(frame, dest)
    if values3d is not None:
        core.append(osc_message(f"{prefix}/pose3d", values3d))
    timetag = ntp_timetag(frame.t_capture)
    datagram = osc_bundle(timetag, core)
    if len(datagram) > MAX_DATAGRAM_BYTES:  # impossible with names of <= 32 characters: a bug
        raise ValueError(f"core bundle of {frame.performer!r} is {len(datagram)} bytes > {MAX_DATAGRAM_BYTES}")
    dropped = False
    if dest.per_joint_messages and values is not None:
        joints = [osc_message(f"{prefix}/{name}", values[j]) for j, name in enumerate(JOINT_NAMES)]
        full = osc_bundle(timetag, core + joints)
        if len(full) <= MAX_DATAGRAM_BYTES:
            datagram = full
        else:
            dropped = True
    return PerformerPacket(datagram=datagram, per_joint_dropped=dropped, pose_sent=values is not None)
