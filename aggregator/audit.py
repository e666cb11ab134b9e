"""Door-count accuracy audits: a person counts a recorded sample, the product compares.

An audit names a store and a time window; the auditor counts the people who came in through the door in
that window (and, optionally, went out) from the recording kept at the store. `record_audit` puts the
system's own counts for the same window beside them (visits started, visits ended through a door) and keeps
both. Accuracy is `1 - |system - manual| / manual`, per direction and over both together, the figure
vendors in this field quote; a store's last audit says how far its counts can be trusted, and an audit
older than the brand's policy (`STALE_AFTER` by default) is reported as stale.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import ClassVar

from aggregator.storage.base import Row, StorageBackend
from aggregator.storage.records import AuditRecord
from aggregator.timebuckets import parse_ts_key, ts_key

STALE_AFTER = timedelta(days=90)
"""How old a store's last audit may be before the dashboard asks for a new one (quarterly)."""

MAX_WINDOW = timedelta(hours=24)


class AuditError(ValueError):
    """An audit that cannot be recorded; the message names the field and the value."""


@dataclass(frozen=True)
class Audit:
    audit_id: int
    store_id: str
    start: datetime
    end: datetime
    manual_in: int
    system_in: int
    manual_out: int | None
    system_out: int | None
    auditor: str
    note: str
    recorded_at: datetime

    json_properties: ClassVar[tuple[str, ...]] = ("accuracy_in", "accuracy_out", "accuracy")
    """Derived figures that JSON output carries beside the fields (`aggregator.serialize.jsonable`)."""

    def is_stale(self, now: datetime, stale_after: timedelta = STALE_AFTER) -> bool:
        """Whether the audited sample ended more than `stale_after` before `now`."""
        return now - self.end > stale_after

    @property
    def accuracy_in(self) -> float | None:
        return _accuracy(self.system_in, self.manual_in)

    @property
    def accuracy_out(self) -> float | None:
        if self.manual_out is None or self.system_out is None:
            return None
        return _accuracy(self.system_out, self.manual_out)

    @property
    def accuracy(self) -> float | None:
        """Over both directions when the way out was counted too, else over the way in."""
        if self.manual_out is None or self.system_out is None:
            return self.accuracy_in
        manual = self.manual_in + self.manual_out
        if manual == 0:
            return None
        error = abs(self.system_in - self.manual_in) + abs(self.system_out - self.manual_out)
        return max(0.0, 1.0 - error / manual)


def _accuracy(system: int, manual: int) -> float | None:
    if manual == 0:
        return None  # no base: an empty sample says nothing about accuracy
    return max(0.0, 1.0 - abs(system - manual) / manual)


def _aware(name: str, value: datetime) -> datetime:
    if value.tzinfo is None:
        raise AuditError(f"{name} {value.isoformat()} has no time zone")
    return value.astimezone(UTC)


def record_audit(
    storage: StorageBackend,
    store_id: str,
    start: datetime,
    end: datetime,
    manual_in: int,
    manual_out: int | None = None,
    *,
    auditor: str,
    note: str = "",
    now: datetime | None = None,
) -> Audit:
    """Compare a manual count of [start, end) at `store_id` with the system's and keep both.

    Raises:
        AuditError: unknown store, a time without a time zone, an empty, over-long or future window, a
            negative count, or no auditor named.
    """
    now = _aware("now", now or datetime.now(UTC))
    start, end = _aware("start", start), _aware("end", end)
    if end <= start:
        raise AuditError(f"end {end.isoformat()} is not after start {start.isoformat()}")
    if end - start > MAX_WINDOW:
        raise AuditError(f"window {end - start} is longer than {MAX_WINDOW}: audit a sample of at most a day")
    if end > now:
        raise AuditError(f"end {end.isoformat()} is in the future: audit a window that has been recorded")
    for name, value in (("manual_in", manual_in), ("manual_out", manual_out)):
        if value is not None and value < 0:
            raise AuditError(f"{name} must be >= 0, got {value}")
    if not auditor.strip():
        raise AuditError("auditor must name who counted the sample")
    known = {r.store_id for r in storage.store_rows()} | set(storage.store_ids_with_data())
    if store_id not in known:
        raise AuditError(f"store {store_id!r} is neither registered nor has sent any data")
    system_in, system_out = storage.door_counts(store_id, ts_key(start), ts_key(end))
    row = AuditRecord(
        store_id=store_id,
        start_ts=ts_key(start),
        end_ts=ts_key(end),
        manual_in=manual_in,
        system_in=system_in,
        manual_out=manual_out,
        system_out=None if manual_out is None else system_out,
        auditor=auditor.strip(),
        note=note,
        recorded_at=ts_key(now),
    )
    with storage.transaction():
        audit_id = storage.insert_audit(row)
    return audit_of((audit_id, *row))


def audit_of(r: Row) -> Audit:
    """An `audits` row (as `StorageBackend.audit_rows` returns it) as an `Audit`."""
    return Audit(
        int(r[0]),
        str(r[1]),
        parse_ts_key(str(r[2])),
        parse_ts_key(str(r[3])),
        int(r[4]),
        int(r[5]),
        None if r[6] is None else int(r[6]),
        None if r[7] is None else int(r[7]),
        str(r[8]),
        str(r[9]),
        parse_ts_key(str(r[10])),
    )
