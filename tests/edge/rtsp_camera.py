"""A live RTSP camera for the tests: GStreamer's RTSP server streaming H.264 at a given size and rate.

Run with the system Python, which has the GStreamer bindings (Debian packages python3-gst-1.0,
gir1.2-gst-rtsp-server-1.0, gstreamer1.0-plugins-ugly and -good; `.ci/run` installs them):

    /usr/bin/python3 tests/edge/rtsp_camera.py PORT [WIDTH HEIGHT FPS]

Serves rtsp://127.0.0.1:PORT/live (a moving test pattern) and prints "ready" once it listens.
"""

from __future__ import annotations

import sys

import gi  # type: ignore[import-not-found]

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # type: ignore[import-not-found]  # noqa: E402


def main() -> None:
    port = sys.argv[1]
    width, height, fps = (int(v) for v in sys.argv[2:5]) if len(sys.argv) >= 5 else (640, 360, 10)
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f"( videotestsrc is-live=true pattern=ball ! video/x-raw,width={width},height={height},"
        f"framerate={fps}/1 ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} "
        "! rtph264pay name=pay0 pt=96 )"
    )
    factory.set_shared(True)
    server.get_mount_points().add_factory("/live", factory)
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on 127.0.0.1:{port}")
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
