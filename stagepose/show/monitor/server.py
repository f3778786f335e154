"""The monitor's web server: an aiohttp application on its own thread and event loop, in the show process.

Why server-sent events (and not a WebSocket or MJPEG): the page only ever listens, and SSE is exactly a
one-way stream from server to browser, so nothing on the page *can* talk to the show (read-only by
construction); ``EventSource`` reconnects by itself and fires ``error`` the moment the connection drops,
which is how the page knows the show process is gone; it is plain HTTP (no upgrade, no frame protocol).
Pictures are not pushed down that stream: an event says "camera X has picture n" and the browser fetches
``/frame/X.jpg`` when it has finished drawing the previous one, so a slow browser simply skips pictures
and the server never queues images for it (MJPEG would push every picture into a socket that a stuck
browser does not drain, and still need a second channel for the numbers).

What it costs the show: pictures are drawn and JPEG-encoded on one worker thread (`render`), at most
``fps`` per camera and only while a page is connected; the status JSON is built there too, twice a
second. Each page gets a bounded queue of events; when it is full (a stuck browser) new events for that
page are dropped and counted, and a page that does not take a write for ``WRITE_TIMEOUT_S`` is
disconnected (its browser reconnects when it can). Memory is bounded by ``max_clients`` x queue size plus
one picture per camera.

Safety: binds the configured host (127.0.0.1 by default); with a ``token`` every request must carry it
(401 otherwise). Without a token, requests must name a loopback host in ``Host:`` (a web page elsewhere
cannot reach the monitor through DNS rebinding). Only GET routes exist.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import hmac
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

import numpy as np
from aiohttp import web

from stagepose.errors import ConfigError
from stagepose.show.config import ShowConfig
from stagepose.show.monitor.config import MonitorConfig, is_loopback
from stagepose.show.monitor.draw import encode_jpeg, render_view
from stagepose.show.monitor.net import listen_socket
from stagepose.show.monitor.payload import LatencyHistory, status_payload
from stagepose.show.monitor.snapshot import MonitorFeed

log = logging.getLogger(__name__)

QUEUE_EVENTS = 16  # events waiting per page; beyond, new ones are dropped and counted
WRITE_TIMEOUT_S = 10.0  # a page that takes no write for this long is disconnected
STATUS_INTERVAL_S = 0.5
START_TIMEOUT_S = 10.0
ERROR_LOG_INTERVAL_S = 10.0
COOKIE = "stagepose_monitor_token"
ASSETS = {"/": ("index.html", "text/html"), "/monitor.js": ("monitor.js", "text/javascript"),
          "/monitor.css": ("monitor.css", "text/css")}  # fmt: skip
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; img-src 'self'; connect-src 'self'; frame-ancestors 'none'",
}


@dataclass
class _Picture:
    """A camera's latest picture: its number (per camera, rising), JPEG bytes, whether a page fetched it."""

    n: int
    jpeg: bytes
    seq: int
    fetched: bool = False


@dataclass(eq=False)  # identity, so it can live in a set
class _Client:
    queue: asyncio.Queue[bytes | None]
    peer: str
    dropped: int = 0


