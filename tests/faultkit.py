"""The fault matrix's parts: a simulated node on the real outbox and publisher, the real aggregator, and
the checks every fault ends with (tests/test_fault_matrix.py, bench/bench_faults.py, bench/bench_load.py).

`SimNode` is a node without cameras: it makes visits (a start, later its end) and heartbeats at a given
rate and writes them through the product's own `OutboxWriter`, `Outbox` (with its history) and
`MqttPublisher`, so every delivery rule under test is the node's real code. It runs in the test's process,
or alone in a child process (`python tests/faultkit.py node ...`) when the fault is killing it.

The node's own record of what it emitted is its outbox: every row it ever committed is kept there (the
history outlasts any test), sent or not. `check_delivery` compares the aggregator's database against it by
`event_id`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import resource
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script (the child-process node)
    sys.path.insert(0, str(REPO))

from edge.config import BrokerConfig  # noqa: E402
from edge.events import Envelope, EventStamper, Heartbeat, IdSource, VisitEnded, VisitStarted  # noqa: E402
from edge.node.mqtt import MqttPublisher  # noqa: E402
from edge.node.outbox import Outbox  # noqa: E402
from edge.node.outbox_writer import OutboxWriter  # noqa: E402
from edge.node.restart import visits_left_open  # noqa: E402

log = logging.getLogger("faultkit")

HISTORY_S = 30 * 86_400.0
"""The simulated nodes keep every sent payload for the whole test: their outbox is the record."""


class SimNode:
    """A camera-less node: visits and heartbeats at `rate_hz`, through the real outbox and publisher.

    Args:
        outbox_path: its outbox file (reopened as is after a restart or a kill).
        broker_url: the broker.
        rate_hz: payloads per second (visit starts and ends; heartbeats come on top, every `heartbeat_s`).
        clock_offset_s: added to the wall clock for every timestamp the node makes (a node clock off by an
            hour); may be changed while it runs.
        open_visits: visits kept open at once (each ends after this many later starts).
    """

    def __init__(
        self,
        outbox_path: Path,
        broker_url: str,
        *,
        store_id: str = "store-f",
        node_id: str = "node-1",
        rate_hz: float = 20.0,
        heartbeat_s: float = 1.0,
        clock_offset_s: float = 0.0,
        open_visits: int = 4,
        keepalive_s: int = 5,
        max_bytes: int = 50_000_000,
        on_written: Callable[[list[Envelope]], None] | None = None,
    ) -> None:
        self.store_id, self.node_id = store_id, node_id
        self.rate_hz = rate_hz
        self.heartbeat_s = heartbeat_s
        self.clock_offset_s = clock_offset_s
        self.open_visits = open_visits
        self.outbox = Outbox(outbox_path, max_bytes, history_s=HISTORY_S)
        self.stamper = EventStamper(store_id, node_id, IdSource(), next_seq=self.outbox.next_seq)
        self.writer = OutboxWriter(self.outbox)
        self.on_written = on_written
        self.closed_on_restart = self._store(visits_left_open(self.outbox, self.stamper, self.now()))
        self.publisher = MqttPublisher(
            BrokerConfig(url=broker_url, keepalive_s=keepalive_s),
            self.outbox,
            store_id=store_id,
            node_id=node_id,
            clock=lambda: time.time() + self.clock_offset_s,
        )
        self._open: deque[tuple[str, datetime]] = deque()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = time.monotonic()
        self.emitted = 0

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.clock_offset_s)

    def _store(self, batch: list[Envelope]) -> list[Envelope]:
        written = self.writer.store(batch)
        if written and self.on_written is not None:
            self.on_written(written)
        return written

    def start(self) -> SimNode:
        self.publisher.start()
        self._thread = threading.Thread(target=self._run, name=f"sim-{self.node_id}", daemon=True)
        self._thread.start()
        return self

    def _visit_step(self) -> list[Envelope]:
        ts = self.now()
        out: list[Envelope] = []
        if len(self._open) >= self.open_visits:
            visitor, started = self._open.popleft()
            end = max(ts, started)
            out.append(
                self.stamper.stamp(
                    VisitEnded,
                    end,
                    visitor_id=visitor,
                    door_id="main",
                    started_at=started,
                    duration_s=(end - started).total_seconds(),
                    browsed=False,
                    entered_car=False,
                    received=False,
                )
            )
        else:
            visitor = self.stamper.ids.visitor_id()
            self._open.append((visitor, ts))
            out.append(self.stamper.stamp(VisitStarted, ts, visitor_id=visitor, door_id="main"))
        return out

    def heartbeat(self) -> Heartbeat:
        stats = self.outbox.stats()
        return self.stamper.stamp(
            Heartbeat,
            self.now(),
            cameras=[],
            outbox_depth=stats.depth + self.writer.held,
            outbox_evicted=stats.evicted_total,
            outbox_write_failures=self.writer.failures,
            outbox_held=self.writer.held,
            model_id="sim",
            software_version="faultkit",
            uptime_s=time.monotonic() - self._started,
        )

    def _run(self) -> None:
        next_beat = time.monotonic()
        next_step = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            batch: list[Envelope] = []
            while next_step <= now:
                batch += self._visit_step()
                next_step += 1.0 / self.rate_hz  # read each step: the rate may change while it runs
            if now >= next_beat:
                batch.append(self.heartbeat())
                next_beat = now + self.heartbeat_s
            if batch:
                self.emitted += len(batch)
                if self._store(batch):
                    self.publisher.notify()
            self._stop.wait(min(0.5, max(0.0, min(next_step, next_beat) - time.monotonic())))

    def stop(self, *, drain_timeout_s: float = 10.0, end_visits: bool = True) -> None:
        """Stop cleanly: end the open visits (reason `shutdown`), drain, publish `offline`, close."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if end_visits:
            ts = self.now()
            ended: list[Envelope] = []
            while self._open:
                visitor, started = self._open.popleft()
                end = max(ts, started)
                ended.append(
                    self.stamper.stamp(
                        VisitEnded,
                        end,
                        visitor_id=visitor,
                        door_id=None,
                        started_at=started,
                        duration_s=(end - started).total_seconds(),
                        browsed=False,
                        entered_car=False,
                        received=False,
                        end_reason="shutdown",
                    )
                )
            ended.append(self.heartbeat())
            self._store(ended)
        self.publisher.stop(drain_timeout_s=drain_timeout_s)
        self.outbox.close()


