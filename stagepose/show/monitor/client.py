"""A minimal monitor page client: what a browser on another machine asks of the show process.

It reads the event stream and, like the page, fetches a camera's newest picture each time the previous one
has arrived (over one keep-alive connection), but decodes and draws nothing. `stagepose bench pipeline
--monitor --monitor-client` runs it in its own process to time a watched show whose browser is elsewhere;
it also serves as a quick check that a monitor answers:

    python -m stagepose.show.monitor.client http://127.0.0.1:8090/ --seconds 10
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import threading
import time
import urllib.parse
from collections.abc import Sequence
from typing import Any


def watch(url: str, seconds: float, token: str | None = None) -> dict[str, Any]:
    """Follow the monitor at ``url`` for ``seconds``; returns what arrived (events, pictures, bytes, bye).

    Raises:
        OSError: the monitor cannot be reached.
    """
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    wanted: dict[str, int] = {}
    counts: dict[str, Any] = {"events": 0, "status": 0, "pictures": 0, "picture_bytes": 0, "bye": None}
    lock = threading.Condition()
    done = threading.Event()

    def events() -> None:
        stream = http.client.HTTPConnection(host, port, timeout=seconds + 5)
        try:
            stream.request("GET", "/events", headers=headers)
            response = stream.getresponse()
        except OSError as exc:
            counts["error"] = str(exc)
            response = None
        if response is not None and response.status != 200:
            counts["error"] = f"HTTP {response.status}"
            response = None
        kind = None
        while response is not None and not done.is_set():
            line = response.readline().decode()
            if not line:
                break
            if line.startswith("event: "):
                kind = line[7:].strip()
            elif line.startswith("data: ") and kind:
                counts["events"] += 1
                data = json.loads(line[6:])
                if kind == "frame":
                    with lock:
                        wanted[data["camera"]] = data["n"]
                        lock.notify()
                elif kind == "status":
                    counts["status"] += 1
                elif kind == "bye":
                    counts["bye"] = data["reason"]
                    break
        done.set()
        with lock:
            lock.notify()
        stream.close()

    reader = threading.Thread(target=events, name="monitor-client-events", daemon=True)
    reader.start()
    shown: dict[str, int] = {}
    fetch = http.client.HTTPConnection(host, port, timeout=10)
    deadline = time.monotonic() + seconds
    while not done.is_set() and time.monotonic() < deadline:
        with lock:
            todo = [(cid, n) for cid, n in wanted.items() if n > shown.get(cid, 0)]
            if not todo:
                lock.wait(0.2)
                continue
        for camera_id, n in todo:
            fetch.request("GET", f"/frame/{urllib.parse.quote(camera_id)}.jpg?n={n}", headers=headers)
            body = fetch.getresponse().read()
            counts["pictures"] += 1
            counts["picture_bytes"] += len(body)
            shown[camera_id] = n
    done.set()
    fetch.close()
    if "error" in counts:
        raise OSError(counts["error"])
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="follow a stagepose monitor page without drawing it")
    parser.add_argument("url", help="the page, e.g. http://127.0.0.1:8090/")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to follow it (10)")
    parser.add_argument("--token", default=None, help="the monitor's token, if it has one")
    args = parser.parse_args(argv)
    try:
        print(json.dumps(watch(args.url, args.seconds, args.token)))
    except OSError as exc:
        print(f"monitor client: {args.url}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