def _event(kind: str, data: Any) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class MonitorServer:
    """The monitor page of one show process; a context manager that starts and stops its thread.

    Example:
        >>> feed = MonitorFeed()
        >>> with MonitorServer(show, show.monitor, feed) as server:   # the loop publishes into feed
        ...     print(server.url)
    """

    def __init__(
        self,
        show: ShowConfig,
        config: MonitorConfig,
        feed: MonitorFeed,
        *,
        mode: Literal["live", "replay"] = "live",
        camera_ids: Sequence[str] | None = None,
    ) -> None:
        """Args:
        show: the show (cameras, performers, zones); config: its ``monitor`` section (or another).
        feed: what the show loop publishes into.
        mode: ``live`` or ``replay`` (shown on the page).
        camera_ids: the cameras the page shows (default: every active camera; a replay shows those it replays).
        """
        self.show = show
        self.camera_ids = [c.id for c in show.active_cameras] if camera_ids is None else list(camera_ids)
        self.config = config
        self.feed = feed
        self.mode = mode
        self.address: tuple[str, int] | None = None
        self._assets = {path: (resources.files(__package__).joinpath("assets", name).read_bytes(), kind)
                        for path, (name, kind) in ASSETS.items()}  # fmt: skip
        self._zones = {
            camera.id: {p.address: (None if (z := p.zone(camera.id)) is None else np.asarray(z))
                        for p in show.performers_of(camera.id)}
            for camera in show.active_cameras
            if camera.id in self.camera_ids
        }  # fmt: skip
        self._pictures: dict[str, _Picture] = {}
        self._clients: set[_Client] = set()
        self._history = LatencyHistory()
        self._render_ms: collections.deque[float] = collections.deque(maxlen=50)
        self._counts = {"pictures": 0, "pictures_unfetched": 0, "pictures_served": 0, "picture_requests": 0,
                        "events_dropped": 0,
                        "pages_disconnected_slow": 0, "pages_refused": 0, "unauthorized": 0, "errors": 0}  # fmt: skip
        self._last_error_log = -float("inf")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._watching: asyncio.Event | None = None
        self._last_status: bytes | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._error: BaseException | None = None

    # ------------------------------------------------------------------------------ life cycle

    @property
    def url(self) -> str:
        """The page's address (with the port actually bound)."""
        host, port = self.address or (self.config.host, self.config.port)
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}/"

    def __enter__(self) -> MonitorServer:
        sock = listen_socket(self.config)
        self.address = sock.getsockname()[:2]
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="monitor-render")
        self._thread = threading.Thread(target=self._run, args=(sock,), name="monitor", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_S) or self._error is not None:
            self.close()
            why = f"{type(self._error).__name__}: {self._error}" if self._error else f"not within {START_TIMEOUT_S:g} s"
            raise ConfigError(f"monitor: the web server did not start ({why})")
        where = "this machine only" if is_loopback(self.config.host) else "the network; token required"
        log.info("monitor page: %s (%s)", self.url, where)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self, reason: str | None = None) -> None:
        """Tell the pages why the show ends (``reason``, else ``feed.farewell``), then stop the server."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop already closed
            loop.call_soon_threadsafe(self._begin_shutdown, reason or self.feed.farewell)
        thread.join(5.0)
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
        self._thread = None

    def stats(self) -> dict[str, Any]:
        """The monitor's own counters (also on the page): pages, pictures made, fetched and skipped, drops."""
        render = list(self._render_ms)
        return {
            "pages": len(self._clients),
            **self._counts,
            "render_ms_p50": round(float(np.median(render)), 2) if render else None,
            "frames_handed_over": self.feed.published,
        }

    def _run(self, sock: socket.socket) -> None:
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            try:
                runner = loop.run_until_complete(self._start(sock))
            except Exception as exc:  # noqa: BLE001 - reported by __enter__ as one line
                self._error = exc
                sock.close()
                return
            self._ready.set()
            assert self._stop is not None
            loop.run_until_complete(self._stop.wait())
            loop.run_until_complete(self._shutdown(runner))
        except Exception:  # noqa: BLE001 - the monitor must never take the show down; say why and stop serving
            log.exception("monitor: the web server stopped")
        finally:
            self._ready.set()
            self.feed.set_watching(False)
            loop.close()

    async def _start(self, sock: socket.socket) -> web.AppRunner:
        self._stop = asyncio.Event()
        self._watching = asyncio.Event()
        app = web.Application(middlewares=[self._guard], client_max_size=1024)
        for path in self._assets:
            app.router.add_get(path, self._asset)
        app.router.add_get("/events", self._events)
        app.router.add_get("/frame/{camera}.jpg", self._frame)
        app.router.add_get("/status.json", self._status_json)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        self._tasks = [asyncio.create_task(self._picture_loop()), asyncio.create_task(self._status_loop())]
        return runner

    def _begin_shutdown(self, reason: str) -> None:
        bye = _event("bye", {"reason": reason})
        for client in self._clients:
            while not client.queue.empty():
                client.queue.get_nowait()
            client.queue.put_nowait(bye)
            client.queue.put_nowait(None)
        if self._stop is not None:
            self._stop.set()

    async def _shutdown(self, runner: web.AppRunner) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        deadline = time.monotonic() + 1.0
        while self._clients and time.monotonic() < deadline:  # let the pages read 'bye'
            await asyncio.sleep(0.02)
        await runner.cleanup()

    # ---------------------------------------------------------------------------------- requests

    @web.middleware
    async def _guard(self, request: web.Request, handler: Any) -> web.StreamResponse:
        token = self.config.token
        if token is not None:
            given = request.query.get("token") or request.cookies.get(COOKIE) or ""
            auth = request.headers.get("Authorization", "")
            if auth.startswith("Bearer "):
                given = auth[len("Bearer ") :]
            if not hmac.compare_digest(given.encode(), token.encode()):
                self._counts["unauthorized"] += 1
                raise web.HTTPUnauthorized(
                    text="401 Unauthorized: this stagepose monitor needs its token: open http://HOST:PORT/?token=TOKEN "
                    "(monitor.token in the show file)\n",
                    headers={"WWW-Authenticate": 'Bearer realm="stagepose monitor"', **SECURITY_HEADERS},
                )
        elif not is_loopback((request.host or "").rsplit(":", 1)[0].strip("[]")):
            # no token: only a page that asked for this machine by a loopback name (not a rebound DNS name)
            raise web.HTTPMisdirectedRequest(text="421: this monitor answers to 127.0.0.1 or localhost only\n")
        response = await handler(request)
        if not response.prepared:
            response.headers.update(SECURITY_HEADERS)
        if token is not None and request.query.get("token") == token and request.path == "/":
            response.set_cookie(COOKIE, token, httponly=True, samesite="Strict", path="/")
        return response

    async def _asset(self, request: web.Request) -> web.Response:
        body, kind = self._assets[request.path]
        return web.Response(body=body, content_type=kind, charset="utf-8")

    async def _frame(self, request: web.Request) -> web.Response:
        picture = self._pictures.get(request.match_info["camera"])
        self._counts["picture_requests"] += 1
        if picture is None:
            raise web.HTTPNotFound(text="no picture of this camera yet\n")
        if not picture.fetched:
            picture.fetched = True
            self._counts["pictures_served"] += 1
        return web.Response(body=picture.jpeg, content_type="image/jpeg", headers={"X-Picture": str(picture.n)})

    async def _status_json(self, request: web.Request) -> web.Response:
        body = await asyncio.get_running_loop().run_in_executor(self._executor, self._status_bytes)
        return web.Response(body=body, content_type="application/json")

    async def _events(self, request: web.Request) -> web.StreamResponse:
        if len(self._clients) >= self.config.max_clients:
            self._counts["pages_refused"] += 1
            raise web.HTTPServiceUnavailable(text=f"{self.config.max_clients} monitor pages are open already "
                                                  "(monitor.max_clients)\n")  # fmt: skip
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", **SECURITY_HEADERS})
        await response.prepare(request)
        client = _Client(queue=asyncio.Queue(maxsize=QUEUE_EVENTS), peer=str(request.remote))
        first = [b"retry: 1000\n\n", _event("hello", {"show": self.show.show, "mode": self.mode})]
        if self._last_status is not None:
            first.append(b"event: status\ndata: " + self._last_status + b"\n\n")
        first += [_event("frame", {"camera": cid, "n": p.n}) for cid, p in self._pictures.items()]
        for message in first:
            self._offer(client, message)
        self._clients.add(client)
        self._set_watching()
        try:
            while (item := await client.queue.get()) is not None:
                await asyncio.wait_for(response.write(item), WRITE_TIMEOUT_S)
        except TimeoutError:
            self._counts["pages_disconnected_slow"] += 1
            log.warning("monitor: page at %s took no data for %g s: disconnected", client.peer, WRITE_TIMEOUT_S)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._clients.discard(client)
            self._set_watching()
        return response

    def _set_watching(self) -> None:
        watching = bool(self._clients)
        self.feed.set_watching(watching)
        assert self._watching is not None
        if watching:
            self._watching.set()
        else:
            self._watching.clear()

    def _broadcast(self, message: bytes) -> None:
        for client in self._clients:
            self._offer(client, message)

    def _offer(self, client: _Client, message: bytes) -> None:
        """Queue ``message`` for one page, or drop and count it when that page's queue is full."""
        try:
            client.queue.put_nowait(message)
        except asyncio.QueueFull:
            client.dropped += 1
            self._counts["events_dropped"] += 1

    # ------------------------------------------------------------------- pictures and status, off the loop

    async def _picture_loop(self) -> None:
        loop = asyncio.get_running_loop()
        period = 1.0 / self.config.fps
        assert self._watching is not None
        while True:
            await self._watching.wait()
            started = loop.time()
            if self.feed.paused:
                await asyncio.sleep(period)
                continue
            with self._logged("drawing a picture"):
                for camera_id, n in await loop.run_in_executor(self._executor, self._render_pictures):
                    self._broadcast(_event("frame", {"camera": camera_id, "n": n}))
            await asyncio.sleep(max(0.01, period - (loop.time() - started)))

    async def _status_loop(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._watching is not None
        while True:
            await self._watching.wait()
            if self.feed.paused:
                await asyncio.sleep(STATUS_INTERVAL_S)
                continue
            with self._logged("building the status"):
                body = await loop.run_in_executor(self._executor, self._status_bytes)
                self._broadcast(b"event: status\ndata: " + body + b"\n\n")
            await asyncio.sleep(STATUS_INTERVAL_S)

    @contextlib.contextmanager
    def _logged(self, what: str) -> Iterator[None]:
        """A failure in the monitor is logged (at most every ``ERROR_LOG_INTERVAL_S``) and skipped, never raised."""
        try:
            yield
        except Exception:  # noqa: BLE001 - the page may miss an update; the show and the monitor go on
            self._counts["errors"] += 1
            now = time.monotonic()
            if now - self._last_error_log >= ERROR_LOG_INTERVAL_S:
                self._last_error_log = now
                log.exception("monitor: %s failed (%d failures so far)", what, self._counts["errors"])

    def _render_pictures(self) -> list[tuple[str, int]]:
        """Draw and encode each camera's newest frame not drawn yet (render thread)."""
        done = []
        for camera_id, view in self.feed.views().items():
            old = self._pictures.get(camera_id)
            if old is not None and old.seq == view.frame.seq:
                continue
            started = time.perf_counter()
            picture = render_view(
                view.frame.image, view.results, self._zones.get(camera_id, {}),
                width=self.config.width, min_confidence=self.show.tracking.min_confidence,
            )  # fmt: skip
            jpeg = encode_jpeg(picture, self.config.jpeg_quality)
            self._render_ms.append((time.perf_counter() - started) * 1e3)
            if old is not None and not old.fetched:
                self._counts["pictures_unfetched"] += 1
            n = 1 if old is None else old.n + 1
            self._pictures[camera_id] = _Picture(n=n, jpeg=jpeg, seq=view.frame.seq)
            self._counts["pictures"] += 1
            done.append((camera_id, n))
        return done

    def _status_bytes(self) -> bytes:
        """The status JSON (render thread)."""
        now = time.monotonic()
        self._history.extend(self.feed.drain_latencies())
        payload = status_payload(self.show, self.feed.status, self.feed.views(), self._history.chart(now),
                                 self.stats(), camera_ids=self.camera_ids)  # fmt: skip
        age = self.feed.status_age_s(now)
        payload["status_age_s"] = None if age is None else round(age, 2)
        body = json.dumps(payload, separators=(",", ":")).encode()
        self._last_status = body
        return body


@contextlib.contextmanager
def open_monitor(
    show: ShowConfig, *, mode: Literal["live", "replay"] = "live", camera_ids: Sequence[str] | None = None
) -> Iterator[MonitorFeed]:
    """Serve ``show``'s monitor page (``show.monitor``) while inside; yields the feed the show loop publishes into.

    Raises:
        ConfigError: the port cannot be bound (before the show starts).
    """
    feed = MonitorFeed()
    with MonitorServer(show, show.monitor, feed, mode=mode, camera_ids=camera_ids):
        yield feed
