"""The durable outbox: every payload is written here before any network send.

One SQLite file in WAL mode with `synchronous=FULL`, so a committed row survives a crash or a power cut.
Rows are deleted only when the broker acknowledged them (MQTT PUBACK). The next `seq` is stored in the same
transaction as the row that used it, so numbering continues across restarts without gaps or repeats.

Disk budget. The outbox counts each row as its payload bytes plus `ROW_OVERHEAD_BYTES`. When a new row
takes the total over `max_bytes`, rows are evicted by the policy below until it fits, each eviction is
counted per type (persisted, reported in the heartbeat as `outbox_evicted`) and logged:

    1. heat (the oldest first)          -- a lost minute of heat costs the least
    2. heartbeats (oldest first)        -- health history, superseded by newer ones
    3. zone.dwell, car.entry, reception (oldest first)
    4. visit.started, visit.ended (oldest first) -- the footfall count itself goes last
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from edge.events import KIND_OF_TYPE, Envelope, to_json, topic_for

log = logging.getLogger(__name__)

ROW_OVERHEAD_BYTES = 128
"""Bytes counted per row on top of its payload (ids, topic, index entries), for the disk budget."""

EVICTION_PRIORITY: dict[str, int] = {
    "heat": 0,
    "heartbeat": 1,
    "zone.dwell": 2,
    "car.entry": 2,
    "reception": 2,
    "visit.started": 3,
    "visit.ended": 3,
}
"""Lower goes first when the disk budget is reached."""

_SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    priority INTEGER NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    stored_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_eviction ON outbox (priority, seq);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class OutboxError(RuntimeError):
    """The outbox cannot take a payload (wrong numbering, unknown type) or its file is unusable."""


@dataclass(frozen=True)
class OutboxRow:
    """One stored payload, ready to publish: `payload` is the exact wire bytes."""

    seq: int
    event_id: str
    type: str
    topic: str
    payload: bytes
    stored_at: float


@dataclass(frozen=True)
class OutboxStats:
    depth: int
    stored_bytes: int
    max_bytes: int
    oldest_stored_at: float | None
    evicted_by_type: dict[str, int] = field(default_factory=dict)

    @property
    def evicted_total(self) -> int:
        return sum(self.evicted_by_type.values())


class Outbox:
    """Durable FIFO of contract payloads keyed by `seq`; safe to use from several threads.

    Args:
        path: SQLite file (created with its folder when missing).
        max_bytes: disk budget, see the module docstring for what is counted and what is evicted.
        clock: wall clock in Unix seconds (for `stored_at` and unsent ages).
    """

    def __init__(self, path: str | Path, max_bytes: int, *, clock: Callable[[], float] = time.time) -> None:
        if max_bytes <= ROW_OVERHEAD_BYTES:
            raise OutboxError(f"max_bytes must exceed {ROW_OVERHEAD_BYTES}, got {max_bytes}")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self._clock = clock
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise OutboxError(f"outbox {self.path} is not usable: {exc}") from exc
        self._stored_bytes = self._count_bytes()
        self._closed = False

    # ------------------------------------------------------------------------------------------------
    # Schema and metadata
    # ------------------------------------------------------------------------------------------------

    def _migrate(self) -> None:
        (version,) = self._db.execute("PRAGMA user_version").fetchone()
        if version > _SCHEMA_VERSION:
            raise OutboxError(f"outbox {self.path} has schema {version}, newer than this software's")
        self._db.executescript(_SCHEMA)
        self._db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")

    def _meta(self, key: str, default: int = 0) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else default

    def _set_meta(self, key: str, value: int) -> None:
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def _count_bytes(self) -> int:
        (total,) = self._db.execute(
            "SELECT COALESCE(SUM(length(payload)), 0) + COUNT(*) * ? FROM outbox", (ROW_OVERHEAD_BYTES,)
        ).fetchone()
        return int(total)

    # ------------------------------------------------------------------------------------------------
    # Writing
    # ------------------------------------------------------------------------------------------------

    @property
    def next_seq(self) -> int:
        """The `seq` the next payload must carry: one more than the last ever stored, across restarts."""
        with self._lock:
            return self._next_seq_locked()

    def _next_seq_locked(self) -> int:
        (top,) = self._db.execute("SELECT MAX(seq) FROM outbox").fetchone()
        return max(self._meta("next_seq"), (top + 1) if top is not None else 0)

    def append(self, event: Envelope) -> None:
        """Store one payload durably (committed and synced before this returns)."""
        self.extend([event])

    def extend(self, events: Iterable[Envelope]) -> None:
        """Store several payloads in one transaction, in `seq` order."""
        rows = [self._row_of(event) for event in events]
        if not rows:
            return
        with self._lock:
            self._check_open()
            expected = self._next_seq_locked()
            for row in rows:
                if row[0] < expected:
                    raise OutboxError(
                        f"seq {row[0]} of {row[2]} {row[1]} is below the outbox's next seq {expected}; "
                        "the stamper must start from Outbox.next_seq"
                    )
                expected = row[0] + 1
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany(
                    "INSERT INTO outbox (seq, event_id, type, priority, topic, payload, stored_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
                self._set_meta("next_seq", expected)
                added = sum(len(row[5]) + ROW_OVERHEAD_BYTES for row in rows)
                evicted = self._evict_locked(self._stored_bytes + added)
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._db.execute("ROLLBACK")
                raise OutboxError(f"outbox {self.path}: cannot store {len(rows)} payload(s): {exc}") from exc
            self._stored_bytes = self._stored_bytes + added - evicted

    def _row_of(self, event: Envelope) -> tuple[int, str, str, int, str, bytes, float]:
        event_type = event.type
        if event_type not in KIND_OF_TYPE or event_type == "status":
            raise OutboxError(f"payload type {event_type!r} does not go through the outbox")
        return (
            event.seq,
            event.event_id,
            event_type,
            EVICTION_PRIORITY[event_type],
            topic_for(event),
            to_json(event),
            self._clock(),
        )

    def _evict_locked(self, total_bytes: int) -> int:
        """Delete rows by the eviction policy until `total_bytes` fits the budget; bytes freed."""
        freed = 0
        counts: dict[str, int] = {}
        while total_bytes - freed > self.max_bytes:
            victim = self._db.execute(
                "SELECT seq, type, length(payload) FROM outbox ORDER BY priority, seq LIMIT 1"
            ).fetchone()
            if victim is None:
                break
            seq, event_type, size = victim
            self._db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))
            freed += int(size) + ROW_OVERHEAD_BYTES
            counts[event_type] = counts.get(event_type, 0) + 1
        for event_type, n in counts.items():
            key = f"evicted.{event_type}"
            self._set_meta(key, self._meta(key) + n)
        if counts:
            log.warning(
                "outbox %s over its %d-byte budget: evicted %s (policy: heat, heartbeat, zone/car/reception, "
                "visits last)",
                self.path,
                self.max_bytes,
                ", ".join(f"{n} {t}" for t, n in sorted(counts.items())),
            )
        return freed

    # ------------------------------------------------------------------------------------------------
    # Reading and acknowledging
    # ------------------------------------------------------------------------------------------------

    def pending(self, limit: int = 100, exclude: Iterable[int] = ()) -> list[OutboxRow]:
        """The oldest unsent payloads in `seq` order, skipping the `seq`s in `exclude` (in flight)."""
        skip = set(exclude)
        with self._lock:
            self._check_open()
            cursor = self._db.execute(
                "SELECT seq, event_id, type, topic, payload, stored_at FROM outbox ORDER BY seq"
            )
            rows: list[OutboxRow] = []
            for seq, event_id, event_type, topic, payload, stored_at in cursor:
                if seq in skip:
                    continue
                rows.append(OutboxRow(seq, event_id, event_type, topic, bytes(payload), stored_at))
                if len(rows) >= limit:
                    break
            cursor.close()
            return rows

    def ack(self, seq: int) -> bool:
        """The broker acknowledged `seq`: delete it. False when it was not stored (already acked/evicted)."""
        with self._lock:
            self._check_open()
            row = self._db.execute("SELECT length(payload) FROM outbox WHERE seq = ?", (seq,)).fetchone()
            if row is None:
                return False
            self._db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))
            self._stored_bytes -= int(row[0]) + ROW_OVERHEAD_BYTES
            return True

    def depth(self) -> int:
        with self._lock:
            self._check_open()
            (n,) = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()
            return int(n)

    def oldest_unsent_age_s(self) -> float | None:
        """Seconds since the oldest unsent payload was stored; None when the outbox is empty."""
        stats = self.stats()
        if stats.oldest_stored_at is None:
            return None
        return max(0.0, self._clock() - stats.oldest_stored_at)

    def stats(self) -> OutboxStats:
        with self._lock:
            self._check_open()
            depth, oldest = self._db.execute("SELECT COUNT(*), MIN(stored_at) FROM outbox").fetchone()
            evicted = {
                str(key).removeprefix("evicted."): int(value)
                for key, value in self._db.execute("SELECT key, value FROM meta WHERE key LIKE 'evicted.%'")
            }
            return OutboxStats(int(depth), self._stored_bytes, self.max_bytes, oldest, evicted)

    # ------------------------------------------------------------------------------------------------
    # Life cycle
    # ------------------------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise OutboxError(f"outbox {self.path} is closed")

    def close(self) -> None:
        """Checkpoint the WAL into the main file and close; later calls raise `OutboxError`."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                self._db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
