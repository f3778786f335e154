"""Typed settings of one OSC destination (a TouchDesigner or Unreal machine), embedded in the show config."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@dataclass(frozen=True)
class OscDestinationConfig:
    """Where and how one receiver gets the pose stream.

    Attributes:
        name: label used in logs and stats (letters, digits, ``_ . -``), unique per show.
        host: IPv4 address or host name of the receiver; a broadcast address needs ``broadcast: true``.
        port: UDP port the receiver listens on (TouchDesigner's OSC In, Unreal's OSC server).
        coords: ``normalized`` (0..1 of the camera image, from the top-left), ``pixels`` (camera image
            pixels) or ``stage`` (metres on the stage floor, from the venue calibration).
        flip_y: count y from the bottom (normalized: 1 - y, pixels: height - y), for consumers with a
            bottom-left origin such as TouchDesigner's texture space; not allowed with ``stage``
            (stage axes are set by the calibration).
        per_joint_messages: also send ``/stagepose/<performer>/<joint> x y conf`` for each joint
            (handy for OSC In CHOP); dropped for a frame whose bundle would exceed one datagram.
        heartbeat_hz: rate of ``/stagepose/heartbeat``, sent even when nobody is tracked; 0 disables.
        axes: how ``/stagepose/<p>/pose3d`` (several calibrated cameras) gives 3D joints: ``world`` (the
            calibration's frame: metres, right-handed, z up), ``touchdesigner`` (metres, Y up) or
            ``unreal`` (centimetres, Z up, left-handed); see `stagepose.multiview.axes`.
        broadcast: ``host`` is a broadcast address (``255.255.255.255`` or a subnet's ``x.y.z.255``):
            the sending socket is allowed to broadcast. Off by default, so a typo cannot flood the
            show network.
    """

    name: str = "local"
    host: str = "127.0.0.1"
    port: int = 7000
    coords: Literal["normalized", "pixels", "stage"] = "normalized"
    flip_y: bool = False
    per_joint_messages: bool = False
    heartbeat_hz: float = 1.0
    axes: Literal["world", "touchdesigner", "unreal"] = "world"
    broadcast: bool = False

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(
                f"name {self.name!r} must be 1-64 letters, digits, '_', '.' or '-' (it labels logs and stats)"
            )
        if not self.host or any(ch.isspace() for ch in self.host):
            raise ValueError(f"host must be an IPv4 address or host name, got {self.host!r}")
        if not 1 <= self.port <= 65535:
            raise ValueError(f"port must be in 1..65535, got {self.port}")
        if self.coords not in ("normalized", "pixels", "stage"):
            raise ValueError(f"coords must be 'normalized', 'pixels' or 'stage', got {self.coords!r}")
        if self.axes not in ("world", "touchdesigner", "unreal"):
            raise ValueError(f"axes must be 'world', 'touchdesigner' or 'unreal', got {self.axes!r}")
        if self.flip_y and self.coords == "stage":
            raise ValueError("flip_y applies to image coordinates only; stage axes are set by the calibration")
        if self.host == "255.255.255.255" and not self.broadcast:
            raise ValueError("host 255.255.255.255 is a broadcast address: add 'broadcast: true' to send there")
        if not (math.isfinite(self.heartbeat_hz) and 0.0 <= self.heartbeat_hz <= 100.0):
            raise ValueError(f"heartbeat_hz must be in 0..100 (0 = off), got {self.heartbeat_hz}")
