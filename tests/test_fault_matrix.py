"""The fault matrix: each fault against real Mosquitto processes, a real aggregator and a node on the real
outbox and publisher, ended by the same checks (tests/faultkit.py): compared by `event_id` against the
node's own record (its outbox), 0 lost, 0 duplicated, rollups equal a recomputation from the raw events,
and the node's status and gap report say what happened.

Scaled down for the suite (one-second heartbeats, a 5 s keepalive, a broker down 10 s); the long versions
are in bench/bench_faults.py.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner

from aggregator.queries import NodeHealth, Queries
from aggregator.storage import SqliteStorage
from edge.mqtt_common import RECONNECT_MAX_S
from showroom.cli import main
from tests.edge.node_testkit import Mosquitto, require_mosquitto
from tests.faultkit import (
    AggregatorProcess,
    Delivery,
    InProcessAggregator,
    NodeProcess,
    SimNode,
    check_delivery,
    wait_delivered,
)

STORE, NODE = "store-f", "node-1"


@dataclass
class Rig:
    tmp: Path
    broker: Mosquitto
    extra: dict[int, tuple[int, str, str, str]] = field(default_factory=dict)
    """What a node process said it wrote (see `NodeProcess.record`)."""

    @property
    def db(self) -> Path:
        return self.tmp / "aggregator.db"

    @property
    def outbox(self) -> Path:
        return self.tmp / "outbox.sqlite"

    def node(self, **kwargs: float) -> SimNode:
        return SimNode(self.outbox, self.broker.url, store_id=STORE, node_id=NODE, **kwargs).start()  # type: ignore[arg-type]

    def aggregator(self) -> InProcessAggregator:
        return InProcessAggregator(self.db, self.broker.url).start()

    def delivered(self, timeout_s: float = 30.0) -> Delivery:
        arrived = wait_delivered(self.db, self.outbox, STORE, NODE, timeout_s, self.extra)
        result = check_delivery(self.db, self.outbox, STORE, NODE, extra=self.extra)
        print(result.line())
        assert arrived, f"not everything arrived in {timeout_s} s: {result.line()}"
        assert result.lost == [], f"lost seq {result.lost[:20]}"
        assert result.duplicated == 0 and result.visitors_counted == result.visits_emitted
        assert result.rollups_equal_recomputation
        return result

    def settle(self, timeout_s: float = 30.0) -> None:
        """Wait, the node still running (so that it can answer replay requests), until the aggregator has
        everything the node committed so far."""
        assert wait_delivered(self.db, self.outbox, STORE, NODE, timeout_s, self.extra), (
            "not repaired in time"
        )

    def state(self) -> str | None:
        health = self.health()
        return health.state if health is not None else None

    def health(self) -> NodeHealth | None:
        """The aggregator's record of the node (`Queries.nodes`)."""
        storage = SqliteStorage(self.db, readonly=True)
        try:
            nodes = Queries(storage).nodes([STORE], heartbeat_period_s=1.0)
            return nodes[0] if nodes else None
        finally:
            storage.close()


def _rig(tmp_path: Path, persistence: bool) -> Iterator[Rig]:
    require_mosquitto()
    broker = Mosquitto(tmp_path, persistence=persistence)
    broker.start()
    try:
        yield Rig(tmp_path, broker)
    finally:
        broker.stop()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    yield from _rig(tmp_path, persistence=True)


@pytest.fixture
def volatile_rig(tmp_path: Path) -> Iterator[Rig]:
    """A broker without persistence (the demo's): a restart forgets sessions and queued messages."""
    yield from _rig(tmp_path, persistence=False)


