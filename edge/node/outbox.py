"""The durable outbox: every payload is written here before any network send.

One SQLite file in WAL mode with `synchronous=FULL`, so a committed row survives a crash or a power cut.
A row leaves the unsent queue only when the broker acknowledged it (MQTT PUBACK). The next `seq` is stored
in the same transaction as the row that used it, so numbering continues across restarts without gaps or
repeats.

History. An acknowledged row is kept, marked sent, for `history_s` seconds (the node's `history_days`), so
that the aggregator can ask for a range of `seq` again (`replay`) when a broker lost what it had
acknowledged (a restart without persistence, a failed disk). `history_s=0` deletes on acknowledgement.
The history is pruned by age and, before any unsent row, by the disk budget.

Disk budget. The outbox counts each row as its payload bytes plus `ROW_OVERHEAD_BYTES`. When a new row
takes the total over `max_bytes`, sent rows (history) go first, oldest first; then unsent rows are evicted
by the policy below until it fits, each such eviction counted per type (persisted, reported in the
heartbeat as `outbox_evicted`) and logged:

    1. heat (the oldest first)          -- a lost minute of heat costs the least
    2. heartbeats (oldest first)        -- health history, superseded by newer ones
    3. zone.dwell, car.entry, reception (oldest first)
    4. visit.started, visit.ended (oldest first) -- the footfall count itself goes last

Open visits. The outbox also keeps which visits are open (a `visit.started` without its `visit.ended`),
written in the same transaction as the event, so a node that crashed can close them when it restarts.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from edge.events import KIND_OF_TYPE, Envelope, VisitEnded, VisitStarted, format_ts, to_json, topic_for

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

_SCHEMA_VERSION = 2
_SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    priority INTEGER NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    stored_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""
_SCHEMA_V2 = """
ALTER TABLE outbox ADD COLUMN sent_at REAL;
DROP INDEX IF EXISTS outbox_eviction;
CREATE INDEX outbox_unsent ON outbox (priority, seq) WHERE sent_at IS NULL;
CREATE INDEX outbox_unsent_seq ON outbox (seq) WHERE sent_at IS NULL;
CREATE INDEX outbox_sent ON outbox (sent_at) WHERE sent_at IS NOT NULL;
CREATE TABLE open_visits (
    visitor_id TEXT PRIMARY KEY, door_id TEXT NOT NULL, started_at TEXT NOT NULL, seq INTEGER NOT NULL
);
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
    """Unsent rows."""
    stored_bytes: int
    max_bytes: int
    oldest_stored_at: float | None
    """When the oldest unsent row was stored (Unix s); None when nothing is unsent."""
    evicted_by_type: dict[str, int] = field(default_factory=dict)
    history_rows: int = 0
    """Sent rows kept for replay."""
    write_failures: int = 0
    """Writes that failed (a full disk): their payloads were kept in memory, see `Outbox.extend`."""

    @property
    def evicted_total(self) -> int:
        return sum(self.evicted_by_type.values())


HISTORY_PRUNE_EVERY_S = 10.0
"""How often (at most) the history is pruned by age."""


@dataclass(frozen=True)
class Unavailable:
    """A `seq` range the outbox cannot replay, and why."""

    lo: int
    hi: int
    reason: str


@dataclass(frozen=True)
class Replay:
    """What `Outbox.replay` found for a range: the stored rows (sent or not) and what is not there."""

    rows: list[OutboxRow]
    unavailable: list[Unavailable]


@dataclass(frozen=True)
class OpenVisit:
    """A visit whose start was stored and whose end was not: (visitor, door, start time in RFC 3339)."""

    visitor_id: str
    door_id: str
    started_at: str
    seq: int