# ---------------------------------------------------------------------------------------------------
# The node alone in a child process (to be killed)
# ---------------------------------------------------------------------------------------------------


def node_main(argv: list[str]) -> None:
    """`faultkit.py node --outbox F --broker URL [--rate R] [--fsize-limit BYTES]`: run until SIGTERM
    (clean stop) or SIGKILL. SIGUSR1 lifts the file size limit (the disk has room again)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--outbox", type=Path, required=True)
    parser.add_argument("--broker", required=True)
    parser.add_argument("--store", default="store-f")
    parser.add_argument("--node", default="node-1")
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--heartbeat-s", type=float, default=1.0)
    parser.add_argument(
        "--fsize-limit", type=int, default=0, help="RLIMIT_FSIZE in bytes (a disk that fills)"
    )
    parser.add_argument("--status-file", type=Path, default=None, help="write the writer's counters here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s node %(levelname)s %(name)s: %(message)s")
    if args.fsize_limit:
        # Past the limit a write fails with EFBIG instead of killing the process: a full disk, for SQLite.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (args.fsize_limit, hard))
        signal.signal(signal.SIGUSR1, lambda *_: resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard)))

    def record(written: list[Envelope]) -> None:
        # The node's record of what it committed, on a pipe (a full disk cannot stop it): one line each.
        lines = "".join(
            f"{e.seq} {e.event_id} {e.type} {getattr(e, 'end_reason', '') or '-'}\n" for e in written
        )
        sys.stdout.write(lines)
        sys.stdout.flush()

    node = SimNode(
        args.outbox,
        args.broker,
        store_id=args.store,
        node_id=args.node,
        rate_hz=args.rate,
        heartbeat_s=args.heartbeat_s,
        on_written=record,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    node.start()
    while not stop.wait(0.2):
        if args.status_file is not None:
            tmp = args.status_file.with_suffix(".tmp")
            with contextlib.suppress(OSError):
                tmp.write_text(json.dumps({"failures": node.writer.failures, "held": node.writer.held}))
                tmp.replace(args.status_file)
    node.stop()


class NodeProcess:
    """`node_main` in a child process."""

    def __init__(self, outbox: Path, broker_url: str, *extra: str) -> None:
        self.outbox = outbox
        self.args = [
            sys.executable,
            str(Path(__file__).resolve()),
            "node",
            "--outbox",
            str(outbox),
            "--broker",
            broker_url,
            *extra,
        ]
        self.proc: subprocess.Popen[bytes] | None = None
        self.record: dict[int, tuple[int, str, str, str]] = {}
        """What the node wrote to its outbox, as it said on its standard output (seq -> row)."""

    def start(self) -> NodeProcess:
        logf = self.outbox.with_suffix(".log").open("ab")
        self.proc = subprocess.Popen(
            self.args,
            stdout=subprocess.PIPE,
            stderr=logf,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()
        return self

    def _read(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            seq, event_id, event_type, reason = line.decode().split()
            self.record[int(seq)] = (int(seq), event_id, event_type, "" if reason == "-" else reason)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(20)
            self.proc = None


# ---------------------------------------------------------------------------------------------------
# The aggregator
# ---------------------------------------------------------------------------------------------------


class AggregatorProcess:
    """`showroom aggregator run` (child-process writer, persistent session) in a child process."""

    def __init__(self, db: Path, broker_url: str) -> None:
        self.db = db
        self.broker_url = broker_url
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> AggregatorProcess:
        logf = self.db.with_suffix(".log").open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from showroom.cli import main; main()",
                "aggregator",
                "run",
                "--broker",
                self.broker_url,
                "--db",
                str(self.db),
            ],
            stdout=logf,
            stderr=logf,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            start_new_session=True,
        )
        return self

    def kill(self) -> None:
        """SIGKILL to the whole process group (its writer child too)."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(30)
            self.proc = None


