"""Builders shared by the node tests: a private Mosquitto, a subscriber that records, events to send."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from edge.events import Envelope, EventStamper, Heat, IdSource, VisitStarted, floor_minute


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout_s} s")


class Mosquitto:
    """A private Mosquitto on its own port, stoppable and restartable (same port, same config)."""

    def __init__(
        self, workdir: Path, *, password: tuple[str, str] | None = None, persistence: bool = True
    ) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.conf = workdir / "mosquitto.conf"
        lines = [f"listener {self.port} 127.0.0.1"]
        if os.geteuid() == 0:
            lines.append("user root")  # otherwise it drops to a user that cannot read the test's folder
        if persistence:
            # Sessions and queued messages survive a restart, like a production broker's.
            lines += ["persistence true", f"persistence_location {workdir}/", "autosave_interval 1"]
        else:
            lines.append("persistence false")
        if password is None:
            lines.append("allow_anonymous true")
        else:
            pwfile = workdir / "passwords"
            pwfile.write_text("")
            subprocess.run(
                ["mosquitto_passwd", "-b", str(pwfile), password[0], password[1]],
                check=True,
                capture_output=True,
            )
            pwfile.chmod(0o600)
            lines += ["allow_anonymous false", f"password_file {pwfile}"]
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = (self.workdir / "mosquitto.log").open("ab")
        self.proc = subprocess.Popen(["mosquitto", "-c", str(self.conf)], stdout=log, stderr=log)
        wait_port(self.port)

    def stop(self) -> None:
        """Stop the way a service manager does (SIGTERM: the broker saves its sessions)."""
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
            self.proc = None


@contextmanager
def running_mosquitto(workdir: Path, **kwargs: object) -> Iterator[Mosquitto]:
    broker = Mosquitto(workdir, **kwargs)  # type: ignore[arg-type]
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


class Recorder:
    """A QoS 1 subscriber (persistent session) that keeps every message it receives, in order."""

    def __init__(self, port: int, topic_filter: str = "showroom/v1/#", client_id: str = "recorder") -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic_filter, qos=1)
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(min_delay=1, max_delay=2)
        self.client.connect_async("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def payloads(self, kind: str | None = None) -> list[bytes]:
        with self._lock:
            return [p for t, p, _ in self.messages if kind is None or t.endswith("/" + kind)]

    def wait_for(self, predicate: object, timeout_s: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():  # type: ignore[operator]
                return True
            time.sleep(0.05)
        return bool(predicate())  # type: ignore[operator]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


T0 = datetime(2026, 11, 23, 10, 0, 0, tzinfo=UTC)


def make_events(
    stamper: EventStamper, n: int, *, start: datetime = T0, heat_every: int = 0
) -> list[Envelope]:
    """`n` contract events one second apart: visits started, and a heat minute every `heat_every`."""
    ids = IdSource(7)
    events: list[Envelope] = []
    for i in range(n):
        ts = start + timedelta(seconds=i)
        if heat_every and i % heat_every == heat_every - 1:
            events.append(
                stamper.stamp(
                    Heat, ts, minute=floor_minute(ts), cell_m=0.25, cells=[[i % 50, 3, 1.5]], occupancy_max=2
                )
            )
        else:
            events.append(stamper.stamp(VisitStarted, ts, visitor_id=ids.visitor_id(), door_id="main"))
    return events


# ---------------------------------------------------------------------------------------------------
# A node looking at the PETS09 footage
# ---------------------------------------------------------------------------------------------------

PETS_VIDEO = (
    Path(__file__).resolve().parents[2].parent / "shared" / "data" / "pets09_s2l1" / "vtest_480x360.avi"
)

# Image foot points (480x360) and their floor positions (PETS ground plane shifted by +21, +18 m), fitted
# from the MOTChallenge ground truth's world coordinates (mean reprojection error 0.03 m).
PETS_CALIBRATION = {
    "image_points_px": [[60, 340], [420, 340], [400, 150], [80, 150], [240, 250], [150, 300]],
    "floor_points_m": [[1.01, 8.61], [4.39, 2.48], [17.47, 7.73], [12.5, 19.14], [6.6, 7.89], [3.27, 8.14]],
}


def pets_camera(camera_id: str, source: str | Path = PETS_VIDEO, **extra: object) -> dict[str, object]:
    return {"id": camera_id, "source": str(source), "fps": 5, "calibration": PETS_CALIBRATION, **extra}


def node_config_dict(
    tmp_path: Path, broker_url: str, cameras: list[dict[str, object]], **extra: object
) -> dict[str, object]:
    """A node whose door is PETS's counting line (x = 240 px in the image), drawn on the floor."""
    return {
        "store_id": "store-a",
        "node_id": "node-1",
        "timezone": "Europe/London",
        "broker": {"url": broker_url, "keepalive_s": 5},
        "cameras": cameras,
        "floor": {"size_m": [28, 27]},
        "doors": [{"id": "main", "line_m": [[15.08, 13.21], [2.42, 5.27]], "inside_point_m": [7.29, 6.55]}],
        "outbox": {"path": str(tmp_path / "outbox.sqlite"), "max_mb": 50},
        **extra,
    }


def write_yaml(path: Path, data: dict[str, object]) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


class MjpegServer:
    """An HTTP MJPEG camera that sends `frames` real frames and then stalls (connection open, no data)."""

    def __init__(self, images: list[object], frames: int = 10, fps: float = 10.0) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        import cv2

        jpegs = [cv2.imencode(".jpg", im)[1].tobytes() for im in images]
        stop = self.stop_event = threading.Event()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                try:
                    for i in range(frames):
                        jpeg = jpegs[i % len(jpegs)]
                        head = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(
                            jpeg
                        )
                        self.wfile.write(head + jpeg + b"\r\n")
                        self.wfile.flush()
                        time.sleep(1 / fps)
                except OSError:
                    return
                stop.wait(60)  # the stall

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/stream.mjpg"

    def close(self) -> None:
        self.stop_event.set()
        self.server.shutdown()
        self.server.server_close()