def wait_until(predicate: Callable[[], bool], timeout_s: float) -> float:
    """Seconds until `predicate` held; AssertionError after `timeout_s`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout_s} s")


@pytest.mark.parametrize("down_s", [0.5, 10.0], ids=["restarted-mid-stream", "down-10s"])
def test_broker_restarted_or_down_loses_nothing_and_both_sides_return_promptly(
    rig: Rig, down_s: float
) -> None:
    aggregator = rig.aggregator()
    node = rig.node(rate_hz=30.0)
    time.sleep(2.0)
    rig.broker.stop()
    time.sleep(down_s)
    rig.broker.start()
    back = time.monotonic()
    node_after = aggregator_after = None
    while time.monotonic() - back < 15 and (node_after is None or aggregator_after is None):
        if node_after is None and node.publisher.connected:
            node_after = time.monotonic() - back
        if aggregator_after is None and aggregator.connected:
            aggregator_after = time.monotonic() - back
        time.sleep(0.02)
    print(f"node back {node_after} s, aggregator back {aggregator_after} s after the broker")
    # Back within the capped, jittered wait (plus a loaded machine's slack), not after a long back-off.
    assert node_after is not None and node_after < RECONNECT_MAX_S + 3.0
    assert aggregator_after is not None and aggregator_after < RECONNECT_MAX_S + 3.0
    time.sleep(2.0)
    rig.settle()
    node.stop()
    result = rig.delivered()
    aggregator.stop()
    assert result.gaps == [] and result.state == "offline"  # a clean stop says so


def test_broker_restarted_without_persistence_while_the_aggregator_is_down_is_repaired_by_replay(
    volatile_rig: Rig,
) -> None:
    rig = volatile_rig
    aggregator = rig.aggregator()
    node = rig.node(rate_hz=30.0)
    time.sleep(1.5)
    aggregator.stop()  # its session keeps queueing on the broker...
    time.sleep(2.0)
    rig.broker.stop()  # ...until the broker restarts without persistence: what it acknowledged is gone
    rig.broker.start()
    aggregator = rig.aggregator()
    wait_until(lambda: node.publisher.stats().replayed > 0, 30)
    rig.settle()
    node.stop()
    result = rig.delivered(timeout_s=40)
    aggregator.stop()
    stats = node.publisher.stats()
    print(f"replay requests answered {stats.replays}, payloads sent again {stats.replayed}")
    assert stats.replays >= 1 and result.gaps == []


def test_aggregator_sigkill_loses_nothing(rig: Rig) -> None:
    aggregator = AggregatorProcess(rig.db, rig.broker.url).start()
    # Its first session must exist before the node sends (a broker keeps nothing for a session to come).
    log = rig.tmp / "mosquitto.log"
    wait_until(lambda: log.exists() and "as showroom-aggregator" in log.read_text(), 30)
    time.sleep(0.5)
    node = rig.node(rate_hz=30.0)
    wait_until(lambda: rig.db.exists() and rig.state() == "online", 30)
    aggregator.kill()
    time.sleep(2.0)
    aggregator.start()
    time.sleep(2.0)
    rig.settle()
    node.stop()
    result = rig.delivered(timeout_s=40)
    aggregator.stop()
    assert result.gaps == [] and result.state == "offline"


def test_node_sigkill_reads_offline_also_after_reconnects_and_its_open_visits_close_on_restart(
    rig: Rig,
) -> None:
    aggregator = rig.aggregator()
    node = NodeProcess(rig.outbox, rig.broker.url, "--store", STORE, "--node", NODE).start()
    wait_until(lambda: rig.db.exists() and rig.state() == "online", 30)
    rig.broker.stop()  # a reconnect: the will in force now is the new connection's
    rig.broker.start()
    time.sleep(RECONNECT_MAX_S + 2.0)
    assert rig.state() == "online"
    node.kill()
    took = wait_until(lambda: rig.state() == "offline", 15)
    print(f"a SIGKILLed node reads offline {took:.1f} s after the kill")
    node.start()
    wait_until(lambda: rig.state() == "online", 30)
    time.sleep(1.0)
    rig.settle()
    node.stop()
    result = rig.delivered()
    aggregator.stop()
    assert result.restart_closed > 0, "the sim node always has visits open: the kill must have left some"
    with sqlite3.connect(rig.db) as db:
        marked = db.execute("SELECT count(*) FROM visits WHERE end_reason = 'restart'").fetchone()[0]
    assert marked == result.restart_closed
    assert result.gaps == [] and result.state == "offline"


def test_node_clock_jumping_an_hour_each_way_loses_nothing_and_status_stays_true(rig: Rig) -> None:
    aggregator = rig.aggregator()
    node = rig.node(rate_hz=30.0)
    time.sleep(1.5)
    node.clock_offset_s = 3600.0
    time.sleep(1.5)
    node.clock_offset_s = -3600.0
    rig.broker.stop()  # reconnect while the clock is an hour behind: its `online` must still count
    rig.broker.start()
    wait_until(lambda: node.publisher.connected, 15)
    time.sleep(2.0)
    assert rig.state() == "online"
    rig.settle()
    node.stop()
    result = rig.delivered()
    aggregator.stop()
    assert result.gaps == [] and result.state == "offline"


def test_node_disk_full_is_reported_and_counting_goes_on(rig: Rig) -> None:
    aggregator = rig.aggregator()
    status = rig.tmp / "node-status.json"
    node = NodeProcess(
        rig.outbox,
        rig.broker.url,
        "--store",
        STORE,
        "--node",
        NODE,
        "--fsize-limit",
        str(400_000),
        "--status-file",
        str(status),
    ).start()
    rig.extra = node.record

    def failures() -> int:
        try:
            return int(json.loads(status.read_text())["failures"])
        except (OSError, ValueError):
            return 0

    wait_until(lambda: failures() > 0, 40)
    time.sleep(1.0)
    assert json.loads(status.read_text())["held"] > 0  # counting went on, held in memory
    # Heartbeats are held with the rest (not sent past the held seqs): meanwhile the node reads stale.
    stale_after = wait_until(lambda: rig.state() == "stale", 15)
    print(f"disk full: the node read stale {stale_after:.1f} s later")
    node.signal(signal.SIGUSR1)  # the disk has room again
    wait_until(lambda: json.loads(status.read_text())["held"] == 0, 20)
    refused = failures()
    rig.settle()
    node.stop()
    result = rig.delivered()
    aggregator.stop()
    assert result.gaps == [] and result.state == "offline"
    assert "cannot store in the outbox" in rig.outbox.with_suffix(".log").read_text()
    # Afterwards the aggregator's record of the node says the disk was full: its last heartbeat (made at
    # the stop, the disk clear again) counts every refused write and holds nothing.
    health = rig.health()
    assert health is not None
    assert (health.outbox_write_failures, health.outbox_held) == (refused, 0)
    shown = CliRunner().invoke(main, ["aggregator", "nodes", "--db", str(rig.db)])
    assert shown.exit_code == 0, shown.output
    assert f"outbox: {refused} writes failed (disk full?), 0 held in memory" in shown.output
    # The heartbeats made during the outage arrived with the rest once it ended, each with its hold.
    with sqlite3.connect(rig.db) as db:
        beats = [json.loads(p) for (p,) in db.execute("SELECT payload FROM events WHERE type = 'heartbeat'")]
    most_held = max(b["outbox_held"] for b in beats)
    print(f"disk full: {refused} writes refused, up to {most_held} payloads held (heartbeats said)")
    assert most_held > 0


def test_aggregator_database_locked_by_a_reader_loses_nothing(rig: Rig) -> None:
    aggregator = rig.aggregator()
    node = rig.node(rate_hz=30.0)
    time.sleep(1.0)
    reader = sqlite3.connect(rig.db, timeout=10, isolation_level=None, check_same_thread=False)
    # A reader holding a read transaction for seconds (a slow report), then one holding the database
    # exclusively for 3 s (a backup tool): ingest waits (its busy timeout) and loses nothing.
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM events").fetchone()
    time.sleep(3.0)
    reader.execute("COMMIT")
    reader.execute("BEGIN EXCLUSIVE")
    released = threading.Timer(3.0, lambda: reader.execute("COMMIT"))
    released.start()
    time.sleep(4.0)
    released.join()
    reader.close()
    rig.settle()
    node.stop()
    result = rig.delivered()
    aggregator.stop()
    assert result.gaps == [] and result.state == "offline"
    with sqlite3.connect(rig.db) as db:
        internal = db.execute("SELECT count(*) FROM quarantine").fetchone()[0]
    assert internal == 0
