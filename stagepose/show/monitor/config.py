"""Typed settings of the operator's monitor page (the ``monitor:`` section of a show file).

Light on purpose: the show config imports it, so ``stagepose check`` and ``--help`` stay fast (no web
server, no OpenCV here).
"""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass

DEFAULT_PORT = 8090
MIN_TOKEN_CHARS = 16  # shorter is guessable over a show network
_TOKEN = re.compile(r"^[A-Za-z0-9._~+/=-]+$")  # what survives a URL query and an HTTP header unescaped


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only (``localhost``, 127.0.0.0/8, ``::1``).

    Host names other than ``localhost`` count as not loopback: they may resolve to a network address.
    """
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class MonitorConfig:
    """The monitor page that the show process serves (``stagepose live --monitor``).

    Attributes:
        enabled: serve the page whenever the show runs (``--monitor`` turns it on for one run).
        host: address to listen on. Loopback (``127.0.0.1``) by default: the page is then seen on the show
            machine only. Any other address (``0.0.0.0`` for every interface, or one interface's address)
            needs ``token``.
        port: TCP port (0: any free port, printed at start).
        token: a shared secret of 16+ characters (letters, digits, ``._~+/=-``); when set, every request
            must carry it (``http://HOST:PORT/?token=...`` once, then a cookie; or ``Authorization: Bearer``),
            else 401. Required when ``host`` is not loopback.
        fps: camera pictures per second sent to the page (0.5..15), whatever the cameras' rate.
        width: the pictures are downscaled to at most this many pixels wide (64..1920).
        jpeg_quality: JPEG quality of the pictures (10..95).
        max_clients: browsers connected at once (1..32); one more is answered 503.
    """

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    token: str | None = None
    fps: float = 3.0
    width: int = 480
    jpeg_quality: int = 70
    max_clients: int = 4

    def __post_init__(self) -> None:
        if not self.host or any(ch.isspace() or ord(ch) < 32 for ch in self.host) or len(self.host) > 253:
            raise ValueError(f"host must be an IP address or host name, got {self.host!r}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in 0..65535 (0: any free port), got {self.port}")
        if self.token is not None and (len(self.token) < MIN_TOKEN_CHARS or not _TOKEN.match(self.token)):
            raise ValueError(
                f"token must be at least {MIN_TOKEN_CHARS} characters of letters, digits and ._~+/=- (got "
                f"{len(self.token)} characters); make one with `python3 -c 'import secrets; "
                "print(secrets.token_urlsafe())'`"
            )
        if self.token is None and not is_loopback(self.host):
            raise ValueError(
                f"host {self.host} is not a loopback address, so the monitor page would be open to the network: "
                f"add 'token: ...' ({MIN_TOKEN_CHARS}+ characters, e.g. from `python3 -c 'import secrets; "
                "print(secrets.token_urlsafe())'`) or use host 127.0.0.1"
            )
        if not (math.isfinite(self.fps) and 0.5 <= self.fps <= 15.0):
            raise ValueError(f"fps must be in 0.5..15, got {self.fps}")
        if not 64 <= self.width <= 1920:
            raise ValueError(f"width must be in 64..1920 pixels, got {self.width}")
        if not 10 <= self.jpeg_quality <= 95:
            raise ValueError(f"jpeg_quality must be in 10..95, got {self.jpeg_quality}")
        if not 1 <= self.max_clients <= 32:
            raise ValueError(f"max_clients must be in 1..32, got {self.max_clients}")

    @property
    def url(self) -> str:
        """The page's address as configured (``port`` 0 is only known once the server listens)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"
