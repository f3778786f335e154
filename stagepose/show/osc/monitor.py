"""A console OSC monitor for technicians: listen on a UDP port and print every message received.

Used as ``stagepose osc-monitor --port 7000`` on the receiving machine (with TouchDesigner closed, or
on another port) to check that the pose feed arrives, which addresses it carries, their types and
the age of each bundle (now minus its capture timetag). Parsing is python-osc's, so what this prints
is what a standard OSC receiver sees.
"""

from __future__ import annotations

import math
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

from pythonosc.osc_bundle import OscBundle
from pythonosc.osc_bundle import ParseError as BundleParseError
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message import ParseError as MessageParseError
from pythonosc.parsing import osc_types

from stagepose.errors import ConfigError

_RECV_BYTES = 65536
_POLL_S = 0.2  # blocking receive with a timeout: checks the stop conditions without spinning


@dataclass
class MonitorSummary:
    """What the monitor received before it stopped."""

    datagrams: int = 0
    bundles: int = 0
    messages: int = 0
    malformed: int = 0
    seconds: float = 0.0
    interrupted: bool = False


def type_tags(message: OscMessage) -> str:
    """The message's type tag string without the comma (``fff``), '' when it has no arguments."""
    _, index = osc_types.get_string(message.dgram, 0)
    if index >= len(message.dgram):
        return ""
    tags, _ = osc_types.get_string(message.dgram, index)
    return tags[1:]


def format_message(message: OscMessage, max_args: int = 9) -> str:
    """``/address ,fff (3) 0.512 0.301 0.98`` with at most ``max_args`` values shown."""
    tags = type_tags(message)
    params: list[Any] = list(message.params)
    shown = " ".join(f"{p:.4g}" if isinstance(p, float) else repr(p) for p in params[:max_args])
    more = f" ... (+{len(params) - max_args})" if len(params) > max_args else ""
    return f"{message.address} ,{tags} ({len(params)}) {shown}{more}"


def _walk(bundle: OscBundle, depth: int) -> list[tuple[int, OscBundle | OscMessage]]:
    out: list[tuple[int, OscBundle | OscMessage]] = []
    for item in bundle:
        out.append((depth, item))
        if isinstance(item, OscBundle):
            out.extend(_walk(item, depth + 1))
    return out


def run_monitor(
    host: str = "127.0.0.1",
    port: int = 7000,
    count: int | None = None,
    seconds: float | None = None,
    out: IO[str] | None = None,
    max_args: int = 9,
    wall_clock: Callable[[], float] = time.time,
) -> MonitorSummary:
    """Print OSC messages arriving on ``host:port`` until Ctrl-C, ``count`` messages or ``seconds``.

    Args:
        host: local address to listen on (127.0.0.1: this machine only; 0.0.0.0: every interface).
        port: UDP port; 0 picks a free one (printed on the first line).
        count: stop after this many OSC messages (messages inside bundles count one each).
        seconds: stop after this long.
        out: where to print (default stdout; flushed after every datagram).
        max_args: argument values printed per message.
        wall_clock: Unix time source, for the age of each bundle.

    Returns:
        Counts of what was received; Ctrl-C ends the monitor normally (``interrupted`` is True).

    Raises:
        ConfigError: the address cannot be listened on (port in use, address not on this machine).
    """
    out = out or sys.stdout
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    except OSError as exc:
        raise ConfigError(f"cannot create a UDP socket: {exc}") from None
    with sock:
        try:
            sock.bind((host, port))
        except (OSError, OverflowError) as exc:
            raise ConfigError(
                f"cannot listen on {host}:{port}: {exc}. Is another program (TouchDesigner, Unreal, another "
                "monitor) using that port? Close it or pick another --port; --host must be an address of this machine."
            ) from None
        sock.settimeout(_POLL_S)
        bound_host, bound_port = sock.getsockname()[:2]
        summary = MonitorSummary()
        start = time.monotonic()
        try:  # from the first line on, Ctrl-C is the normal way to stop
            print(f"listening for OSC on {bound_host}:{bound_port} (Ctrl-C to stop)", file=out, flush=True)
            while True:
                elapsed = time.monotonic() - start
                if seconds is not None and elapsed >= seconds:
                    break
                if count is not None and summary.messages >= count:
                    break
                try:
                    data, sender = sock.recvfrom(_RECV_BYTES)
                except TimeoutError:
                    continue
                _print_datagram(data, sender, summary, out, max_args, wall_clock)
        except KeyboardInterrupt:
            summary.interrupted = True
        summary.seconds = time.monotonic() - start
        print(
            f"received {summary.datagrams} datagrams ({summary.bundles} bundles, {summary.messages} messages, "
            f"{summary.malformed} malformed) in {summary.seconds:.1f} s",
            file=out,
            flush=True,
        )
        return summary


def _print_datagram(
    data: bytes,
    sender: tuple[str, int],
    summary: MonitorSummary,
    out: IO[str],
    max_args: int,
    wall_clock: Callable[[], float],
) -> None:
    summary.datagrams += 1
    stamp = time.strftime("%H:%M:%S", time.localtime(wall_clock()))
    source = f"{sender[0]}:{sender[1]}"
    try:
        if OscBundle.dgram_is_bundle(data):
            bundle = OscBundle(data)
            items = _walk(bundle, 1)
            summary.bundles += 1
            ts = bundle.timestamp
            if ts == osc_types.IMMEDIATELY:
                when = "timetag immediately"
            else:
                age_ms = (wall_clock() - ts) * 1e3
                when = f"timetag {ts:.3f} (age {age_ms:.1f} ms)" if math.isfinite(age_ms) else f"timetag {ts}"
            lines = [f"{stamp} bundle {len(data)} B from {source}, {when}"]
            for depth, item in items:
                indent = "  " * depth
                if isinstance(item, OscMessage):
                    summary.messages += 1
                    lines.append(indent + format_message(item, max_args))
                else:
                    lines.append(f"{indent}bundle")
        elif OscMessage.dgram_is_message(data):
            message = OscMessage(data)
            summary.messages += 1
            lines = [f"{stamp} {format_message(message, max_args)}  [{len(data)} B from {source}]"]
        else:
            raise MessageParseError("neither an OSC message (starts with '/') nor a bundle ('#bundle')")
    except (BundleParseError, MessageParseError, osc_types.ParseError, IndexError, ValueError) as exc:
        summary.malformed += 1
        lines = [f"{stamp} malformed datagram of {len(data)} B from {source}: {exc}"]
    print("\n".join(lines), file=out, flush=True)
