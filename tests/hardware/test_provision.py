"""Broker accounts and ACLs, proven against a real Mosquitto started from the files the installer writes.

`broker-config` and `provision` write a broker folder for two stores' nodes; `mosquitto -c` runs it on a
free port; real paho clients then try what an outsider or a misbehaving node would: publishing for another
store or node, reading everything, overwriting another node's retained status, logging in without (or with
the wrong) password, taking the aggregator's client id. Messages that must not arrive are checked with a
sentinel: the same client publishes an allowed message right after, so once the sentinel arrives anything
sent before it would have arrived too.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as paho
import pytest
import yaml
from click.testing import CliRunner, Result
from paho.mqtt.enums import CallbackAPIVersion

from edge.config import load_config
from edge.events import EventStamper, new_event_id, to_json
from edge.handover_messages import HandoverMessage, HandoverType
from edge.node.handover_transport import HandoverTransport, PublisherHandoverTransport
from edge.node.mqtt import MqttPublisher
from edge.node.outbox import Outbox
from showroom.cli import main
from tests.edge.node_testkit import make_events
from tests.netkit import free_port

REPO = Path(__file__).resolve().parents[2]
NODES = (("s1", "n1"), ("s1", "n2"), ("s2", "n1"))
SHARE = "$share/showroom-aggregator/showroom/v1/+/+/+"


def require_mosquitto() -> None:
    if shutil.which("mosquitto"):
        return
    if os.environ.get("SHOWROOM_REQUIRE_SERVICES") == "1":
        pytest.fail("the mosquitto binary is not installed and SHOWROOM_REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip("the mosquitto binary is not installed")


def cli(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def ok(*args: str | Path) -> str:
    result = cli(*args)
    assert result.exit_code == 0, result.output
    return result.output


class Broker:
    """`mosquitto -c DIR/mosquitto.conf`, stopped (SIGTERM) at the end."""

    def __init__(self, folder: Path, port: int) -> None:
        self.folder, self.port = folder, port
        log = (folder.parent / "mosquitto.log").open("ab")
        self.proc = subprocess.Popen(
            ["mosquitto", "-c", str(folder / "mosquitto.conf")], stdout=log, stderr=log
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((folder.parent / "mosquitto.log").read_text()) from None
                time.sleep(0.05)

    def reload(self) -> None:
        ok("hardware", "provision", "--dir", self.folder, "--list")  # the files are readable
        self.proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)  # the broker reads passwd and acl between network loops

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


@dataclass
class Client:
    """A connected MQTT 5 client that records what it receives and how its connection ended."""

    port: int
    username: str | None
    password: str | None
    client_id: str = ""
    messages: list[tuple[str, bytes, bool]] = field(default_factory=list)
    refused: str | None = None
    disconnects: int = 0

    def __post_init__(self) -> None:
        self.connected = threading.Event()
        self.answered = threading.Event()
        self.arrived = threading.Condition()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=paho.MQTTv5)
        if self.username is not None:
            self.client.username_pw_set(self.username, self.password)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", self.port, keepalive=30)
        self.client.loop_start()
        assert self.answered.wait(10), "no CONNACK"
        if self.refused is not None:
            self.close()  # no retrying in the background

    def _on_connect(
        self, _c: paho.Client, _u: object, _f: object, reason: paho.ReasonCode, _p: object
    ) -> None:
        if reason.is_failure:
            self.refused = str(reason)
        else:
            self.connected.set()
        self.answered.set()

    def _on_disconnect(self, _c: paho.Client, _u: object, _f: object, _r: object, _p: object) -> None:
        self.disconnects += 1
        self.connected.clear()

    def _on_message(self, _c: paho.Client, _u: object, msg: paho.MQTTMessage) -> None:
        with self.arrived:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))
            self.arrived.notify_all()

    def subscribe(self, topic_filter: str) -> None:
        done = threading.Event()
        self.client.on_subscribe = lambda *_a: done.set()
        self.client.subscribe(topic_filter, qos=1)
        assert done.wait(5), f"no SUBACK for {topic_filter}"

    def publish(self, topic: str, payload: str, *, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(5)

    def wait_for(self, payload: str, timeout_s: float = 5.0) -> None:
        with self.arrived:
            found = self.arrived.wait_for(lambda: payload.encode() in self.payloads(), timeout_s)
        assert found, f"{payload!r} did not arrive; got {self.messages}"

    def payloads(self) -> list[bytes]:
        return [p for _t, p, _r in self.messages]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@dataclass
class Site:
    folder: Path
    port: int
    outs: dict[tuple[str, str], Path]
    broker: Broker

    def password(self, store: str, node: str) -> str:
        return (self.outs[store, node] / "node.password").read_text().splitlines()[0]

    @property
    def aggregator_password(self) -> str:
        return (self.folder / "aggregator.password").read_text().splitlines()[0]

    def node(self, store: str, node: str, client_id: str = "") -> Client:
        return Client(self.port, f"node-{store}-{node}", self.password(store, node), client_id)

    def aggregator(self) -> Client:
        return Client(self.port, "aggregator", self.aggregator_password, "showroom-aggregator")


def provision_site(root: Path) -> tuple[Path, int, dict[tuple[str, str], Path]]:
    folder, port = root / "broker", free_port()
    ok("hardware", "broker-config", "--dir", folder, "--port", port)
    outs = {}
    for store, node in NODES:
        out = root / f"{store}-{node}"
        ok("hardware", "provision", "--store", store, "--node", node, "--dir", folder, "--out", out)
        outs[store, node] = out
    return folder, port, outs


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    require_mosquitto()
    root = tmp_path_factory.mktemp("site")
    folder, port, outs = provision_site(root)
    broker = Broker(folder, port)
    try:
        yield Site(folder, port, outs, broker)
    finally:
        broker.stop()


@pytest.fixture
def aggregator(site: Site) -> Iterator[Client]:
    client = site.aggregator()
    assert client.refused is None, client.refused
    client.subscribe(SHARE)
    yield client
    client.close()


def test_node_reaches_the_aggregator_only_under_its_own_topics(site: Site, aggregator: Client) -> None:
    node = site.node("s1", "n1")
    node.publish("showroom/v1/s1/n1/events", "own")
    aggregator.wait_for("own")
    node.publish("showroom/v1/s2/n1/events", "forged other store")
    node.publish("showroom/v1/s1/n2/events", "forged other node")
    node.publish("showroom/v1/s1/n2/status", "offline (forged)", retain=True)
    node.publish("showroom/v1/s1/n1/events", "sentinel")
    aggregator.wait_for("sentinel")
    assert aggregator.payloads() == [b"own", b"sentinel"]
    node.close()

    late = site.aggregator()  # a new subscription gets retained messages: none forged for s1/n2
    late.subscribe("showroom/v1/+/+/status")
    helper = site.node("s1", "n2")
    helper.publish("showroom/v1/s1/n2/events", "n2 sentinel")
    time.sleep(0.3)
    assert not [m for m in late.messages if m[0] == "showroom/v1/s1/n2/status"], late.messages
    late.close()
    helper.close()


def test_a_node_reads_nothing_but_its_commissioning_reply(site: Site, aggregator: Client) -> None:
    spy = site.node("s2", "n1")
    spy.subscribe("#")
    spy.subscribe("showroom/v1/s1/n1/commission/reply")
    spy.subscribe("showroom/v1/s2/n1/commission/reply")
    node = site.node("s1", "n1")
    node.subscribe("showroom/v1/s1/n1/commission/reply")

    request = json.dumps({"nonce": "abc", "sent_at": "2026-01-01T00:00:00.000Z"})
    node.publish("showroom/v1/s1/n1/commission", request)
    aggregator.wait_for(request)
    aggregator.publish("showroom/v1/s1/n1/commission/reply", "reply abc")
    node.wait_for("reply abc")
    node.publish("showroom/v1/s1/n1/events", "s1 event")
    aggregator.wait_for("s1 event")
    aggregator.publish("showroom/v1/s2/n1/commission/reply", "reply for the spy")
    spy.wait_for("reply for the spy")
    # `#` matches everything, but the broker delivers only what the account may read (its own reply,
    # once per matching subscription).
    assert {topic for topic, _p, _r in spy.messages} == {"showroom/v1/s2/n1/commission/reply"}, spy.messages
    spy.close()
    node.close()


def test_the_aggregator_cannot_publish_node_events(site: Site, aggregator: Client) -> None:
    aggregator.publish("showroom/v1/s1/n1/events", "forged by the aggregator")
    aggregator.publish("showroom/v1/s1/n1/status", "offline", retain=True)
    node = site.node("s1", "n1")
    node.publish("showroom/v1/s1/n1/events", "after")
    aggregator.wait_for("after")
    assert aggregator.payloads() == [b"after"]
    node.close()


def test_logins_without_the_password_are_refused_and_take_over_nothing(
    site: Site, aggregator: Client
) -> None:
    anonymous = Client(site.port, None, None)
    assert anonymous.refused is not None and not anonymous.connected.is_set()
    for client_id in ("showroom-aggregator", "aggregator", ""):
        impostor = Client(site.port, "aggregator", "not-the-password", client_id)
        assert impostor.refused is not None, "the broker accepted a wrong aggregator password"
        impostor.close()
    wrong_node = Client(site.port, "node-s1-n1", site.password("s1", "n2"))
    assert wrong_node.refused is not None
    # A node with valid credentials naming the aggregator's client id gets its own user name as id.
    node = site.node("s1", "n1", client_id="aggregator")
    assert node.refused is None
    node.publish("showroom/v1/s1/n1/events", "still here")
    aggregator.wait_for("still here")
    assert aggregator.connected.is_set() and aggregator.disconnects == 0
    node.close()
    print(f"refusals: anonymous {anonymous.refused!r}, wrong password {wrong_node.refused!r}")


def test_files_are_private_hash_only_and_rerunning_changes_nothing(site: Site) -> None:
    secrets = [site.aggregator_password] + [site.password(s, n) for s, n in NODES]
    for path in [site.folder, *site.folder.rglob("*"), *site.outs.values()]:
        if path.is_dir():
            assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
            continue
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        if path.name in ("aggregator.password", "node.password") or path.parent.name == "data":
            continue
        text = path.read_text()
        assert not [s for s in secrets if s in text], f"{path} holds a password"
    for out in site.outs.values():
        assert stat.S_IMODE((out / "node.password").stat().st_mode) == 0o600
        assert stat.S_IMODE((out / "node.yaml").stat().st_mode) == 0o600
    entries = dict(line.split(":", 1) for line in (site.folder / "passwd").read_text().splitlines())
    assert sorted(entries) == ["aggregator", "node-s1-n1", "node-s1-n2", "node-s2-n1"]
    assert all(h.startswith("$7$") for h in entries.values())

    before = {p: p.read_bytes() for p in [site.folder / "passwd", site.folder / "acl"]}
    out = site.outs["s1", "n1"]
    node_files = {p: p.read_bytes() for p in out.iterdir()}
    ok("hardware", "provision", "--store", "s1", "--node", "n1", "--dir", site.folder, "--out", out)
    ok("hardware", "broker-config", "--dir", site.folder, "--port", site.port)
    assert {p: p.read_bytes() for p in before} == before
    assert {p: p.read_bytes() for p in out.iterdir()} == node_files

    listing = ok("hardware", "provision", "--dir", site.folder, "--list")
    assert "node-s2-n1\tnode\tstore s2, node n1" in listing
    assert not [s for s in secrets if s in listing]


def test_node_config_checks_and_finds_its_password_from_anywhere(site: Site, tmp_path: Path) -> None:
    out = site.outs["s2", "n1"]
    # Provisioned without a template, the node has a placeholder camera and no calibration yet: that is the
    # one thing check-config finds missing (the installer calibrates next).
    checked = cli("edge", "check-config", out / "node.yaml")
    assert checked.exit_code == 1
    assert "1 problem(s)" in checked.output and "camera has no calibration" in checked.output, checked.output
    config = load_config(out / "node.yaml")
    assert config.broker.username == "node-s2-n1"
    assert config.broker.url == f"mqtt://127.0.0.1:{site.port}"
    os.chdir(tmp_path)  # a relative password_file is found beside the config, not in the working directory
    assert config.broker.password() == site.password("s2", "n1")
    raw = yaml.safe_load((out / "node.yaml").read_text())
    assert raw["broker"]["password_file"] == "node.password"


def test_rotate_refuses_the_old_password_after_reload(site: Site, aggregator: Client) -> None:
    out = site.outs["s1", "n2"]
    old = site.password("s1", "n2")
    ok("hardware", "provision", "--store", "s1", "--node", "n2", "--dir", site.folder, "--out", out,
       "--rotate", "--reload-pid", site.broker.proc.pid)  # fmt: skip
    time.sleep(0.5)
    new = site.password("s1", "n2")
    assert new != old
    stale = Client(site.port, "node-s1-n2", old)
    assert stale.refused is not None
    fresh = site.node("s1", "n2")
    assert fresh.refused is None
    fresh.publish("showroom/v1/s1/n2/events", "rotated")
    aggregator.wait_for("rotated")
    fresh.close()


def test_removed_and_unreloaded_accounts_are_named(site: Site, tmp_path: Path) -> None:
    folder, out = site.folder, tmp_path / "s3-n1"
    result = cli("hardware", "provision", "--store", "s3", "--node", "n1", "--dir", folder, "--out", out,
                 "--verify")  # fmt: skip
    assert result.exit_code == 1 and "did not accept node-s3-n1" in result.output, result.output
    assert "kill -HUP" in result.output and "Traceback" not in result.output
    site.broker.reload()
    result = cli("hardware", "provision", "--store", "s3", "--node", "n1", "--dir", folder, "--out", out,
                 "--verify")  # fmt: skip
    assert result.exit_code == 0 and "the broker accepts node-s3-n1" in result.output, result.output
    password = (out / "node.password").read_text().strip()
    connected = Client(site.port, "node-s3-n1", password)
    assert connected.refused is None
    ok("hardware", "provision", "--store", "s3", "--node", "n1", "--dir", folder, "--remove")
    site.broker.reload()
    assert connected.disconnects >= 1, "a removed account stayed connected after the reload"
    connected.close()
    gone = Client(site.port, "node-s3-n1", password)
    assert gone.refused is not None
    assert "node-s3-n1" not in (folder / "acl").read_text()


def test_aggregator_runs_from_its_account_file(site: Site, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("SHOWROOM_MQTT_PASSWORD", None)
    command = [sys.executable, "-c", "from showroom.cli import main; main()", "aggregator", "run",
               "--account", str(site.folder / "aggregator.yaml"), "--db", str(tmp_path / "agg.sqlite"),
               "--writer", "thread"]  # fmt: skip
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log: list[str] = []
    connected = threading.Event()

    def read_log() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            log.append(line)
            if "connected to" in line:
                connected.set()

    reader = threading.Thread(target=read_log, daemon=True)
    reader.start()
    try:
        assert connected.wait(30), "".join(log)
        time.sleep(0.5)  # the SUBACK follows the CONNACK
        node = site.node("s2", "n1")
        for i in range(3):
            node.publish("showroom/v1/s2/n1/heartbeat", json.dumps({"n": i}))
        time.sleep(1.5)
        node.close()
    finally:
        proc.send_signal(signal.SIGINT)
        stdout, _ = proc.communicate(timeout=30)
        reader.join(5)
    assert "stopped: received 3," in stdout, stdout + "".join(log)
    assert "refused" not in "".join(log)


def test_template_and_registry(tmp_path: Path) -> None:
    folder, out, registry = tmp_path / "broker", tmp_path / "node-a", tmp_path / "aggregator" / "stores.yaml"
    registry.parent.mkdir()
    ok("hardware", "broker-config", "--dir", folder, "--port", "18999")
    ok("hardware", "provision", "--store", "sh-pudong-01", "--node", "node-a", "--dir", folder, "--out", out,
       "--from", REPO / "examples" / "sim-store.yaml", "--registry", registry, "--brand", "aurora",
       "--region", "east", "--broker-url", "mqtt://broker.example:1883")  # fmt: skip
    config = load_config(out / "node.yaml")
    assert (config.store_id, config.node_id, len(config.cameras)) == ("sh-pudong-01", "node-a", 4)
    assert config.broker.url == "mqtt://broker.example:1883"
    assert config.broker.username == "node-sh-pudong-01-node-a"
    ok("hardware", "provision", "--store", "sh-pudong-01", "--node", "node-b", "--dir", folder,
       "--out", tmp_path / "node-b", "--registry", registry)  # fmt: skip
    data = yaml.safe_load(registry.read_text())
    assert data["stores"][0]["node_configs"] == ["../node-a/node.yaml", "../node-b/node.yaml"]
    # The aggregator reads the registry with the node configs it references.
    output = ok("aggregator", "stores", "load", registry, "--db", tmp_path / "agg.sqlite")
    assert "loaded 1 store(s), 1 brand(s)" in output
    # node-a's folder is node-a's: provisioning another node into it is refused.
    result = cli("hardware", "provision", "--store", "sh-pudong-01", "--node", "node-c", "--dir", folder,
                 "--out", out)  # fmt: skip
    assert result.exit_code == 1 and "use another --out" in result.output


def test_bad_input_is_named_without_a_traceback(tmp_path: Path) -> None:
    folder = tmp_path / "broker"
    ok("hardware", "broker-config", "--dir", folder, "--port", free_port())
    result = cli("hardware", "provision", "--store", "Store 1!", "--node", "n1", "--dir", folder,
                 "--out", tmp_path / "o")  # fmt: skip
    assert result.exit_code == 2 and "'Store 1!' is not a valid id" in result.output, result.output
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = cli("hardware", "broker-config", "--dir", blocker / "broker", "--port", "1883")
    assert result.exit_code == 1 and "cannot write in" in result.output and str(blocker) in result.output
    result = cli("hardware", "provision", "--store", "s1", "--node", "n1", "--dir", tmp_path / "nothing",
                 "--out", tmp_path / "o")  # fmt: skip
    assert result.exit_code == 1 and "not a broker folder" in result.output, result.output
    result = cli("hardware", "provision", "--store", "s1", "--node", "n1", "--dir", folder,
                 "--out", tmp_path / "o", "--registry", tmp_path / "stores.yaml")  # fmt: skip
    assert result.exit_code == 1 and "give --brand and --region" in result.output, result.output
    assert not (tmp_path / "o").exists()
    for result in (
        cli("hardware", "broker-config", "--dir", folder, "--port", "0"),
        cli("hardware", "provision", "--dir", folder, "--store", "s1", "--node", "n1"),
    ):
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output


def make_server_certificate(folder: Path) -> None:
    """ca.pem, server.pem and server.key (for 127.0.0.1) in `folder`, made with the openssl binary."""
    folder.mkdir()

    def openssl(*args: str | Path) -> None:
        subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", folder / "ca.key", "-out",
            folder / "ca.pem", "-days", "2", "-subj", "/CN=showroom test CA")  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", folder / "server.key", "-out",
            folder / "server.csr", "-subj", "/CN=127.0.0.1")  # fmt: skip
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", folder / "server.csr", "-CA", folder / "ca.pem", "-CAkey",
            folder / "ca.key", "-CAcreateserial", "-out", folder / "server.pem", "-days", "2",
            "-extfile", folder / "san.ext")  # fmt: skip


def tls_login(port: int, ca_file: Path, username: str, password: str) -> bool:
    """Whether the broker's TLS listener (verified against `ca_file`) accepts the login."""
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.username_pw_set(username, password)
    client.tls_set(ca_certs=str(ca_file))
    answers: list[bool] = []
    answered = threading.Event()
    client.on_connect = lambda _c, _u, _f, rc, _p: (answers.append(not rc.is_failure), answered.set())
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        assert answered.wait(10), "no CONNACK over TLS"
    finally:
        client.disconnect()
        client.loop_stop()
    return answers[0]