class Outbox:
    """Durable FIFO of contract payloads keyed by `seq`; safe to use from several threads.

    Args:
        path: SQLite file (created with its folder when missing).
        max_bytes: disk budget, see the module docstring for what is counted and what is evicted.
        history_s: how long acknowledged rows are kept for replay (0: deleted on acknowledgement).
        clock: wall clock in Unix seconds (for `stored_at` and unsent ages).
    """

    def __init__(
        self,
        path: str | Path,
        max_bytes: int,
        *,
        history_s: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_bytes <= ROW_OVERHEAD_BYTES:
            raise OutboxError(f"max_bytes must exceed {ROW_OVERHEAD_BYTES}, got {max_bytes}")
        if history_s < 0:
            raise OutboxError(f"history_s must be 0 or more, got {history_s}")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.history_s = history_s
        self._clock = clock
        self._last_prune = 0.0
        self._write_failures = 0
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
        if version < 1:
            self._db.executescript(_SCHEMA_V1)
        if version < 2:
            self._db.executescript("BEGIN;" + _SCHEMA_V2 + f"PRAGMA user_version={_SCHEMA_VERSION}; COMMIT;")

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
        """Store several payloads in one transaction, in `seq` order.

        `OutboxError` when they cannot be stored (a full disk among others): nothing of them is stored and
        the caller keeps them to try again (`NodeRuntime` does, and reports the failures)."""
        events_list = list(events)
        rows = [self._row_of(event) for event in events_list]
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
                self._track_visits_locked(events_list)
                added = sum(len(row[5]) + ROW_OVERHEAD_BYTES for row in rows)
                evicted = self._prune_history_locked() + self._evict_locked(self._stored_bytes + added)
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                self._write_failures += 1
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

    def _track_visits_locked(self, events: list[Envelope]) -> None:
        """Record visits opened and forget visits closed by `events` (same transaction as the rows)."""
        for event in events:
            if isinstance(event, VisitStarted):
                self._db.execute(
                    "INSERT OR REPLACE INTO open_visits VALUES (?, ?, ?, ?)",
                    (event.visitor_id, event.door_id, format_ts(event.ts), event.seq),
                )
            elif isinstance(event, VisitEnded):
                self._db.execute("DELETE FROM open_visits WHERE visitor_id = ?", (event.visitor_id,))

    def _prune_history_locked(self, *, force: bool = False) -> int:
        """Delete sent rows older than `history_s` (at most every `HISTORY_PRUNE_EVERY_S`); bytes freed."""
        now = self._clock()
        if not force and now - self._last_prune < HISTORY_PRUNE_EVERY_S:
            return 0
        self._last_prune = now
        (freed,) = self._db.execute(
            "SELECT COALESCE(SUM(length(payload)), 0) + COUNT(*) * ? FROM outbox "
            "WHERE sent_at IS NOT NULL AND sent_at < ?",
            (ROW_OVERHEAD_BYTES, now - self.history_s),
        ).fetchone()
        if freed:
            self._db.execute(
                "DELETE FROM outbox WHERE sent_at IS NOT NULL AND sent_at < ?", (now - self.history_s,)
            )
        return int(freed)

    def _evict_locked(self, total_bytes: int) -> int:
        """Delete rows until `total_bytes` fits the budget: sent rows (history) first, oldest first, then
        unsent rows by the eviction policy; bytes freed."""
        freed = 0
        counts: dict[str, int] = {}
        while total_bytes - freed > self.max_bytes:
            sent = self._db.execute(
                "SELECT seq, length(payload) FROM outbox WHERE sent_at IS NOT NULL ORDER BY sent_at, seq "
                "LIMIT 256"
            ).fetchall()
            for seq, size in sent:
                if total_bytes - freed <= self.max_bytes:
                    break
                self._db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))
                freed += int(size) + ROW_OVERHEAD_BYTES
            if sent:
                continue
            victim = self._db.execute(
                "SELECT seq, type, length(payload) FROM outbox WHERE sent_at IS NULL ORDER BY priority, seq "
                "LIMIT 1"
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
                "SELECT seq, event_id, type, topic, payload, stored_at FROM outbox WHERE sent_at IS NULL "
                "ORDER BY seq"
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
        """The broker acknowledged `seq`: it leaves the unsent queue (kept as history for `history_s`, or
        deleted). False when it was not waiting (already acknowledged, or evicted)."""
        with self._lock:
            self._check_open()
            row = self._db.execute(
                "SELECT length(payload) FROM outbox WHERE seq = ? AND sent_at IS NULL", (seq,)
            ).fetchone()
            if row is None:
                return False
            if self.history_s > 0:
                self._db.execute("UPDATE outbox SET sent_at = ? WHERE seq = ?", (self._clock(), seq))
            else:
                self._db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))
                self._stored_bytes -= int(row[0]) + ROW_OVERHEAD_BYTES
            return True

    def depth(self) -> int:
        """Unsent rows."""
        with self._lock:
            self._check_open()
            (n,) = self._db.execute("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL").fetchone()
            return int(n)

    def replay(self, lo: int, hi: int, limit: int = 10_000) -> Replay:
        """The stored rows with `lo <= seq <= hi` (sent or not, at most `limit`), and the parts of the range
        the outbox cannot give, each with its reason: below the oldest row kept ("outside node history"),
        not numbered yet ("beyond the node's last seq"), a hole inside the history ("evicted by the
        node's disk budget"). Past `limit` rows the rest of the range is neither sent nor listed."""
        if lo < 0 or hi < lo:
            raise OutboxError(f"replay range must have 0 <= lo <= hi, got {lo}..{hi}")
        with self._lock:
            self._check_open()
            (oldest,) = self._db.execute("SELECT MIN(seq) FROM outbox").fetchone()
            next_seq = self._next_seq_locked()
            cursor = self._db.execute(
                "SELECT seq, event_id, type, topic, payload, stored_at FROM outbox "
                "WHERE seq BETWEEN ? AND ? ORDER BY seq LIMIT ?",
                (lo, hi, limit),
            )
            rows = [OutboxRow(q, e, t, tp, bytes(p), at) for q, e, t, tp, p, at in cursor]
        unavailable: list[Unavailable] = []
        # Past `limit` rows nothing is said: the rest of the range stays open and is asked for again.
        last_end = hi if len(rows) < limit else rows[-1].seq
        history_lo = oldest if oldest is not None else next_seq
        expected = lo
        for seq in [r.seq for r in rows] + [last_end + 1]:
            if seq > expected:
                unavailable.extend(_why_missing(expected, seq - 1, history_lo, next_seq))
            expected = seq + 1
        return Replay(rows, sorted(unavailable, key=lambda u: u.lo))

    def drop_history(self) -> int:
        """Delete every sent row (to make room on a full disk); how many."""
        with self._lock:
            self._check_open()
            try:
                cursor = self._db.execute("DELETE FROM outbox WHERE sent_at IS NOT NULL")
            except sqlite3.Error as exc:
                log.error("outbox %s: cannot give up its history: %s", self.path, exc)
                return 0
            self._stored_bytes = self._count_bytes()
            return cursor.rowcount

    def open_visits(self) -> list[OpenVisit]:
        """Visits started and not ended, oldest first (what a crash left open)."""
        with self._lock:
            self._check_open()
            return [
                OpenVisit(str(v), str(d), str(t), int(q))
                for v, d, t, q in self._db.execute(
                    "SELECT visitor_id, door_id, started_at, seq FROM open_visits ORDER BY seq"
                )
            ]

    def last_event_ts(self) -> str | None:
        """The `ts` of the newest stored row (RFC 3339), from its payload; None when empty."""
        with self._lock:
            self._check_open()
            row = self._db.execute(
                "SELECT json_extract(payload, '$.ts') FROM outbox ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            return None if row is None else str(row[0])

    def oldest_unsent_age_s(self) -> float | None:
        """Seconds since the oldest unsent payload was stored; None when the outbox is empty."""
        stats = self.stats()
        if stats.oldest_stored_at is None:
            return None
        return max(0.0, self._clock() - stats.oldest_stored_at)

    def stats(self) -> OutboxStats:
        with self._lock:
            self._check_open()
            depth, oldest = self._db.execute(
                "SELECT COUNT(*), MIN(stored_at) FROM outbox WHERE sent_at IS NULL"
            ).fetchone()
            (history,) = self._db.execute("SELECT COUNT(*) FROM outbox WHERE sent_at IS NOT NULL").fetchone()
            evicted = {
                str(key).removeprefix("evicted."): int(value)
                for key, value in self._db.execute("SELECT key, value FROM meta WHERE key LIKE 'evicted.%'")
            }
            return OutboxStats(
                int(depth),
                self._stored_bytes,
                self.max_bytes,
                oldest,
                evicted,
                int(history),
                self._write_failures,
            )

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


def _why_missing(lo: int, hi: int, history_lo: int, next_seq: int) -> list[Unavailable]:
    """Split a missing range by its reason (see `Outbox.replay`)."""
    out: list[Unavailable] = []
    if lo < history_lo:
        out.append(Unavailable(lo, min(hi, history_lo - 1), "outside node history"))
        lo = history_lo
    if lo <= hi and hi >= next_seq:
        out.append(Unavailable(max(lo, next_seq), hi, "beyond the node's last seq"))
        hi = next_seq - 1
    if lo <= hi:
        out.append(Unavailable(lo, hi, "evicted by the node's disk budget"))
    return out
