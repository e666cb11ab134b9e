"""MQTT ingest against real Mosquitto: shared subscriptions, MQTT 3.1.1, and any bytes on any topic.

Most tests start their own Mosquitto on a free port (so no other publisher on the machine's broker can
interfere with exact counts); one runs against the machine's broker on 127.0.0.1:1883.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from aggregator.ingest import Ingestor
from aggregator.mqtt import MqttIngestService
from aggregator.queries import Queries
from aggregator.storage import SqliteStorage
from aggregator.synth import VisitPlan, stamper_for, visit_events
from edge.events import KINDS, Envelope, to_json, topic_for

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private Mosquitto on a free port: `mqtt://127.0.0.1:PORT`."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(binary).exists():
        pytest.fail("mosquitto is not installed")
    port = _free_port()
    conf = tmp_path_factory.mktemp("mosquitto") / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n", encoding="utf-8"
    )
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"mqtt://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=5)


class Publisher:
    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("mqtt://").split(":")
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}")
        self.client.connect(host, int(port))
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes) -> None:
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(timeout=5)
        assert info.is_published(), f"broker did not acknowledge {topic!r}"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Running:
    """An MqttIngestService on its own thread."""

    def __init__(self, db: Path, url: str, **kw: object) -> None:
        self.service = MqttIngestService(Ingestor(SqliteStorage(db)), url, **kw)  # type: ignore[arg-type]
        self.thread = threading.Thread(target=self.service.run, kwargs={"stats_every_s": 3600}, daemon=True)
        self.thread.start()
        assert self.service.subscribed.wait(10), "no subscription acknowledged"

    def stop(self) -> None:
        self.service.stop()
        self.thread.join(10)
        assert not self.thread.is_alive()


def wait_for(cond: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.01)
    raise AssertionError("condition not reached in time")


def events_for(store: str, n_visits: int, seed: int = 1) -> list[Envelope]:
    stamper = stamper_for(store, seed=seed)
    return [
        e
        for i in range(n_visits)
        for e in visit_events(stamper, VisitPlan(NOW.replace(minute=i % 60), 120.0))
    ]


def test_shared_subscription_splits_the_load_without_double_counting(own_broker: str, tmp_path: Path) -> None:
    db = tmp_path / "agg.sqlite"
    SqliteStorage(db).close()
    group = f"g{uuid.uuid4().hex[:6]}"
    a = Running(db, own_broker, share_group=group, client_id=f"agg-a-{group}")
    b = Running(db, own_broker, share_group=group, client_id=f"agg-b-{group}")
    pub = Publisher(own_broker)
    try:
        events = events_for("st-shared", 100)
        for e in events:
            pub.publish(topic_for(e), to_json(e))
        wait_for(lambda: a.service.received + b.service.received == len(events))
        time.sleep(0.3)
    finally:
        pub.close()
        a.stop()
        b.stop()
    assert a.service.received > 0 and b.service.received > 0  # both took a share
    assert a.service.received + b.service.received == len(events)
    with Queries.open(db) as q:
        assert q.funnel("st-shared", date(2026, 11, 23)).visitors == 100  # UTC store: not registered
        assert q.counters()["stored"] == len(events)


def test_mqtt_311_plain_subscription(own_broker: str, tmp_path: Path) -> None:
    db = tmp_path / "agg.sqlite"
    run = Running(db, own_broker, protocol="3.1.1", client_id=f"agg311-{uuid.uuid4().hex[:6]}")
    assert run.service.topic_filter == "showroom/v1/+/+/+"
    pub = Publisher(own_broker)
    try:
        events = events_for("st-v311", 3)
        for e in events:
            pub.publish(topic_for(e), to_json(e))
        for e in events[:2]:  # redelivered
            pub.publish(topic_for(e), to_json(e))
        wait_for(lambda: run.service.received == len(events) + 2)
    finally:
        pub.close()
        run.stop()
    assert run.service.totals.stored == len(events) and run.service.totals.duplicates == 2


def test_machine_broker_end_to_end(mqtt_broker: tuple[str, int], tmp_path: Path) -> None:
    host, port = mqtt_broker
    url = f"mqtt://{host}:{port}"
    store = f"st-{uuid.uuid4().hex[:8]}"
    db = tmp_path / "agg.sqlite"
    run = Running(db, url, share_group=f"g{uuid.uuid4().hex[:6]}", client_id=f"agg-{store}")
    pub = Publisher(url)
    try:
        events = events_for(store, 10)
        for e in events:
            pub.publish(topic_for(e), to_json(e))
        pub.publish(f"showroom/v1/{store}/node-a/events", b"garbage")

        def done() -> bool:
            with Queries.open(db) as q:
                return q.funnel(store, date(2026, 11, 23)).visitors == 10 and any(
                    p.topic.startswith(f"showroom/v1/{store}/") for p in q.quarantine(1000)
                )

        wait_for(done)
    finally:
        pub.close()
        run.stop()


# -- any bytes on any topic ----------------------------------------------------------------------------

_SEGMENT = st.text(
    alphabet=st.characters(blacklist_characters="/+#\x00", blacklist_categories=("Cs", "Cc")), max_size=12
)
_VALID_EVENT = to_json(events_for("st-fuzz", 1)[0])


def _mutations(data: bytes) -> st.SearchStrategy[bytes]:
    doc = json.loads(data)
    keys = sorted(doc)

    def mutate(key: str, value: object) -> bytes:
        d = dict(doc)
        d[key] = value
        return json.dumps(d).encode()

    values = st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20), st.just([1, 2])
    )
    return st.builds(mutate, st.sampled_from(keys), values)


TOPICS = st.one_of(
    st.builds(
        lambda s, n, k: f"showroom/v1/{s}/{n}/{k}",
        st.one_of(st.just("st-fuzz"), _SEGMENT),
        st.one_of(st.just("node-a"), _SEGMENT),
        st.one_of(st.sampled_from(KINDS), _SEGMENT),
    ),
    st.text(
        alphabet=st.characters(blacklist_characters="+#\x00", blacklist_categories=("Cs", "Cc")),
        min_size=1,
        max_size=40,
    ).filter(lambda t: not t.startswith("$")),
)
PAYLOADS = st.one_of(
    st.binary(max_size=3000),
    st.just(_VALID_EVENT),
    _mutations(_VALID_EVENT),
    st.just(b"{" * 70_000),  # over the 64 KiB contract limit
)


def _subscribed_to(topic: str) -> bool:
    parts = topic.split("/")
    return len(parts) == 5 and parts[:2] == ["showroom", "v1"]


@pytest.fixture(scope="module")
def fuzz_target(
    own_broker: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Running, Publisher, Path]]:
    db = tmp_path_factory.mktemp("fuzz") / "agg.sqlite"
    run = Running(db, own_broker, share_group="fuzz", client_id="agg-fuzz")
    pub = Publisher(own_broker)
    yield run, pub, db
    pub.close()
    run.stop()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(topic=TOPICS, payload=PAYLOADS)
def test_any_bytes_on_any_topic_are_stored_or_quarantined(
    fuzz_target: tuple[Running, Publisher, Path], topic: str, payload: bytes
) -> None:
    run, pub, _db = fuzz_target
    before = run.service.received
    pub.publish(topic, payload)
    if _subscribed_to(topic):
        wait_for(lambda: run.service.received == before + 1)
        wait_for(
            lambda: (t := run.service.totals).stored + t.duplicates + t.quarantined == run.service.received
        )
    assert run.thread.is_alive()


def test_fuzzed_aggregator_still_stores(fuzz_target: tuple[Running, Publisher, Path]) -> None:
    run, pub, db = fuzz_target
    e = events_for("st-after-fuzz", 1, seed=99)[0]
    pub.publish(topic_for(e), to_json(e))
    wait_for(lambda: run.service.totals.stored >= 1 and _stored(db, e.event_id))
    with Queries.open(db) as q:
        c = q.counters()
    assert c.get("stored", 0) + c.get("duplicates", 0) + c.get("quarantined", 0) == run.service.received


def _stored(db: Path, event_id: str) -> bool:
    s = SqliteStorage(db, readonly=True)
    try:
        return s.conn.execute("SELECT 1 FROM events WHERE event_id = ?", (event_id,)).fetchone() is not None
    finally:
        s.close()


def test_messages_are_acknowledged_only_after_commit(own_broker: str, tmp_path: Path) -> None:
    """A crash between receipt and storage loses nothing: the broker redelivers what was not acknowledged."""
    db = tmp_path / "agg.sqlite"
    client_id = f"agg-crash-{uuid.uuid4().hex[:6]}"
    crashed = MqttIngestService(
        Ingestor(SqliteStorage(db)), own_broker, share_group=None, client_id=client_id
    )
    crashed.start()  # network thread only: messages are received and queued, never stored
    assert crashed.subscribed.wait(10)
    pub = Publisher(own_broker)
    events = events_for("st-crash", 5)
    try:
        for e in events:
            pub.publish(topic_for(e), to_json(e))
        wait_for(lambda: len(crashed._inbox) == len(events))
        crashed._client.disconnect()
        crashed._client.loop_stop()
        again = Running(db, own_broker, share_group=None, client_id=client_id)
        try:
            wait_for(lambda: again.service.totals.stored == len(events))
        finally:
            again.stop()
    finally:
        pub.close()
    with Queries.open(db) as q:
        assert q.funnel("st-crash", date(2026, 11, 23)).visitors == 5
