"""Ingest: validate contract payloads, store them once, quarantine the rest, keep rollups current.

`Ingestor.ingest(messages)` takes a batch of (topic, payload bytes, received time) and applies it in one
transaction: every payload is either stored (once: a known `event_id` is a duplicate and changes nothing)
or quarantined with its reason. Rollups are refreshed for exactly the store-days and hours the batch
touched, recomputed from the stored facts, so late and out-of-order events land in their own local day
and hour and the result never depends on arrival order.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from aggregator import histogram
from aggregator.registry import Registry
from aggregator.storage import SqliteStorage
from aggregator.timebuckets import hour_key, hour_start_utc, local_day, zone
from edge.events import (
    MAX_PAYLOAD_BYTES,
    SCHEMA_V1,
    CarEntry,
    ContractError,
    Envelope,
    Heartbeat,
    Heat,
    Reception,
    Status,
    VisitEnded,
    VisitStarted,
    ZoneDwell,
    check_topic_matches,
    format_ts,
    parse_event,
    parse_topic,
)

log = logging.getLogger(__name__)

QUARANTINE_HEAD_BYTES = 4096
"""How much of a rejected payload is kept (the rest is counted, not stored)."""


@dataclass(frozen=True)
class Message:
    """One received payload: the topic it came on, its bytes, when it arrived, and from where."""

    topic: str
    payload: bytes
    received_at: datetime
    source: str = "mqtt"


@dataclass
class BatchResult:
    stored: int = 0
    duplicates: int = 0
    quarantined: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def add(self, other: BatchResult) -> None:
        self.stored += other.stored
        self.duplicates += other.duplicates
        self.quarantined += other.quarantined
        for k, v in other.reasons.items():
            self.reasons[k] = self.reasons.get(k, 0) + v


class RejectedError(Exception):
    """A payload that goes to quarantine; `code` is a short category, the message says why."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def validate(topic: str, payload: bytes) -> Envelope:
    """The contract event in `payload`, checked against its topic; `RejectedError` says why not."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise RejectedError(
            "oversize", f"payload is {len(payload)} bytes, over the {MAX_PAYLOAD_BYTES}-byte limit"
        )
    try:
        parse_topic(topic)
    except ContractError as exc:
        raise RejectedError("bad_topic", str(exc)) from exc
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RejectedError("not_utf8", f"payload is not UTF-8: {exc}") from exc
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise RejectedError("not_json", f"payload is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise RejectedError("not_json", f"payload must be a JSON object, got {type(data).__name__}")
    if data.get("schema") != SCHEMA_V1:
        raise RejectedError(
            "schema", f"schema: unknown schema version {data.get('schema')!r}, expected {SCHEMA_V1!r}"
        )
    try:
        event = parse_event(text)
    except ContractError as exc:
        raise RejectedError("invalid", str(exc)) from exc
    try:
        check_topic_matches(topic, event)
    except ContractError as exc:
        raise RejectedError("topic_mismatch", str(exc)) from exc
    return event


@dataclass(frozen=True)
class _StoreSettings:
    tz: ZoneInfo
    browse_min_s: float


class Ingestor:
    """Writes validated events into a storage backend and keeps the rollups current."""

    def __init__(self, storage: SqliteStorage) -> None:
        self.storage = storage
        self.totals = BatchResult()
        self._settings: dict[str, _StoreSettings] = {}
        self._load_settings()

    # -- registry -------------------------------------------------------------------------------------

    def _load_settings(self) -> None:
        self._settings = {
            str(r[0]): _StoreSettings(zone(str(r[4])), float(r[7])) for r in self.storage.store_rows()
        }

    def settings(self, store_id: str) -> _StoreSettings:
        found = self._settings.get(store_id)
        if found is None:
            # A store not (yet) in the registry is bucketed in UTC; loading it later rebuilds its rollups.
            found = _StoreSettings(zone("UTC"), 10.0)
            self._settings[store_id] = found
            log.warning("store %s is not in the registry: bucketing its events in UTC", store_id)
        return found

    def load_registry(self, registry: Registry) -> list[str]:
        """Write brands and stores; rebuild the rollups of stores whose time zone or threshold changed.
        Returns the ids of rebuilt stores."""
        before = {str(r[0]): (str(r[4]), float(r[7])) for r in self.storage.store_rows()}
        with self.storage.transaction():
            for b in registry.brands:
                self.storage.write_brand(b.id, b.name, {str(k): v for k, v in b.weights().items()})
            for s in registry.stores:
                cars = [c.model_dump(mode="json") for c in s.cars]
                w, h = s.floor_size_m if s.floor_size_m else (None, None)
                self.storage.write_store(
                    (
                        s.store_id,
                        s.name,
                        s.brand,
                        s.region,
                        s.timezone,
                        w,
                        h,
                        s.browse_min_s,
                        json.dumps(cars),
                    )
                )
        self._load_settings()
        with_data = set(self.storage.store_ids_with_data())
        rebuilt = []
        for s in registry.stores:
            old = before.get(s.store_id, ("UTC", 10.0))
            if s.store_id in with_data and old != (s.timezone, s.browse_min_s):
                self.rebuild(s.store_id)
                rebuilt.append(s.store_id)
        return rebuilt

    def rebuild(self, store_id: str) -> None:
        """Recompute every rollup of a store from its stored raw events."""
        with self.storage.transaction():
            self.storage.delete_derived(store_id)
            batch = _Batch()
            for _event_id, _type, payload, received_at in list(self.storage.raw_events(store_id)):
                event = parse_event(payload)
                self._apply(event, batch)
                batch.touch_node(event, str(received_at))
            self._flush(batch, seq=False)

    # -- ingest ---------------------------------------------------------------------------------------

    def ingest(self, messages: Sequence[Message]) -> BatchResult:
        """Validate, store and roll up one batch in one transaction."""
        result = BatchResult()
        batch = _Batch()
        quarantine: list[tuple[object, ...]] = []
        with self.storage.transaction():
            for msg in messages:
                received = format_ts(msg.received_at)
                try:
                    event = validate(msg.topic, msg.payload)
                except RejectedError as rej:
                    quarantine.append(
                        (
                            received,
                            msg.source,
                            msg.topic[:1024],
                            rej.code,
                            rej.reason[:2000],
                            len(msg.payload),
                            bytes(msg.payload[:QUARANTINE_HEAD_BYTES]),
                        )
                    )
                    result.quarantined += 1
                    result.reasons[rej.code] = result.reasons.get(rej.code, 0) + 1
                    continue
                row = (
                    event.event_id,
                    event.store_id,
                    event.node_id,
                    event.seq,
                    getattr(event, "type", "?"),
                    format_ts(event.ts),
                    received,
                    msg.payload.decode("utf-8"),
                )
                if not self.storage.insert_event(row):
                    result.duplicates += 1
                    continue
                result.stored += 1
                self._apply(event, batch)
                batch.touch_node(event, received)
            if quarantine:
                self.storage.insert_quarantine(quarantine)
            self._flush(batch, seq=True)
            counts = {
                "stored": result.stored,
                "duplicates": result.duplicates,
                "quarantined": result.quarantined,
            }
            counts.update({f"quarantined.{k}": v for k, v in result.reasons.items()})
            self.storage.add_counters(counts)
        self.totals.add(result)
        for code, n in result.reasons.items():
            log.warning("quarantined %d payload(s): %s", n, code)
        return result

    def ingest_safe(self, messages: Sequence[Message]) -> BatchResult:
        """`ingest`, but never raises: if a batch fails (a storage error, a bug), its messages are retried
        one by one and any that still fail are quarantined with the error, so nothing is lost silently."""
        try:
            return self.ingest(messages)
        except Exception:
            log.exception("batch of %d failed; retrying one by one", len(messages))
        result = BatchResult()
        for msg in messages:
            try:
                result.add(self.ingest([msg]))
            except Exception as exc:
                log.exception("payload on %r failed; quarantining it", msg.topic)
                with self.storage.transaction():
                    self.storage.insert_quarantine(
                        [
                            (
                                format_ts(msg.received_at),
                                msg.source,
                                msg.topic[:1024],
                                "internal",
                                f"{type(exc).__name__}: {exc}"[:2000],
                                len(msg.payload),
                                bytes(msg.payload[:QUARANTINE_HEAD_BYTES]),
                            )
                        ]
                    )
                    self.storage.add_counters({"quarantined": 1, "quarantined.internal": 1})
                result.quarantined += 1
                result.reasons["internal"] = result.reasons.get("internal", 0) + 1
        return result

    def ingest_lines(self, lines: Iterable[str | bytes], source: str, batch_size: int = 2000) -> BatchResult:
        """Backfill from JSON lines: `{"topic": ..., "payload": {...}}` or a bare payload (topic derived)."""
        total = BatchResult()
        pending: list[Message] = []
        now = datetime.now(UTC)
        for number, line in enumerate(lines, start=1):
            raw = line.encode("utf-8") if isinstance(line, str) else line
            if not raw.strip():
                continue
            pending.append(_message_of_line(raw, now, f"{source}:{number}"))
            if len(pending) >= batch_size:
                total.add(self.ingest_safe(pending))
                pending = []
        if pending:
            total.add(self.ingest_safe(pending))
        return total

    # -- applying one event ---------------------------------------------------------------------------

    def _apply(self, event: Envelope, batch: _Batch) -> None:
        st = self.storage
        s = self.settings(event.store_id)
        store = event.store_id
        if isinstance(event, VisitStarted):
            old_day = st.visit_day(store, event.visitor_id)
            day = local_day(event.ts, s.tz).isoformat()
            st.upsert_visit_start(
                store,
                event.visitor_id,
                event.node_id,
                format_ts(event.ts),
                event.door_id,
                day,
                hour_key(event.ts, s.tz),
            )
            batch.dirty_days.update({(store, day), (store, old_day)} if old_day else {(store, day)})
        elif isinstance(event, VisitEnded):
            old_day = st.visit_day(store, event.visitor_id)
            day = local_day(event.started_at, s.tz).isoformat()
            st.upsert_visit_end(
                store,
                event.visitor_id,
                event.node_id,
                started_at=format_ts(event.started_at),
                ended_at=format_ts(event.ts),
                duration_s=event.duration_s,
                door_id=event.door_id,
                end_reason=event.end_reason,
                browsed=event.browsed,
                entered_car=event.entered_car,
                received=event.received,
                day=day,
                hour_key=hour_key(event.started_at, s.tz),
            )
            batch.dirty_days.add((store, old_day or day))
        elif isinstance(event, ZoneDwell):
            day = local_day(event.entered_at, s.tz).isoformat()
            total = st.insert_dwell(
                (
                    event.event_id,
                    store,
                    event.visitor_id,
                    event.zone_id,
                    format_ts(event.entered_at),
                    format_ts(event.exited_at),
                    event.dwell_s,
                    day,
                )
            )
            batch.dirty_days.add((store, day))
            if total >= s.browse_min_s:
                st.flag_visit(store, event.visitor_id, event.node_id, "browsed")
                self._dirty_visit(store, event.visitor_id, batch)
        elif isinstance(event, CarEntry):
            day = local_day(event.entered_at, s.tz).isoformat()
            st.insert_car_entry(
                (
                    event.event_id,
                    store,
                    event.visitor_id,
                    event.car_id,
                    format_ts(event.entered_at),
                    format_ts(event.exited_at),
                    event.inside_s,
                    day,
                )
            )
            batch.dirty_days.add((store, day))
            st.flag_visit(store, event.visitor_id, event.node_id, "entered_car")
            self._dirty_visit(store, event.visitor_id, batch)
        elif isinstance(event, Reception):
            st.flag_visit(store, event.visitor_id, event.node_id, "received")
            self._dirty_visit(store, event.visitor_id, batch)
        elif isinstance(event, Heat):
            day = local_day(event.minute, s.tz).isoformat()
            hour_start = hour_start_utc(event.minute, s.tz)
            hkey = format_ts(hour_start)
            day_cells = batch.heat_day[(store, day, event.cell_m)]
            hour_cells = batch.heat_hour[(store, hkey, day, event.cell_m)]
            for ix, iy, ps in event.cells:
                day_cells[(ix, iy)] += ps
                hour_cells[(ix, iy)] += ps
            st.set_occupancy_minute(store, format_ts(event.minute), event.node_id, event.occupancy_max)
            batch.dirty_hours.add((store, hkey, format_ts(hour_start + timedelta(hours=1)), day))
        elif isinstance(event, Heartbeat):
            batch.heartbeats.append(event)
        elif isinstance(event, Status):
            batch.statuses.append(event)
        if not isinstance(event, Status):
            batch.seqs[(store, event.node_id)].append(event.seq)

    def _dirty_visit(self, store: str, visitor_id: str, batch: _Batch) -> None:
        day = self.storage.visit_day(store, visitor_id)
        if day:
            batch.dirty_days.add((store, day))

    # -- flushing a batch -----------------------------------------------------------------------------

    def _flush(self, batch: _Batch, *, seq: bool) -> None:
        st = self.storage
        for (store, node), (seen, ts) in batch.nodes.items():
            st.touch_node(store, node, seen, ts)
        for hb in batch.heartbeats:
            st.set_node_heartbeat(
                hb.store_id, hb.node_id, format_ts(hb.ts), hb.model_dump_json(by_alias=True)
            )
        for status in batch.statuses:
            st.set_node_status(status.store_id, status.node_id, format_ts(status.ts), status.status)
        for (store, day, cell_m), cells in batch.heat_day.items():
            st.add_heat("heat_day", (store, day), day, cell_m, cells)
        for (store, hkey, day, cell_m), cells in batch.heat_hour.items():
            st.add_heat("heat_hour", (store, hkey), day, cell_m, cells)
        for store, hkey, hend, day in batch.dirty_hours:
            st.refresh_hour_occupancy(store, hkey, hend, day)
        for store, day in sorted(batch.dirty_days):
            self._refresh_day(store, day)
        if seq:
            for (store, node), seqs in batch.seqs.items():
                ranges = merge_ranges(st.seq_ranges(store, node), seqs)
                st.write_seq_ranges(store, node, ranges)

    def _refresh_day(self, store: str, day: str) -> None:
        """Recompute a store-day's funnel, hourly visitors and per-car figures from the stored facts."""
        st = self.storage
        s = self.settings(store)
        visits = st.day_visits(store, day)
        visitors = len(visits)
        browsers = sum(1 for v in visits if v[0])
        entrants = sum(1 for v in visits if v[1])
        receptions = sum(1 for v in visits if v[2])
        durations = [float(v[4]) for v in visits if v[3] and v[4] is not None]
        by_hour: dict[str, int] = defaultdict(int)
        for v in visits:
            if v[5]:
                by_hour[str(v[5])] += 1
        dwell_rows = st.day_dwell_totals(store, day)
        per_car: dict[str, list[float]] = defaultdict(list)
        zone_s: dict[str, float] = defaultdict(float)
        for zone_id, _visitor, total in dwell_rows:
            zone_s[str(zone_id)] += float(total)
            if float(total) >= s.browse_min_s:
                per_car[str(zone_id)].append(float(total))
        entries = {str(c): int(n) for c, n in st.day_car_entries(store, day)}
        car_rows = []
        for car in sorted(set(zone_s) | set(entries)):
            dw = per_car.get(car, [])
            car_rows.append(
                (
                    car,
                    len(dw),
                    zone_s.get(car, 0.0),
                    float(np.median(dw)) if dw else None,
                    histogram.encode(histogram.histogram(dw)),
                    entries.get(car, 0),
                )
            )
        st.write_daily(
            (
                store,
                day,
                visitors,
                browsers,
                entrants,
                receptions,
                len(durations),
                float(sum(durations)),
                float(np.median(durations)) if durations else None,
                histogram.encode(histogram.histogram(durations)),
                float(sum(zone_s.values())),
                sum(1 for n in by_hour.values() if n > 0),
            )
        )
        st.write_hourly_visitors(store, day, dict(by_hour))
        st.write_car_daily(store, day, car_rows)


