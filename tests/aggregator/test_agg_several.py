"""Several aggregator processes (`showroom aggregator run`) on one MQTT 5 shared subscription, writing to
one PostgreSQL database: each event stored once whichever process got it, the rollups equal to a
recomputation from the raw events, and a process killed mid-batch (its writer too) losing nothing."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from aggregator.ingest import Ingestor
from aggregator.registry import parse_registry
from aggregator.storage import open_storage
from aggregator.synth import VisitPlan, heat_event, stamper_for, visit_events
from edge.events import Envelope, to_json, topic_for
from tests.netkit import free_port, wait_port
from tests.pgkit import PgDatabases

STORES = [f"st-multi-{i}" for i in range(6)]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[int]:
    """A private Mosquitto (the test kills clients; the machine's broker is shared)."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n", encoding="utf-8"
    )
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=5)


def the_events() -> list[Envelope]:
    start = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
    out: list[Envelope] = []
    for k, store in enumerate(STORES):
        stamper = stamper_for(store, seed=k + 1)
        for i in range(40):
            plan = VisitPlan(
                start + timedelta(minutes=7 * i),
                240.0 + 10 * i,
                browse_car="car-01" if i % 2 else None,
                browse_s=6.0 + i % 9,
                enter_car="car-01" if i % 5 == 0 else None,
                received=i % 3 == 0,
            )
            out.extend(visit_events(stamper, plan))
        for minute in range(0, 120, 10):
            out.append(heat_event(stamper, start + timedelta(minutes=minute), [(1, 2, 5.0), (3, 1, 2.5)], 2))
    return out


class Aggregator:
    """`showroom aggregator run` in its own process group (its writer child dies with it), its log kept."""

    def __init__(self, port: int, db: str, client_id: str, group: str) -> None:
        showroom = Path(sys.executable).parent / "showroom"
        cmd = [str(showroom), "aggregator", "run", "--broker", f"mqtt://127.0.0.1:{port}", "--db", db]
        self.proc = subprocess.Popen(
            [*cmd, "--protocol", "5", "--share-group", group, "--client-id", client_id],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.log: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log.append(line)

    @property
    def subscribed(self) -> bool:
        return any("subscribing to $share/" in line for line in self.log)

    def kill(self, sig: int) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)


def count(db: str, sql: str) -> int:
    with psycopg.connect(db) as conn:
        row = conn.execute(sql).fetchone()
    return int(row[0]) if row else 0


def wait_until(cond: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_several_processes_store_each_event_once_and_survive_a_kill(
    broker: int, pg_databases: PgDatabases
) -> None:
    db = pg_databases.new()
    registry = {
        "stores": [
            {"store_id": s, "name": s, "brand": "b", "region": "r", "timezone": "Asia/Shanghai"}
            for s in STORES
        ]
    }
    setup = Ingestor(open_storage(db))
    setup.load_registry(parse_registry(registry))
    setup.storage.close()
    group = f"g{uuid.uuid4().hex[:6]}"
    ids = [f"agg-{group}-{i}" for i in range(3)]
    aggs = [Aggregator(broker, db, cid, group) for cid in ids]
    events = the_events()
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{group}")
    pub.connect("127.0.0.1", broker)
    pub.loop_start()
    try:
        wait_until(lambda: all(a.subscribed for a in aggs), 60, "three subscriptions")
        half = len(events) // 2
        for e in events[:half]:
            pub.publish(topic_for(e), to_json(e), qos=1).wait_for_publish(5)
        # Kill one aggregator, writer and all, while it has work in flight.
        wait_until(lambda: count(db, "SELECT count(*) FROM events") > 50, 60, "the first events stored")
        aggs[1].kill(signal.SIGKILL)
        aggs[1].proc.wait(10)
        for e in events[half:]:
            pub.publish(topic_for(e), to_json(e), qos=1).wait_for_publish(5)
        # It comes back under its own client id: the broker redelivers what it never acknowledged.
        aggs[1] = Aggregator(broker, db, ids[1], group)
        wait_until(lambda: count(db, "SELECT count(*) FROM events") >= len(events), 120, "every event stored")
        time.sleep(2.5)  # the rollup refresh runs about every second
    finally:
        pub.loop_stop()
        pub.disconnect()
        for a in aggs:
            a.kill(signal.SIGINT)
        for a in aggs:
            a.proc.wait(30)
    logs = "".join(line for a in aggs for line in a.log)
    assert "Traceback" not in logs, logs
    assert count(db, "SELECT count(*) FROM events") == len(events)
    assert count(db, "SELECT count(DISTINCT event_id) FROM events") == len(events)
    assert count(db, "SELECT count(*) FROM dirty_days") == 0
    storage = open_storage(db)
    live = storage.daily_rows(STORES, "2026-11-01", "2026-11-30")
    hourly = {s: sorted(storage.hourly_rows(s, "2026-11-23")) for s in STORES}
    cars = {s: sorted(storage.car_daily_rows(s, "2026-11-01", "2026-11-30")) for s in STORES}
    heat = {s: storage.heat_day_rows(s, "2026-11-01", "2026-11-30") for s in STORES}
    assert sum(int(r[2]) for r in live) == 40 * len(STORES)
    # Recompute every store's rollups from its raw events and compare.
    again = Ingestor(storage)
    for s in STORES:
        again.rebuild(s)
    assert storage.daily_rows(STORES, "2026-11-01", "2026-11-30") == live
    assert {s: sorted(storage.hourly_rows(s, "2026-11-23")) for s in STORES} == hourly
    assert {s: sorted(storage.car_daily_rows(s, "2026-11-01", "2026-11-30")) for s in STORES} == cars
    assert {s: storage.heat_day_rows(s, "2026-11-01", "2026-11-30") for s in STORES} == heat
    storage.close()
    pg_databases.release(db)
