"""The UDP transport: one socket, several destinations, and sending that never raises into the live loop.

``OscSink`` is a context manager. Opening it resolves each destination's host; each destination
then sends from a non-blocking IPv4 UDP socket bound to the interface its route needs (127.0.0.1 for
a loopback receiver, the routing interface's address otherwise; sockets are shared by destinations
that need the same one). Only a destination with ``broadcast: true`` gets a socket allowed to
broadcast. A numeric address resolves at once; a host name that
does not resolve is retried in a background thread every ``resolve_retry_s`` so a DNS hiccup never
stalls the live loop and a receiver that comes up late is picked up. Every send error (no route,
unresolved host, full socket buffer) is counted per destination and logged at most once per
``error_log_interval_s``; the live loop never sees an exception from the network.

Not thread-safe: call it from the live loop's thread only.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence
from types import TracebackType

from stagepose.show.osc.config import OscDestinationConfig
from stagepose.show.osc.packets import (
    PerformerFrame,
    PerformerPacket,
    build_performer_packet,
    heartbeat_message,
    record_status_message,
)

log = logging.getLogger(__name__)


@dataclasses.dataclass
class DestinationStats:
    """Counters of one destination since the sink opened (``OscSink.stats()`` returns copies).

    Attributes:
        name: the destination's name.
        target: ``host:port`` as configured.
        resolved: the host has an address to send to.
        datagrams_sent: datagrams handed to the operating system (bundles and heartbeats).
        bytes_sent: their total size.
        heartbeats_sent: heartbeat messages among them.
        send_errors: datagrams not sent (network error, unresolved host, full buffer).
        per_joint_dropped: bundles sent without the per-joint messages, which did not fit one datagram.
        pose_missing: bundles sent without a pose: stage coordinates wanted, none calibrated.
        last_error: the latest error, for the status line.
        local: ``ip:port`` the destination sends from, once its socket is open.
    """

    name: str
    target: str
    resolved: bool = False
    datagrams_sent: int = 0
    bytes_sent: int = 0
    heartbeats_sent: int = 0
    send_errors: int = 0
    per_joint_dropped: int = 0
    pose_missing: int = 0
    last_error: str | None = None
    local: str | None = None


@dataclasses.dataclass
class _Destination:
    config: OscDestinationConfig
    stats: DestinationStats
    address: tuple[str, int] | None = None
    sock: socket.socket | None = None
    next_heartbeat: float = 0.0
    errors_since_log: int = 0
    last_error_log: float = -float("inf")
    failing: bool = False


class OscSink:
    """Sends performer bundles and heartbeats to every configured destination.

    Example:
        >>> with OscSink([OscDestinationConfig(name="td", host="10.0.0.20", port=7000)]) as sink:
        ...     sink.send_performer(PerformerFrame("alice", seq, t_capture, joints, quality, (1920, 1080)))
        ...     sink.heartbeat(performers_tracked=1)
    """

    def __init__(
        self,
        destinations: Sequence[OscDestinationConfig],
        *,
        show_start_unix: float | None = None,
        wall_clock: Callable[[], float] = time.time,
        monotonic_clock: Callable[[], float] = time.monotonic,
        resolve_retry_s: float = 5.0,
        error_log_interval_s: float = 10.0,
    ) -> None:
        """Args:
        destinations: the receivers; names must be unique.
        show_start_unix: origin of ``t_show_s`` in ``/frame`` (default: the wall time at open).
        wall_clock: Unix time source, the clock of ``t_capture`` (for latency).
        monotonic_clock: clock for heartbeat scheduling and uptime.
        resolve_retry_s: how often an unresolved host name is looked up again.
        error_log_interval_s: at most one warning per destination per this many seconds.

        Raises:
            ValueError: duplicate destination names or a non-positive interval.
        """
        names = [d.name for d in destinations]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"OSC destination names must be unique; repeated: {', '.join(duplicates)}")
        if resolve_retry_s <= 0 or error_log_interval_s <= 0:
            raise ValueError("resolve_retry_s and error_log_interval_s must be > 0")
        self._destinations = [
            _Destination(config=d, stats=DestinationStats(name=d.name, target=f"{d.host}:{d.port}"))
            for d in destinations
        ]
        self._show_start = show_start_unix
        self._wall = wall_clock
        self._mono = monotonic_clock
        self._resolve_retry_s = resolve_retry_s
        self._error_log_interval_s = error_log_interval_s
        self._open = False
        self._sockets: dict[tuple[str, bool], socket.socket] = {}  # (bind address, broadcast) -> socket
        self._opened_mono = 0.0
        self._stop = threading.Event()
        self._resolver: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> OscSink:
        self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def open(self) -> None:
        """Resolve the destinations (host names that fail are retried later); sockets open at first send."""
        if self._open:
            return
        self._open = True
        self._opened_mono = self._mono()
        if self._show_start is None:
            self._show_start = self._wall()
        self._stop.clear()
        unresolved = [d for d in self._destinations if not self._resolve(d)]
        if unresolved:
            self._resolver = threading.Thread(
                target=self._resolve_loop, args=(unresolved,), name="osc-resolve", daemon=True
            )
            self._resolver.start()
        for d in self._destinations:
            log.info("OSC destination %r -> %s (%s coordinates)", d.config.name, d.stats.target, d.config.coords)

    def close(self) -> None:
        """Stop the resolver and close the sockets (idempotent)."""
        self._stop.set()
        if self._resolver is not None:
            self._resolver.join(timeout=1.0)
            self._resolver = None
        for sock in self._sockets.values():
            sock.close()
        self._sockets.clear()
        for dest in self._destinations:
            dest.sock = None
        self._open = False

    @property
    def is_open(self) -> bool:
        return self._open

    @property
    def show_start_unix(self) -> float | None:
        """Origin of ``t_show_s`` (set at open unless given)."""
        return self._show_start

    def _resolve(self, dest: _Destination) -> bool:
        cfg = dest.config
        try:
            infos = socket.getaddrinfo(cfg.host, cfg.port, socket.AF_INET, socket.SOCK_DGRAM)
        except (OSError, UnicodeError) as exc:
            dest.stats.last_error = f"cannot resolve host {cfg.host!r}: {exc}"
            log.error(
                "OSC destination %r: cannot resolve host %r (%s); retrying every %.0f s",
                cfg.name,
                cfg.host,
                exc,
                self._resolve_retry_s,
            )
            return False
        address = infos[0][4]
        dest.address = (str(address[0]), int(address[1]))
        dest.stats.resolved = True
        return True

    def _resolve_loop(self, pending: list[_Destination]) -> None:
        while pending and not self._stop.wait(self._resolve_retry_s):
            pending = [d for d in pending if not self._resolve(d)]
            if not pending:
                log.info("OSC: all destination hosts resolved")

    # -- sending ---------------------------------------------------------------------------------

    def send_performer(self, frame: PerformerFrame) -> int:
        """Send one performer frame to every destination, one datagram each.

        Args:
            frame: the performer's smoothed joints, confidences and capture time.

        Returns:
            The number of destinations the datagram was handed to the network for.

        Raises:
            RuntimeError: the sink is not open (a wiring bug, not a network condition).
        """
        self._require_open()
        latency_ms = (self._wall() - frame.t_capture) * 1e3
        show_start = self._show_start if self._show_start is not None else frame.t_capture
        built: dict[tuple[str, bool, bool], PerformerPacket] = {}
        sent = 0
        for dest in self._destinations:
            cfg = dest.config
            key = (cfg.coords, cfg.flip_y, cfg.per_joint_messages)
            packet = built.get(key)
            if packet is None:
                packet = build_performer_packet(frame, cfg, show_start, latency_ms)
                built[key] = packet
            if packet.per_joint_dropped:
                if dest.stats.per_joint_dropped == 0:
                    log.warning(
                        "OSC destination %r: performer %r's bundle with per-joint messages exceeds one datagram; "
                        "sending /pose without them (shorten the performer name to keep them)",
                        cfg.name,
                        frame.performer,
                    )
                dest.stats.per_joint_dropped += 1
            if not packet.pose_sent:
                if dest.stats.pose_missing == 0:
                    log.warning(
                        "OSC destination %r wants stage coordinates but performer %r has none (no calibration?); "
                        "sending status and frame only",
                        cfg.name,
                        frame.performer,
                    )
                dest.stats.pose_missing += 1
            sent += self._send(dest, packet.datagram)
        return sent

    def heartbeat(self, performers_tracked: int, force: bool = False, record: tuple[bool, int] | None = None) -> int:
        """Send ``/stagepose/heartbeat`` to each destination whose heartbeat is due.

        Call it every loop iteration, tracked performers or not: it sends only at each destination's
        ``heartbeat_hz``. Because it comes from the loop, a stalled loop stops the heartbeat, which is
        what a technician watching it needs to see.

        Args:
            performers_tracked: performers currently tracked (sent as the second argument).
            force: send now to every destination with heartbeats enabled.
            record: (writing, lines lost) of the keypoint record, sent as ``/stagepose/record`` with
                each heartbeat; None when the show keeps no record.

        Returns:
            The number of heartbeats handed to the network.
        """
        self._require_open()
        now = self._mono()
        message = heartbeat_message(now - self._opened_mono, performers_tracked)
        record_message = None if record is None else record_status_message(*record)
        sent = 0
        for dest in self._destinations:
            hz = dest.config.heartbeat_hz
            if hz <= 0 or (not force and now < dest.next_heartbeat):
                continue
            # Next one a period after the due time (no drift); after a stall, a period from now (no burst).
            dest.next_heartbeat += 1.0 / hz
            if dest.next_heartbeat <= now:
                dest.next_heartbeat = now + 1.0 / hz
            if self._send(dest, message):
                dest.stats.heartbeats_sent += 1
                sent += 1
            if record_message is not None:
                self._send(dest, record_message)
        return sent

    def _require_open(self) -> None:
        if not self._open:
            raise RuntimeError("OscSink is not open: use it as a context manager (with OscSink(...) as sink)")

    def _socket_for(self, dest: _Destination, address: tuple[str, int]) -> socket.socket:
        """The socket bound to the interface ``dest`` needs (opened, or shared, on first use).

        Raises:
            OSError: the socket cannot be created or bound.
        """
        if dest.sock is not None:
            return dest.sock
        broadcast = dest.config.broadcast
        local_ip = _local_address(address, broadcast)
        key = (local_ip, broadcast)
        sock = self._sockets.get(key)
        if sock is None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                if broadcast:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
                sock.setblocking(False)  # a full buffer drops a frame instead of stalling the live loop
                sock.bind((local_ip, 0))
            except OSError:
                sock.close()
                raise
            self._sockets[key] = sock
        dest.sock = sock
        bound_ip, bound_port = sock.getsockname()[:2]
        dest.stats.local = f"{bound_ip}:{bound_port}"
        log.info("OSC destination %r sends from %s%s", dest.config.name, dest.stats.local,
                 " (broadcast)" if broadcast else "")  # fmt: skip
        return sock

    def _send(self, dest: _Destination, datagram: bytes) -> int:
        address = dest.address
        if address is None:
            self._count_error(dest, f"host {dest.config.host!r} not resolved")
            return 0
        try:
            self._socket_for(dest, address).sendto(datagram, address)
        except BlockingIOError:
            self._count_error(dest, "socket buffer full (receiver or network too slow); frame dropped")
            return 0
        except PermissionError as exc:
            hint = "" if dest.config.broadcast else " (a broadcast address? set 'broadcast: true')"
            self._count_error(dest, f"{type(exc).__name__}: {exc}{hint}")
            return 0
        except OSError as exc:
            self._count_error(dest, f"{type(exc).__name__}: {exc}")
            return 0
        dest.stats.datagrams_sent += 1
        dest.stats.bytes_sent += len(datagram)
        if dest.failing:
            dest.failing = False
            log.info("OSC destination %r (%s): sending again", dest.config.name, dest.stats.target)
        return 1

    def _count_error(self, dest: _Destination, message: str) -> None:
        dest.stats.send_errors += 1
        dest.stats.last_error = message
        dest.errors_since_log += 1
        dest.failing = True
        now = self._mono()
        if now - dest.last_error_log >= self._error_log_interval_s:
            log.warning(
                "OSC destination %r (%s): %d send error(s) since the last report; latest: %s",
                dest.config.name,
                dest.stats.target,
                dest.errors_since_log,
                message,
            )
            dest.errors_since_log = 0
            dest.last_error_log = now

    # -- reporting -------------------------------------------------------------------------------

    def stats(self) -> list[DestinationStats]:
        """Copies of every destination's counters, in configuration order."""
        return [dataclasses.replace(d.stats) for d in self._destinations]

    def summary(self) -> str:
        """One line for the status display, e.g. ``osc td 1200 sent 0 err | ue 1200 sent 3 err``."""
        parts = []
        for d in self._destinations:
            s = d.stats
            text = f"{s.name} {s.datagrams_sent} sent {s.send_errors} err"
            if s.per_joint_dropped:
                text += f" {s.per_joint_dropped} trimmed"
            if not s.resolved:
                text += " UNRESOLVED"
            parts.append(text)
        return "osc " + " | ".join(parts)


def _local_address(address: tuple[str, int], broadcast: bool) -> str:
    """The local IPv4 address to send to ``address`` from: 127.0.0.1 for loopback, else the routing
    interface's address (asked of the kernel by connecting a probe socket, which sends nothing), or
    0.0.0.0 when there is no route yet (the interface may come up later)."""
    if ipaddress.ip_address(address[0]).is_loopback:
        return "127.0.0.1"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            if broadcast:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            probe.connect(address)
            return str(probe.getsockname()[0])
        except OSError:
            return "0.0.0.0"
