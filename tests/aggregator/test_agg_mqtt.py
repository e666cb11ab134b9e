"""MQTT ingest against real Mosquitto: shared subscriptions, MQTT 3.1.1, and any bytes on any topic.

Most tests start their own Mosquitto on a free port (so no other publisher on the machine's broker can
interfere with exact counts); one runs against the machine's broker on 127.0.0.1:1883.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from aggregator.ingest import Ingestor
from aggregator.mqtt import MqttIngestService
from aggregator.queries import Queries
from aggregator.storage import open_storage
from aggregator.synth import VisitPlan, stamper_for, visit_events
from aggregator.writer import ProcessWriter, WriterDiedError
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

    def try_publish(self, topic: str, payload: bytes) -> bool:
        """Publish; False when the broker refused the topic (it then disconnects the publisher: reconnect)."""
        try:
            self.publish(topic, payload)
            return True
        except (RuntimeError, ValueError, AssertionError):
            self.client.reconnect()
            deadline = time.monotonic() + 5
            while not self.client.is_connected() and time.monotonic() < deadline:
                time.sleep(0.01)
            return False

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Running:
    """An MqttIngestService on its own thread; `process=True` stores through a `ProcessWriter` (as
    `showroom aggregator run` does), else on the service's own thread. `error` is what `run` raised."""

    def __init__(self, db: str, url: str, *, process: bool = False, **kw: object) -> None:
        writer = ProcessWriter(db) if process else Ingestor(open_storage(db))
        self.service = MqttIngestService(writer, url, **kw)  # type: ignore[arg-type]
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.service.subscribed.wait(10), "no subscription acknowledged"

    def _run(self) -> None:
        try:
            self.service.run(stats_every_s=3600)
        except BaseException as exc:
            self.error = exc

    def stop(self) -> None:
        self.service.stop()
        self.thread.join(30)
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


def test_shared_subscription_splits_the_load_without_double_counting(own_broker: str, db: str) -> None:
    """Two aggregators in one group on one database, one storing in its own thread, one in a child process."""
    open_storage(db).close()
    group = f"g{uuid.uuid4().hex[:6]}"
    a = Running(db, own_broker, share_group=group, client_id=f"agg-a-{group}")
    b = Running(db, own_broker, process=True, share_group=group, client_id=f"agg-b-{group}")
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


def test_mqtt_311_plain_subscription(own_broker: str, db: str) -> None:
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


def test_machine_broker_end_to_end(mqtt_broker: tuple[str, int], db: str) -> None:
    host, port = mqtt_broker
    url = f"mqtt://{host}:{port}"
    store = f"st-{uuid.uuid4().hex[:8]}"
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
def fuzz_target(own_broker: str, module_db: str) -> Iterator[tuple[Running, Publisher, str]]:
    db = module_db
    run = Running(db, own_broker, share_group="fuzz", client_id="agg-fuzz")
    pub = Publisher(own_broker)
    yield run, pub, db
    pub.close()
    run.stop()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(topic=TOPICS, payload=PAYLOADS)
def test_any_bytes_on_any_topic_are_stored_or_quarantined(
    fuzz_target: tuple[Running, Publisher, str], topic: str, payload: bytes
) -> None:
    run, pub, _db = fuzz_target
    before = run.service.received
    if not pub.try_publish(topic, payload):  # refused by the broker itself: nothing reached the aggregator
        assert run.thread.is_alive()
        return
    if _subscribed_to(topic):
        wait_for(lambda: run.service.received == before + 1)
        wait_for(
            lambda: (t := run.service.totals).stored + t.duplicates + t.quarantined == run.service.received
        )
    assert run.thread.is_alive()


def test_fuzzed_aggregator_still_stores(fuzz_target: tuple[Running, Publisher, str]) -> None:
    run, pub, db = fuzz_target
    e = events_for("st-after-fuzz", 1, seed=99)[0]
    pub.publish(topic_for(e), to_json(e))
    wait_for(lambda: run.service.totals.stored >= 1 and _stored(db, e.event_id))
    with Queries.open(db) as q:
        c = q.counters()
    assert c.get("stored", 0) + c.get("duplicates", 0) + c.get("quarantined", 0) == run.service.received


def _stored(db: str, event_id: str) -> bool:
    s = open_storage(db, readonly=True)
    try:
        return bool(s.known_event_ids([event_id]))
    finally:
        s.close()


def test_messages_are_acknowledged_only_after_commit(own_broker: str, db: str) -> None:
    """A crash between receipt and storage loses nothing: the broker redelivers what was not acknowledged."""
    client_id = f"agg-crash-{uuid.uuid4().hex[:6]}"
    crashed = MqttIngestService(Ingestor(open_storage(db)), own_broker, share_group=None, client_id=client_id)
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