def test_tls_listener_with_the_same_accounts(tmp_path: Path) -> None:
    require_mosquitto()
    if not shutil.which("openssl"):
        pytest.skip("the openssl binary is not installed")
    make_server_certificate(tmp_path / "tls")
    folder, port, tls_port = tmp_path / "broker", free_port(), free_port()
    ok("hardware", "broker-config", "--dir", folder, "--port", port, "--tls-dir", tmp_path / "tls",
       "--tls-port", tls_port)  # fmt: skip
    ok("hardware", "provision", "--store", "s1", "--node", "n1", "--dir", folder, "--out", tmp_path / "o",
       "--broker-url", f"mqtts://127.0.0.1:{tls_port}")  # fmt: skip
    broker = Broker(folder, port)
    try:
        password = (tmp_path / "o" / "node.password").read_text().strip()
        assert tls_login(tls_port, tmp_path / "tls" / "ca.pem", "node-s1-n1", password)
        assert not tls_login(tls_port, tmp_path / "tls" / "ca.pem", "node-s1-n1", "wrong")
    finally:
        broker.stop()


def test_replay_requests_reach_only_their_node_and_only_nodes_answer_them(
    site: Site, aggregator: Client
) -> None:
    aggregator.subscribe("$share/showroom-aggregator/showroom/v1/+/+/replay/reply")
    node = site.node("s1", "n1")
    node.subscribe("showroom/v1/s1/n1/replay")
    spy = site.node("s2", "n1")
    spy.subscribe("showroom/v1/s1/n1/replay")  # another node's requests: refused by the ACL
    spy.subscribe("showroom/v1/s1/n1/replay/reply")

    aggregator.publish("showroom/v1/s1/n1/replay", "send 5..9 again")
    node.wait_for("send 5..9 again")
    node.publish("showroom/v1/s1/n1/replay/reply", "5..9: outside node history")
    aggregator.wait_for("5..9: outside node history")
    spy.publish("showroom/v1/s1/n1/replay/reply", "forged answer")  # not its topic
    node.publish("showroom/v1/s1/n2/replay/reply", "forged for n2")
    node.publish("showroom/v1/s1/n1/replay/reply", "sentinel")
    aggregator.wait_for("sentinel")
    assert b"forged answer" not in aggregator.payloads() and b"forged for n2" not in aggregator.payloads()
    assert spy.messages == []
    spy.close()
    node.close()


