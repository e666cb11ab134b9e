"""Builders shared by the node tests: a private Mosquitto, a subscriber that records, events to send."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as paho
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from edge.events import Envelope, EventStamper, Heat, IdSource, VisitStarted, floor_minute
from tests.netkit import free_port, wait_port


class Mosquitto:
    """A private Mosquitto on its own port, stoppable and restartable (same port, same config)."""

    def __init__(
        self,
        workdir: Path,
        *,
        password: tuple[str, str] | None = None,
        persistence: bool = True,
        tls: tuple[Path, Path, Path] | None = None,
    ) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.conf = workdir / "mosquitto.conf"
        lines = [f"listener {self.port} 127.0.0.1"]
        if tls is not None:
            ca, cert, key = tls
            lines += [f"cafile {ca}", f"certfile {cert}", f"keyfile {key}"]
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


def require_mosquitto() -> None:
    """Skip (developer machine) or fail (CI) when the mosquitto binary is not installed."""
    if shutil.which("mosquitto") and shutil.which("mosquitto_passwd"):
        return
    message = "the mosquitto broker binary is not installed"
    if os.environ.get("SHOWROOM_REQUIRE_SERVICES") == "1":
        pytest.fail(message + " and SHOWROOM_REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip(message)


@contextmanager
def running_mosquitto(workdir: Path, **kwargs: object) -> Iterator[Mosquitto]:
    require_mosquitto()
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

PETS_EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "pets09.yaml"


def pets_camera(camera_id: str, source: str | Path = PETS_VIDEO, **extra: object) -> dict[str, object]:
    """A camera with PETS09 view 1's calibration (from examples/pets09.yaml) on any source, at 5 fps."""
    template = yaml.safe_load(PETS_EXAMPLE.read_text())["cameras"][0]
    return {**template, "id": camera_id, "source": str(source), "fps": 5, **extra}


def node_config_dict(
    tmp_path: Path, broker_url: str, cameras: list[dict[str, object]], **extra: object
) -> dict[str, object]:
    """examples/pets09.yaml (its counting line, two display cars) with these cameras, broker and outbox."""
    data: dict[str, object] = yaml.safe_load(PETS_EXAMPLE.read_text())
    data.update(
        {
            "store_id": "store-a",
            "node_id": "node-1",
            "broker": {"url": broker_url, "keepalive_s": 5},
            "cameras": cameras,
            "outbox": {"path": str(tmp_path / "outbox.sqlite"), "max_mb": 50},
            **extra,
        }
    )
    return data


def write_yaml(path: Path, data: dict[str, object]) -> Path:
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


class Mqtt311OnlyProxy:
    """Stands in front of a real broker like an MQTT 3.1.1-only broker: a version 5 CONNECT is refused with
    the 3.1.1 CONNACK "unacceptable protocol version" and closed; anything else is passed through."""

    def __init__(self, broker_port: int) -> None:
        self.broker_port = broker_port
        self.refused_v5 = 0
        self.passed = 0
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._server.getsockname()[1])
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self._server.settimeout(0.2)
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        first = client.recv(65536)
        # CONNECT: fixed header, remaining length (varint), protocol name (2 + 4 bytes), protocol level.
        i = 1
        while first[i] & 0x80:
            i += 1
        level = first[i + 1 + 6]
        if level == 5:
            self.refused_v5 += 1
            client.sendall(bytes([0x20, 0x02, 0x00, 0x01]))
            client.close()
            return
        self.passed += 1
        upstream = socket.create_connection(("127.0.0.1", self.broker_port))
        upstream.sendall(first)

        def pipe(src: socket.socket, dst: socket.socket) -> None:
            try:
                while data := src.recv(65536):
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                for s in (src, dst):
                    with suppress(OSError):
                        s.shutdown(socket.SHUT_RDWR)

        threading.Thread(target=pipe, args=(client, upstream), daemon=True).start()
        threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()

    def close(self) -> None:
        self._stop.set()
        self._server.close()


def make_tls_files(folder: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 signed by it: (ca, cert, key)."""
    ca_key, ca, key, csr, cert = (
        folder / n for n in ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem")
    )

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca),
            "-days", "2", "-subj", "/CN=showroom test CA")  # fmt: skip
    openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(key),
        "-out",
        str(csr),
        "-subj",
        "/CN=127.0.0.1",
    )
    ext = folder / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
            "-out", str(cert), "-days", "2", "-extfile", str(ext))  # fmt: skip
    for path in (key, cert, ca):
        path.chmod(0o644)
    return ca, cert, key


RTSP_PACKAGES = (
    "python3-gst-1.0 gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-ugly gstreamer1.0-plugins-good"
)


class RtspCamera:
    """A live H.264 RTSP camera (GStreamer's RTSP server in a system-Python child process, see
    rtsp_camera.py) at `url`; `stop()` takes it off the network, `start()` brings it back on the same port."""

    def __init__(self, width: int = 640, height: int = 360, fps: int = 10) -> None:
        self.python = "/usr/bin/python3"
        check = subprocess.run(
            [self.python, "-c", "import gi; gi.require_version('GstRtspServer', '1.0')"],
            capture_output=True,
            check=False,
        )
        if check.returncode != 0:
            message = f"GStreamer's RTSP server is not installed (Debian: {RTSP_PACKAGES})"
            if os.environ.get("SHOWROOM_REQUIRE_SERVICES") == "1":
                pytest.fail(message + " and SHOWROOM_REQUIRE_SERVICES=1", pytrace=False)
            pytest.skip(message)
        self.args = [str(width), str(height), str(fps)]
        self.port = free_port()
        self.url = f"rtsp://127.0.0.1:{self.port}/live"
        self.proc: subprocess.Popen[str] | None = None
        self.start()

    def start(self) -> None:
        script = Path(__file__).with_name("rtsp_camera.py")
        self.proc = subprocess.Popen(
            [self.python, str(script), str(self.port), *self.args], stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        assert line == "ready", f"RTSP camera did not start: {line!r}, exit code {self.proc.poll()}"

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(5)
            self.proc = None

    def __enter__(self) -> RtspCamera:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