@dataclass
class _Batch:
    """What one batch touched, so the flush refreshes exactly that."""

    dirty_days: set[tuple[str, str]] = field(default_factory=set)
    dirty_hours: set[tuple[str, str, str, str]] = field(default_factory=set)
    heat_day: defaultdict[tuple[str, str, float], defaultdict[tuple[int, int], float]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(float))
    )
    heat_hour: defaultdict[tuple[str, str, str, float], defaultdict[tuple[int, int], float]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(float))
    )
    heartbeats: list[Heartbeat] = field(default_factory=list)
    statuses: list[Status] = field(default_factory=list)
    seqs: defaultdict[tuple[str, str], list[int]] = field(default_factory=lambda: defaultdict(list))
    nodes: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)

    def touch_node(self, event: Envelope, received: str) -> None:
        key = (event.store_id, event.node_id)
        ts = format_ts(event.ts)
        old = self.nodes.get(key)
        self.nodes[key] = (max(old[0], received), max(old[1], ts)) if old else (received, ts)


def merge_ranges(ranges: Sequence[tuple[int, int]], seqs: Iterable[int]) -> list[tuple[int, int]]:
    """Merge sequence numbers into sorted, disjoint, inclusive ranges (adjacent ranges join)."""
    items = sorted([*ranges, *((s, s) for s in seqs)])
    merged: list[tuple[int, int]] = []
    for lo, hi in items:
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def _message_of_line(raw: bytes, received_at: datetime, source: str) -> Message:
    """A JSON line as a Message: `{"topic", "payload"}` wrappers keep their topic; bare payloads get the
    topic their own store, node and type imply (so a file replays exactly like the wire)."""
    try:
        data = json.loads(raw)
    except ValueError:
        return Message("(file)", raw, received_at, source)
    if isinstance(data, dict) and set(data) == {"topic", "payload"} and isinstance(data["topic"], str):
        payload = data["payload"]
        body = payload.encode("utf-8") if isinstance(payload, str) else json.dumps(payload).encode("utf-8")
        return Message(data["topic"], body, received_at, source)
    if isinstance(data, dict):
        from edge.events import KIND_OF_TYPE, TOPIC_ROOT

        kind = KIND_OF_TYPE.get(str(data.get("type")), "events")
        topic = f"{TOPIC_ROOT}/{data.get('store_id')}/{data.get('node_id')}/{kind}"
        return Message(topic, raw.strip(), received_at, source)
    return Message("(file)", raw, received_at, source)


def days_of(values: Iterable[str]) -> list[date]:
    return sorted({date.fromisoformat(v) for v in values})