def test_boxes_of_one_store_read_each_others_hand_overs_and_nothing_of_another_store(
    site: Site, aggregator: Client
) -> None:
    """A store served by several boxes: a node publishes its hand-overs under its own topics and reads its
    store's boxes' hand-overs; another store's, or a hand-over forged under a neighbour's name, never."""
    n2 = site.node("s1", "n2")
    n2.subscribe("showroom/v1/s1/+/handover")
    n2.subscribe("showroom/v1/s2/+/handover")
    n2.subscribe("showroom/v1/s1/n1/events")
    n1 = site.node("s1", "n1")
    other = site.node("s2", "n1")
    other.publish("showroom/v1/s2/n1/handover", "other store's offer")
    n1.publish("showroom/v1/s1/n1/events", "n1 event")
    n1.publish("showroom/v1/s1/n2/handover", "forged under n2's name")
    n1.publish("showroom/v1/s1/n1/handover", "n1 offer")
    n2.wait_for("n1 offer")
    time.sleep(0.3)
    assert [p for _t, p, _r in n2.messages] == [b"n1 offer"], n2.messages
    aggregator.wait_for("n1 event")
    for client in (n1, n2, other):
        client.close()


def hand_over(kind: HandoverType, from_node: str, to_node: str, subject_id: str) -> HandoverMessage:
    now = datetime.now(UTC)
    return HandoverMessage(
        message_id=new_event_id(now),
        store_id="s1",
        from_node=from_node,
        to_node=to_node,
        ts=now,
        type=kind,
        subject_id=subject_id,
        xy_m=(12.0, 8.0),
        velocity_mps=(1.0, 0.0),
        door_id="main",
        started_at=now - timedelta(minutes=3),
    )


