"""Camera addresses as written in a show config, parsed into typed specs.

One string per camera keeps the show YAML readable and lets the show-config validator reject a bad
address at load time (before the show) with a message that lists the forms that work::

    rtsp://[user:password@]host[:port]/path[?transport=tcp|udp]
    ndi://SOURCE NAME[?ips=IP,IP...]
    file://PATH  or  PATH   [?loop=true|false&pacing=realtime|fast]
    webcam:INDEX[?width=W&height=H&fps=F]

Query options that stagepose does not know are an error, except for RTSP, where they belong to the
camera's own URL (``?channel=1``) and are passed on untouched.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

Transport = Literal["tcp", "udp"]
Pacing = Literal["realtime", "fast"]

ALLOWED_FORMS = (
    "allowed source forms: "
    "'rtsp://[user:password@]host[:port]/path[?transport=tcp|udp]'; "
    "'ndi://SOURCE NAME[?ips=IP,IP...]' (e.g. 'ndi://STAGE-PC (Cam 1)?ips=10.0.0.5'); "
    "'file://PATH' or 'PATH', with optional '?loop=true|false&pacing=realtime|fast' "
    "(e.g. 'clips/cam01.mp4?loop=true'); "
    "'webcam:INDEX[?width=W&height=H&fps=F]' (e.g. 'webcam:0')"
)

_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True, repr=False)
class RtspSpec:
    """An RTSP camera (IP camera, encoder, media server).

    Attributes:
        url: the URL handed to FFmpeg, without stagepose's own options.
        transport: "tcp" (interleaved on the RTSP connection: no loss, the safe default on a show
            network) or "udp" (lower latency, loses packets when the network is busy).
    """

    kind: ClassVar[str] = "rtsp"
    url: str
    transport: Transport = "tcp"

    def __post_init__(self) -> None:
        if self.transport not in ("tcp", "udp"):
            raise ValueError(f"RTSP transport must be 'tcp' or 'udp', got {self.transport!r}")
        if not self.url.startswith("rtsp://"):
            raise ValueError(f"RTSP url must start with 'rtsp://', got {redact(self.url)!r}")

    def __repr__(self) -> str:
        # Never print a camera password into a log or traceback.
        return f"RtspSpec(url={redact(self.url)!r}, transport={self.transport!r})"

    @property
    def uri(self) -> str:
        """The address for logs and telemetry, with any password replaced by ``***``."""
        shown = redact(self.url)
        return shown if self.transport == "tcp" else _add_query(shown, {"transport": self.transport})


@dataclass(frozen=True)
class NdiSpec:
    """An NDI source, found by its full name ("MACHINE (Stream)") on the network.

    Attributes:
        name: the NDI source name as NDI tools show it, e.g. "STAGE-PC (Cam 1)".
        ips: addresses of the sending machines, for networks where mDNS discovery does not reach
            (other subnet, multicast blocked). Empty: mDNS discovery only.
    """

    kind: ClassVar[str] = "ndi"
    name: str
    ips: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ValueError("NDI source name is empty")
        for ip in self.ips:
            _check_ip(ip)

    @property
    def uri(self) -> str:
        """The address in URI form."""
        base = f"ndi://{self.name}"
        return f"{base}?ips={','.join(self.ips)}" if self.ips else base


@dataclass(frozen=True)
class FileSpec:
    """A video file played as if it were a camera (demo, rehearsal, replay).

    Attributes:
        path: the video file (absolute once parsed).
        loop: start again at the end instead of ending.
        pacing: "realtime" delivers frames at the pace of their timestamps, newest-only like a
            camera (a slow consumer drops frames); "fast" delivers every frame as fast as the
            consumer takes them, dropping none (offline replay).
    """

    kind: ClassVar[str] = "file"
    path: Path
    loop: bool = False
    pacing: Pacing = "realtime"

    def __post_init__(self) -> None:
        if isinstance(self.path, str):  # accept a string path from callers; always hold a Path
            object.__setattr__(self, "path", Path(self.path))
        if not isinstance(self.path, Path):
            raise ValueError(f"file path must be a path, got {type(self.path).__name__}")
        if self.pacing not in ("realtime", "fast"):
            raise ValueError(f"file pacing must be 'realtime' or 'fast', got {self.pacing!r}")

    @property
    def uri(self) -> str:
        """The address in URI form."""
        opts: dict[str, str] = {}
        if self.loop:
            opts["loop"] = "true"
        if self.pacing != "realtime":
            opts["pacing"] = self.pacing
        return _add_query(f"file://{self.path}", opts)


@dataclass(frozen=True)
class WebcamSpec:
    """A local capture device through OpenCV (USB camera, HDMI capture card).

    Attributes:
        index: OpenCV device index (0 is /dev/video0 on Linux).
        width, height, fps: requested capture mode, or None for the device's default. The device
            may pick the nearest mode it supports.
    """

    kind: ClassVar[str] = "webcam"
    index: int
    width: int | None = None
    height: int | None = None
    fps: float | None = None

    def __post_init__(self) -> None:
        if self.index < 0:
            raise ValueError(f"webcam index must be >= 0, got {self.index}")
        for name in ("width", "height", "fps"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"webcam {name} must be > 0, got {value}")

    @property
    def uri(self) -> str:
        """The address in URI form."""
        opts = {k: str(v) for k in ("width", "height", "fps") if (v := getattr(self, k)) is not None}
        return _add_query(f"webcam:{self.index}", opts)


SourceSpec = RtspSpec | NdiSpec | FileSpec | WebcamSpec
"""Any parsed camera address; dispatch on ``spec.kind`` or ``isinstance``."""


def parse_source_uri(uri: str, *, base_dir: str | Path | None = None) -> SourceSpec:
    """Parse a camera address from a show config.

    Args:
        uri: one of the forms in `ALLOWED_FORMS`.
        base_dir: directory that relative file paths are relative to (the show config's folder);
            None means the current directory.

    Returns:
        The typed spec. File paths are resolved and must exist.

    Raises:
        ValueError: the address is malformed, uses an unknown scheme or option, or names a file
            that does not exist; the message quotes the address and lists the allowed forms.
    """
    if not isinstance(uri, str) or not uri.strip():
        raise ValueError(f"empty source address; {ALLOWED_FORMS}")
    text = uri.strip()
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    match = _SCHEME_RE.match(text)
    scheme = match.group(1).lower() if match else ""
    try:
        if scheme == "rtsp":
            return _parse_rtsp(text)
        if scheme == "ndi":
            return _parse_ndi(text)
        if scheme == "webcam":
            return _parse_webcam(text)
        if scheme == "file":
            return _parse_file(text, base, plain=False)
        if scheme and len(scheme) > 1 and not _resolve(text, base).exists():
            raise ValueError(f"unknown scheme '{scheme}:'")
        return _parse_file(text, base, plain=True)
    except ValueError as exc:
        raise ValueError(f"source {redact(text)!r}: {exc}; {ALLOWED_FORMS}") from None


def redact(url: str) -> str:
    """Replace the password in ``scheme://user:password@host`` with ``***`` (for logs/telemetry)."""
    return re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://[^/@:]*):[^/@]*@", r"\1:***@", url)


def _parse_rtsp(text: str) -> RtspSpec:
    try:
        parts = urlsplit(text)
        port = parts.port  # raises ValueError for a non-numeric or out-of-range port
    except ValueError as exc:
        raise ValueError(f"bad RTSP address: {exc}") from None
    if not parts.hostname:
        raise ValueError("RTSP address has no host")
    if parts.fragment:
        raise ValueError("RTSP address must not have a '#fragment'")
    del port
    query = _query_pairs(parts.query)
    transport = "tcp"
    kept: list[tuple[str, str]] = []
    for key, value in query:
        if key == "transport":
            if value.lower() not in ("tcp", "udp"):
                raise ValueError(f"option transport={value!r}: use 'tcp' or 'udp'")
            transport = value.lower()
        else:
            kept.append((key, value))  # the camera's own query parameter
    url = urlunsplit(("rtsp", parts.netloc, parts.path, urlencode(kept, safe=",:/"), ""))
    return RtspSpec(url=url, transport=transport)  # type: ignore[arg-type]


def _parse_ndi(text: str) -> NdiSpec:
    rest = text[len("ndi://") :] if text[:6].lower() == "ndi://" else ""
    if not rest:
        raise ValueError("NDI address must look like 'ndi://MACHINE (Stream)'")
    name, _, query = rest.partition("?")
    name = unquote(name).strip()
    if not name:
        raise ValueError("NDI source name is empty")
    opts = _options(query, {"ips"})
    ips: tuple[str, ...] = ()
    if "ips" in opts:
        ips = tuple(ip.strip() for ip in opts["ips"].split(",") if ip.strip())
        if not ips:
            raise ValueError("option ips= is empty: give IP addresses separated by commas")
        for ip in ips:
            _check_ip(ip)
    return NdiSpec(name=name, ips=ips)


def _parse_webcam(text: str) -> WebcamSpec:
    rest = text[len("webcam:") :]
    index_text, _, query = rest.partition("?")
    if not index_text.isdigit():
        raise ValueError(f"webcam index must be a number like 'webcam:0', got {index_text!r}")
    opts = _options(query, {"width", "height", "fps"})
    width = _positive(opts, "width", int)
    height = _positive(opts, "height", int)
    fps = _positive(opts, "fps", float)
    return WebcamSpec(index=int(index_text), width=width, height=height, fps=fps)  # type: ignore[arg-type]


def _parse_file(text: str, base: Path, *, plain: bool) -> FileSpec:
    if plain:
        # A plain path may itself contain '?': only split off options if the whole string is not a file.
        if "?" in text and not _resolve(text, base).is_file():
            path_text, _, query = text.rpartition("?")
        else:
            path_text, query = text, ""
    else:
        path_text, _, query = text[len("file://") :].partition("?")
        path_text = unquote(path_text)
    if not path_text:
        raise ValueError("no file path")
    opts = _options(query, {"loop", "pacing"})
    loop = _bool(opts["loop"], "loop") if "loop" in opts else False
    pacing = opts.get("pacing", "realtime").lower()
    if pacing not in ("realtime", "fast"):
        raise ValueError(f"option pacing={pacing!r}: use 'realtime' or 'fast'")
    path = _resolve(path_text, base)
    if not path.exists():
        raise ValueError(f"video file not found: {path}")
    if not path.is_file():
        raise ValueError(f"not a file: {path}")
    return FileSpec(path=path, loop=loop, pacing=pacing)  # type: ignore[arg-type]


def _resolve(path_text: str, base: Path) -> Path:
    path = Path(path_text).expanduser()
    return (path if path.is_absolute() else base / path).resolve()


def _query_pairs(query: str) -> list[tuple[str, str]]:
    if not query:
        return []
    try:
        return parse_qsl(query, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise ValueError(f"bad option string {query!r}: use 'key=value&key=value'") from None


def _options(query: str, known: set[str]) -> dict[str, str]:
    opts: dict[str, str] = {}
    for key, value in _query_pairs(query):
        if key not in known:
            raise ValueError(f"unknown option {key!r} (known: {', '.join(sorted(known))})")
        if key in opts:
            raise ValueError(f"option {key!r} given twice")
        opts[key] = value
    return opts


def _bool(value: str, name: str) -> bool:
    low = value.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValueError(f"option {name}={value!r}: use true or false")


def _positive(opts: Mapping[str, str], name: str, cast: type) -> int | float | None:
    if name not in opts:
        return None
    try:
        value = cast(opts[name])
    except ValueError:
        raise ValueError(f"option {name}={opts[name]!r} is not a {cast.__name__}") from None
    if value <= 0:
        raise ValueError(f"option {name}={opts[name]!r} must be > 0")
    return value


def _check_ip(ip: str) -> None:
    try:
        ipaddress.ip_address(ip)
    except ValueError:
        raise ValueError(f"{ip!r} is not an IP address (ips= takes addresses like 10.0.0.5)") from None


def _add_query(base: str, opts: Mapping[str, str]) -> str:
    if not opts:
        return base
    sep = "&" if "?" in base else "?"
    return base + sep + "&".join(f"{k}={quote(v, safe=',:/')}" for k, v in opts.items())