# ---------------------------------------------------------------------------------------------------
# What every fault ends with
# ---------------------------------------------------------------------------------------------------


@dataclass
class Delivery:
    """The aggregator's database against the node's own record (its outbox), by `event_id`."""

    emitted: int
    stored: int
    lost: list[int] = field(default_factory=list)
    """`seq`s the node emitted that the aggregator does not have."""
    visits_emitted: int = 0
    visitors_counted: int = 0
    rollups_equal_recomputation: bool = False
    gaps: list[tuple[int, int, str, str | None]] = field(default_factory=list)
    state: str | None = None
    restart_closed: int = 0

    @property
    def duplicated(self) -> int:
        """Visits counted more than once (a stored duplicate would count twice)."""
        return max(0, self.visitors_counted - self.visits_emitted)

    def line(self) -> str:
        return (
            f"emitted {self.emitted}, stored {self.stored}, lost {len(self.lost)}, duplicated "
            f"{self.duplicated}, visits {self.visits_emitted} counted {self.visitors_counted}, rollups = "
            f"recomputation: {self.rollups_equal_recomputation}, state {self.state}, gaps {self.gaps}"
        )


def node_record(
    outbox_path: Path, extra: dict[int, tuple[int, str, str, str]] | None = None
) -> list[tuple[int, str, str, str]]:
    """(seq, event_id, type, end_reason) of every row the node committed: its outbox (read-only) and
    `extra`, what a node process said it wrote (rows given up to make room on a full disk are there)."""
    with contextlib.closing(sqlite3.connect(f"file:{outbox_path}?mode=ro", uri=True)) as db:
        rows = {
            int(q): (int(q), str(e), str(t), str(r or ""))
            for q, e, t, r in db.execute(
                "SELECT seq, event_id, type, json_extract(payload, '$.end_reason') FROM outbox ORDER BY seq"
            )
        }
    return sorted({**(extra or {}), **rows}.values())


def stored_ids(db_path: Path, store_id: str, node_id: str) -> set[str]:
    with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)) as db:
        return {
            str(r[0])
            for r in db.execute(
                "SELECT event_id FROM events WHERE store_id = ? AND node_id = ?", (store_id, node_id)
            )
        }


