"""A real RTSP server on loopback for the source tests (run by the system ``/usr/bin/python3``).

It serves a live GStreamer test pattern as motion JPEG over RTP (the stream an IP camera sends),
using Debian's ``gir1.2-gst-rtsp-server-1.0``, ``gstreamer1.0-plugins-base/good`` and ``python3-gi``.
The project's virtual environment has no GObject bindings, which is why the tests start this script
with the system interpreter in a subprocess; killing that process is how a test simulates a camera
dropping off the network.

Usage::

    /usr/bin/python3 tests/rtsp_server.py --port 8554 [--path /stream] [--size 320x240] [--fps 30]

When the server listens it prints one line ``READY rtsp://127.0.0.1:PORT/PATH`` on stdout and then
serves until the process is terminated or killed. It exits with status 3 if it cannot bind the port.
"""

from __future__ import annotations

import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def _parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Serve a test pattern over RTSP on 127.0.0.1.")
    parser.add_argument("--port", type=int, required=True, help="TCP port to listen on")
    parser.add_argument("--path", default="/stream", help="mount point (default /stream)")
    parser.add_argument("--size", default="320x240", help="WIDTHxHEIGHT of the pattern")
    parser.add_argument("--fps", type=int, default=30, help="frame rate of the pattern")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = _parse_args(argv)
    width, height = (int(v) for v in args.size.split("x"))
    Gst.init(None)
    loop = GLib.MainLoop()

    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    # is-live makes videotestsrc run at the frame rate, like a camera. rtpjpegpay only accepts
    # planar 4:2:0 JPEG, hence the explicit I420 caps before jpegenc.
    factory.set_launch(
        "( videotestsrc is-live=true pattern=ball "
        f"! video/x-raw,format=I420,width={width},height={height},framerate={args.fps}/1 "
        "! jpegenc quality=80 ! rtpjpegpay name=pay0 pt=26 )"
    )
    # One pipeline for every client, like a camera that serves several viewers.
    factory.set_shared(True)
    server.get_mount_points().add_factory(args.path, factory)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{args.port}", file=sys.stderr, flush=True)
        return 3

    print(f"READY rtsp://127.0.0.1:{server.get_bound_port()}{args.path}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