def test_process_writer_stores_once_and_quarantines(own_broker: str, db: str) -> None:
    """Through the child process: every event stored once, redeliveries counted as duplicates, garbage
    quarantined with its reason, and the child stops cleanly with the service."""
    run = Running(db, own_broker, process=True, share_group=None, client_id=f"aggp-{uuid.uuid4().hex[:6]}")
    writer = run.service.writer
    assert isinstance(writer, ProcessWriter) and writer.pid != os.getpid()
    pub = Publisher(own_broker)
    events = events_for("st-proc", 20)
    try:
        for e in events:
            pub.publish(topic_for(e), to_json(e))
        for e in events[:3]:
            pub.publish(topic_for(e), to_json(e))
        pub.publish("showroom/v1/st-proc/node-a/events", b"not json")
        wait_for(lambda: run.service.totals.stored + run.service.totals.duplicates == len(events) + 3)
        wait_for(lambda: run.service.totals.quarantined == 1)
    finally:
        pub.close()
        run.stop()
    assert run.error is None
    assert writer._process.exitcode == 0
    t = run.service.totals
    assert (t.stored, t.duplicates, t.quarantined) == (len(events), 3, 1)
    with Queries.open(db) as q:
        assert q.funnel("st-proc", date(2026, 11, 23)).visitors == 20  # rollups refreshed by the child
        assert [p.reason_code for p in q.quarantine(10)] == ["not_json"]


def test_killed_writer_process_loses_nothing(own_broker: str, db: str) -> None:
    """The writer process dies: the service stops with an error naming it, nothing it held was
    acknowledged, and the next session stores every event exactly once."""
    client_id = f"aggk-{uuid.uuid4().hex[:6]}"
    run = Running(db, own_broker, process=True, share_group=None, client_id=client_id)
    pub = Publisher(own_broker)
    before, after = events_for("st-kill", 5), events_for("st-kill2", 12, seed=2)  # other event ids
    try:
        for e in before:
            pub.publish(topic_for(e), to_json(e))
        wait_for(lambda: run.service.totals.stored == len(before))
        writer = run.service.writer
        assert isinstance(writer, ProcessWriter) and writer.pid is not None
        os.kill(writer.pid, signal.SIGKILL)
        for e in after:
            pub.publish(topic_for(e), to_json(e))
        run.thread.join(20)
        assert not run.thread.is_alive()
        assert isinstance(run.error, WriterDiedError), run.error
        assert f"pid {writer.pid}" in str(run.error) and "exited with code -9" in str(run.error)
        again = Running(db, own_broker, process=True, share_group=None, client_id=client_id)
        try:
            wait_for(lambda: again.service.totals.stored == len(after))
            time.sleep(0.3)
        finally:
            again.stop()
    finally:
        pub.close()
    # Acknowledged after commit: a payload whose acknowledgement was still on its way at the kill comes
    # again and is a duplicate (changes nothing); the events held by the dead writer are all stored now.
    assert again.service.totals.duplicates <= len(before)
    with Queries.open(db) as q:
        assert q.counters()["stored"] == len(before) + len(after)
        assert q.storage.count_events() == len(before) + len(after)


def test_process_writer_names_a_database_it_cannot_open(tmp_path: Path) -> None:
    with pytest.raises(WriterDiedError, match=f"could not open the database {tmp_path}: .*unable to open"):
        ProcessWriter(tmp_path)  # a directory, not a database file


def _mqtt311_only_proxy(broker_url: str) -> Any:
    """The node tests' stand-in for an MQTT 3.1.1-only broker, in front of `broker_url`'s Mosquitto."""
    sys.path.insert(0, str(Path(__file__).parents[1] / "edge"))
    try:
        from node_testkit import Mqtt311OnlyProxy
    finally:
        sys.path.pop(0)
    return Mqtt311OnlyProxy(int(broker_url.rsplit(":", 1)[1]))


def test_auto_protocol_falls_back_to_311_when_the_broker_refuses_mqtt5(own_broker: str, db: str) -> None:
    proxy = _mqtt311_only_proxy(own_broker)
    try:
        run = Running(db, f"mqtt://127.0.0.1:{proxy.port}", client_id=f"aggauto-{uuid.uuid4().hex[:6]}")
        assert run.service.auto_protocol  # the default
        assert proxy.refused_v5 >= 1 and proxy.passed >= 1
        assert run.service.protocol == "3.1.1"
        assert run.service.topic_filter == "showroom/v1/+/+/+"  # plain: no shared subscriptions on 3.1.1
        pub = Publisher(own_broker)
        try:
            events = events_for("st-auto", 3)
            for e in events:
                pub.publish(topic_for(e), to_json(e))
            wait_for(lambda: run.service.totals.stored == len(events))
        finally:
            pub.close()
            run.stop()
    finally:
        proxy.close()
    with Queries.open(db) as q:
        assert q.counters()["stored"] == len(events)


def test_explicit_mqtt5_does_not_fall_back(own_broker: str, tmp_path: Path) -> None:
    proxy = _mqtt311_only_proxy(own_broker)
    service = MqttIngestService(
        Ingestor(open_storage(tmp_path / "agg.sqlite")),
        f"mqtt://127.0.0.1:{proxy.port}",
        protocol="5",
        client_id=f"agg5-{uuid.uuid4().hex[:6]}",
    )
    thread = threading.Thread(target=service.run, kwargs={"stats_every_s": 3600}, daemon=True)
    thread.start()
    try:
        wait_for(lambda: proxy.refused_v5 >= 1)
        assert not service.subscribed.wait(1.5)
        assert service.protocol == "5" and proxy.passed == 0
    finally:
        service.stop()
        thread.join(10)
        proxy.close()
    assert not thread.is_alive()


