"""The monitor's listening socket, opened before the show starts (light: `stagepose check` uses it too)."""

from __future__ import annotations

import socket

from stagepose.errors import ConfigError
from stagepose.show.monitor.config import MonitorConfig


def listen_socket(config: MonitorConfig) -> socket.socket:
    """A listening TCP socket on the monitor's host and port.

    Raises:
        ConfigError: the port is taken or the host is not an address of this machine (one line).
    """
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    try:
        return socket.create_server((config.host, config.port), family=family, backlog=64)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(
            f"monitor: cannot listen on {config.host}:{config.port}: {reason} (is another program or "
            "stagepose using the port? set monitor.port, or a monitor.host this machine has)"
        ) from None
