"""OSC output of the pose stream: pure packet building (``packets``), the UDP sink (``sink``), a monitor.

See ``packets`` for the address space and docs/osc.md for TouchDesigner and Unreal recipes.
"""

from __future__ import annotations

from stagepose.show.osc.config import OscDestinationConfig
from stagepose.show.osc.packets import (
    HEARTBEAT_ADDRESS,
    MAX_DATAGRAM_BYTES,
    PerformerFrame,
    PerformerPacket,
    build_performer_packet,
    heartbeat_message,
    ntp_timetag,
    validate_performer_name,
)
from stagepose.show.osc.sink import DestinationStats, OscSink

__all__ = [
    "HEARTBEAT_ADDRESS",
    "MAX_DATAGRAM_BYTES",
    "DestinationStats",
    "OscDestinationConfig",
    "OscSink",
    "PerformerFrame",
    "PerformerPacket",
    "build_performer_packet",
    "heartbeat_message",
    "ntp_timetag",
    "validate_performer_name",
]