def test_cli_run_falls_back_to_311_by_itself(own_broker: str, db: str) -> None:
    """`showroom aggregator run` (no --protocol) against a broker that refuses MQTT 5 still ingests; a
    Ctrl-C to its whole process group (its writer process included) stops it with everything stored."""
    proxy = _mqtt311_only_proxy(own_broker)
    showroom = Path(sys.executable).parent / "showroom"
    cmd = [str(showroom), "aggregator", "run", "--broker", f"mqtt://127.0.0.1:{proxy.port}", "--db", str(db)]
    proc = subprocess.Popen(
        [*cmd, "--client-id", f"aggcli-{uuid.uuid4().hex[:6]}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    pub = Publisher(own_broker)
    events = events_for("st-cli311", 2)
    try:
        wait_for(lambda: proxy.passed >= 1 or proc.poll() is not None, timeout_s=20)
        assert proc.poll() is None, proc.communicate()
        # The plain subscription follows the 3.1.1 CONNACK: publish until stored (repeats are duplicates).
        deadline = time.monotonic() + 20
        while _stored_count(db) < len(events) and time.monotonic() < deadline:
            for e in events:
                pub.publish(topic_for(e), to_json(e))
            time.sleep(0.3)
        assert _stored_count(db) == len(events)
    finally:
        pub.close()
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=20)
        proxy.close()
    assert proxy.refused_v5 >= 1
    assert "falling back to MQTT 3.1.1" in err
    assert proc.returncode == 0, err
    assert f"stored {len(events)}," in out


def _stored_count(db: Path) -> int:
    try:
        with Queries.open(db) as q:
            return int(q.counters().get("stored", 0))
    except Exception:  # the database is still being created
        return 0


class _TerminalFormatter(logging.Formatter):
    """A formatter that keeps its terminal stream, as some logging set-ups' do: it cannot be pickled."""

    def __init__(self) -> None:
        super().__init__("%(levelname)s %(name)s %(message)s")
        self.stream = sys.stderr


def test_writer_process_starts_whatever_formatter_the_root_logger_has(tmp_path: Path) -> None:
    """The writer process logs with the parent's format; a formatter that cannot be pickled to a spawned
    process must not keep the aggregator from starting."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_TerminalFormatter())
    root = logging.getLogger()
    root.handlers.insert(0, handler)
    try:
        writer = ProcessWriter(tmp_path / "a.sqlite")
    finally:
        root.removeHandler(handler)
    st_ = stamper_for("s-1", seed=1)
    events = visit_events(st_, VisitPlan(datetime(2026, 11, 23, 10, 0, tzinfo=UTC), 300.0))
    writer.submit([(topic_for(e).encode(), to_json(e), time.time()) for e in events])
    result = writer.result(timeout_s=60)
    writer.close()
    assert result is not None and result.stored == len(events)


def test_cli_run_takes_its_receipt_window_from_the_command_line(own_broker: str, db: str) -> None:
    """`aggregator run --max-age-days N`: payloads older than N days at their receipt are quarantined as
    `time_window` by the writer process, and the same payloads are stored under the default window."""
    age_days = (datetime.now(UTC) - NOW).days
    assert age_days >= 2, "the test's payloads must be at least two days old"
    showroom = Path(sys.executable).parent / "showroom"
    events = events_for(f"st-win-{uuid.uuid4().hex[:4]}", 1)
    pub = Publisher(own_broker)
    try:
        for max_age, want in ((age_days - 1, "quarantined.time_window"), (age_days + 1, "stored")):
            cmd = [str(showroom), "aggregator", "run", "--broker", own_broker, "--db", str(db)]
            proc = subprocess.Popen(
                # A group of its own: the first run's persistent session would keep its share of messages.
                [
                    *cmd,
                    *("--client-id", f"aggwin-{uuid.uuid4().hex[:6]}"),
                    *("--share-group", f"win-{uuid.uuid4().hex[:6]}"),
                    *("--max-age-days", str(max_age)),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
            try:
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and proc.poll() is None:
                    with contextlib.suppress(Exception), Queries.open(db) as q:
                        if int(q.counters().get(want, 0)) >= len(events):
                            break
                    for e in events:
                        pub.publish(topic_for(e), to_json(e))
                    time.sleep(0.3)
            finally:
                os.killpg(proc.pid, signal.SIGINT)
                _out, err = proc.communicate(timeout=20)
            assert proc.returncode == 0, err
        with Queries.open(db) as q:
            counters = q.counters()
            assert counters.get("stored", 0) == len(events)
            assert counters.get("quarantined.time_window", 0) >= len(events)
    finally:
        pub.close()