def wait_delivered(
    db_path: Path,
    outbox_path: Path,
    store_id: str,
    node_id: str,
    timeout_s: float,
    extra: dict[int, tuple[int, str, str, str]] | None = None,
) -> bool:
    """Wait until the aggregator stored every payload the node committed (or `timeout_s` passes)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        want = {e for _, e, _, _ in node_record(outbox_path, extra)}
        with contextlib.suppress(sqlite3.Error):
            if db_path.exists() and want <= stored_ids(db_path, store_id, node_id):
                return True
        time.sleep(0.25)
    return False


def _rollups(db: sqlite3.Connection, store_id: str) -> list[tuple[object, ...]]:
    rows: list[tuple[object, ...]] = []
    for table in ("daily_store", "hourly_store", "car_daily"):
        rows += [
            (table, *r)
            for r in db.execute(f"SELECT * FROM {table} WHERE store_id = ? ORDER BY 1, 2, 3", (store_id,))
        ]
    return rows


def same_rows(a: list[tuple[object, ...]], b: list[tuple[object, ...]]) -> bool:
    """Equal rows, floats equal to 1e-9 relative (a sum in another order rounds differently)."""

    def same(x: object, y: object) -> bool:
        if isinstance(x, float) and isinstance(y, float):
            return math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9)
        return x == y

    return len(a) == len(b) and all(
        len(r) == len(q) and all(map(same, r, q)) for r, q in zip(a, b, strict=True)
    )


def check_delivery(
    db_path: Path,
    outbox_path: Path,
    store_id: str,
    node_id: str,
    now: datetime | None = None,
    extra: dict[int, tuple[int, str, str, str]] | None = None,
) -> Delivery:
    """Compare (the aggregator must be stopped: the rollups are recomputed in place and compared)."""
    from aggregator.ingest import Ingestor
    from aggregator.queries import Queries
    from aggregator.storage import SqliteStorage

    record = node_record(outbox_path, extra)
    have = stored_ids(db_path, store_id, node_id)
    out = Delivery(len(record), len(have))
    out.lost = [q for q, e, _, _ in record if e not in have]
    out.visits_emitted = sum(1 for _, _, t, _ in record if t == "visit.started")
    out.restart_closed = sum(1 for _, _, t, r in record if t == "visit.ended" and r == "restart")
    storage = SqliteStorage(db_path)
    try:
        ingestor = Ingestor(storage)
        ingestor.refresh_pending()
        conn = storage.conn
        out.visitors_counted = int(
            conn.execute(
                "SELECT coalesce(sum(visitors), 0) FROM daily_store WHERE store_id = ?", (store_id,)
            ).fetchone()[0]
        )
        before = _rollups(conn, store_id)
        ingestor.rebuild(store_id)
        after = _rollups(conn, store_id)
        out.rollups_equal_recomputation = same_rows(before, after) and bool(before)
        if not out.rollups_equal_recomputation:
            log.error("rollups differ from a recomputation: %s", sorted(set(before) ^ set(after))[:6])
        queries = Queries(storage)
        health = [
            n for n in queries.nodes([store_id], now=now, heartbeat_period_s=1.0) if n.node_id == node_id
        ]
        out.state = health[0].state if health else None
        out.gaps = [(g.lo, g.hi, g.state, g.reason) for g in queries.gap_report(store_id, node_id)]
    finally:
        storage.close()
    return out


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "node":
        node_main(sys.argv[2:])
    else:
        sys.exit("usage: faultkit.py node --outbox FILE --broker URL [...]")


class InProcessAggregator:
    """`MqttIngestService` with its writer on its own thread, in this process (quick to start and stop).

    Stopping disconnects cleanly: its persistent session stays on the broker, which queues for it."""

    def __init__(self, db: Path, broker_url: str, *, grace_s: float = 1.0, retry_s: float = 2.0) -> None:
        self.db = db
        self.broker_url = broker_url
        self.grace_s, self.retry_s = grace_s, retry_s
        self.service: object | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    def start(self, timeout_s: float = 20.0) -> InProcessAggregator:
        self._ready.clear()
        self._thread = threading.Thread(target=self._run, name="aggregator", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise TimeoutError("the aggregator did not subscribe")
        return self

    def _run(self) -> None:
        from aggregator.gaps import ReplayScheduler
        from aggregator.ingest import Ingestor
        from aggregator.mqtt import MqttIngestService
        from aggregator.storage import SqliteStorage

        service = MqttIngestService(
            Ingestor(SqliteStorage(self.db), refresh_interval_s=0.5),
            self.broker_url,
            replay=ReplayScheduler(grace_s=self.grace_s, retry_s=self.retry_s),
        )
        self.service = service
        threading.Thread(target=self._wait_subscribed, args=(service,), daemon=True).start()
        service.run(stats_every_s=3600)

    def _wait_subscribed(self, service: object) -> None:
        from aggregator.mqtt import MqttIngestService

        assert isinstance(service, MqttIngestService)
        if service.subscribed.wait(30):
            self._ready.set()

    @property
    def connected(self) -> bool:
        from aggregator.mqtt import MqttIngestService

        return isinstance(self.service, MqttIngestService) and self.service.subscribed.is_set()

    def stop(self) -> None:
        from aggregator.mqtt import MqttIngestService

        if isinstance(self.service, MqttIngestService):
            self.service.stop()
        if self._thread is not None:
            self._thread.join(30)
        self.service, self._thread = None, None