class Box:
    """A provisioned node with its one connection: its publisher, carrying its hand-overs too."""

    def __init__(self, site: Site, node: str, folder: Path) -> None:
        config = load_config(site.outs["s1", node] / "node.yaml")
        self.outbox = Outbox(folder / f"{node}.sqlite", 10_000_000, history_s=3600)
        self.publisher = MqttPublisher(config.broker, self.outbox, store_id="s1", node_id=node)
        self.link = PublisherHandoverTransport(self.publisher, ["n2" if node == "n1" else "n1"])
        self.events = make_events(EventStamper("s1", node), 3)
        self.publisher.start()

    def close(self) -> None:
        self.publisher.stop(drain_timeout_s=1)
        self.outbox.close()


def test_boxes_of_one_store_hand_over_on_their_one_connection_beside_their_events(
    site: Site, aggregator: Client, tmp_path: Path
) -> None:
    """The installer's broker gives a connection its account's name as client id: a node has one
    connection, and its events, hand-overs and status all go over it, none throwing another off."""
    n1, n2 = Box(site, "n1", tmp_path), Box(site, "n2", tmp_path)
    try:
        for box in (n1, n2):
            box.link.start(10)
            box.outbox.extend(box.events)
            box.publisher.notify()
        offer = hand_over("handover.offer", "n1", "n2", "v-00112233445566ff")
        sent = n1.link.publish([offer])
        assert n2.link.received(timeout_s=5) == [offer]
        taken = hand_over("handover.taken", "n2", "n1", offer.subject_id)
        assert n2.link.publish([taken]) and n1.link.received(timeout_s=5) == [taken]
        deadline = time.monotonic() + 5
        while not n1.link.acknowledged(sent) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert n1.link.acknowledged(sent) and sent
        assert n1.publisher.wait_drained(10) and n2.publisher.wait_drained(10)
        for box in (n1, n2):
            for event in box.events:
                aggregator.wait_for(to_json(event).decode())
        time.sleep(1.0)  # a connection thrown off comes back within 0.5-3 s: long enough to see one go
        for box in (n1, n2):
            stats = box.publisher.stats()
            assert (stats.connects, stats.disconnects, stats.connected) == (1, 0, True), stats
            assert (box.link.sent, box.link.send_failures, box.link.rejected) == (1, 0, 0)
    finally:
        n1.close()
        n2.close()


def test_a_second_connection_under_a_node_account_throws_the_publisher_off(
    site: Site, tmp_path: Path
) -> None:
    """Why the hand-over rides on the publisher: a link of its own under the node's account (the same
    client id on this broker) takes the publisher's place, and the connection counts show it."""
    box = Box(site, "n1", tmp_path)
    config = load_config(site.outs["s1", "n1"] / "node.yaml")
    own = HandoverTransport(config.broker, "s1", "n1", ["n2"], password=config.broker.password())
    try:
        assert box.publisher.wait_connected(10)
        own.connect()
        deadline = time.monotonic() + 5
        while box.publisher.stats().disconnects == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert box.publisher.stats().disconnects >= 1
    finally:
        own.stop()
        box.close()
