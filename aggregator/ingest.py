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
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import NamedTuple
from zoneinfo import ZoneInfo

import numpy as np
from pydantic import TypeAdapter, ValidationError

from aggregator import histogram
from aggregator.registry import Registry
from aggregator.storage.base import Row, StorageBackend
from aggregator.timebuckets import day_and_hour, hour_start_utc, local_day, ts_key, zone
from edge.events import (
    MAX_PAYLOAD_BYTES,
    SCHEMA_V1,
    CarEntry,
    ContractError,
    Envelope,
    Event,
    Heartbeat,
    Heat,
    Reception,
    Status,
    VisitEnded,
    VisitStarted,
    ZoneDwell,
    check_topic_matches,
    describe_validation_error,
    parse_event,
    parse_topic,
)

log = logging.getLogger(__name__)

_EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)

QUARANTINE_HEAD_BYTES = 4096
"""How much of a rejected payload is kept (the rest is counted, not stored)."""


class Message(NamedTuple):
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
    """The contract event in `payload`, checked against its topic; `RejectedError` says why not.

    The common case (a valid payload) is parsed once, straight from bytes; only a failure is parsed
    again, step by step, to name its category."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise RejectedError(
            "oversize", f"payload is {len(payload)} bytes, over the {MAX_PAYLOAD_BYTES}-byte limit"
        )
    try:
        event: Envelope = _EVENT_ADAPTER.validate_json(payload, strict=True)
    except ValidationError as exc:
        raise _classify(payload, exc) from exc
    parsed = _topic_parts(topic)
    if isinstance(parsed, ContractError):
        raise RejectedError("bad_topic", str(parsed))
    if parsed != (event.store_id, event.node_id, event.kind):
        try:
            check_topic_matches(topic, event)
        except ContractError as exc:
            raise RejectedError("topic_mismatch", str(exc)) from exc
    return event


@lru_cache(maxsize=65536)
def _topic_parts(topic: str) -> tuple[str, str, str] | ContractError:
    """`parse_topic`, remembered: a running aggregator sees the same few topics per node again and again."""
    try:
        return parse_topic(topic)
    except ContractError as exc:
        return exc


def _classify(payload: bytes, exc: ValidationError) -> RejectedError:
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as err:
        return RejectedError("not_utf8", f"payload is not UTF-8: {err}")
    try:
        data = json.loads(text)
    except ValueError as err:
        return RejectedError("not_json", f"payload is not JSON: {err}")
    if not isinstance(data, dict):
        return RejectedError("not_json", f"payload must be a JSON object, got {type(data).__name__}")
    if data.get("schema") != SCHEMA_V1:
        return RejectedError(
            "schema", f"schema: unknown schema version {data.get('schema')!r}, expected {SCHEMA_V1!r}"
        )
    return RejectedError("invalid", describe_validation_error(exc))


@dataclass(frozen=True)
class _StoreSettings:
    tz: ZoneInfo
    browse_min_s: float


class Ingestor:
    """Writes validated events into a storage backend and keeps the rollups current."""

    def __init__(self, storage: StorageBackend, refresh_interval_s: float = 0.0) -> None:
        """`refresh_interval_s`: 0 refreshes the touched store-days' rollups in every batch; more batches
        them (a live MQTT ingester uses about a second), with the pending store-days kept in storage so a
        restart refreshes what was left."""
        self.storage = storage
        self.refresh_interval_s = refresh_interval_s
        self._last_refresh = 0.0
        self.pending = False
        """True while some store-days wait for a refresh (call `refresh_pending` when idle)."""
        self.totals = BatchResult()
        self._settings: dict[str, _StoreSettings] = {}
        self._load_settings()

    # -- registry -------------------------------------------------------------------------------------

    def _load_settings(self) -> None:
        self._registry_version = self.storage.registry_version()
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
        self._last_refresh = 0.0
        with self.storage.transaction():
            self.storage.delete_derived(store_id)
            batch = _Batch()
            for _event_id, _type, payload, _received_at in list(self.storage.raw_events(store_id)):
                event = parse_event(payload)
                ts = ts_key(event.ts)
                self._apply(event, batch, ts)
                batch.touch_node(event, None, ts)
            self._flush(batch, seq=False)

    # -- ingest ---------------------------------------------------------------------------------------

    def ingest(self, messages: Sequence[Message]) -> BatchResult:
        """Validate, store and roll up one batch in one transaction."""
        result = BatchResult()
        batch = _Batch()
        quarantine: list[tuple[object, ...]] = []
        if self.storage.registry_version() != self._registry_version:
            self._load_settings()  # another process loaded the registry
        with self.storage.transaction():
            valid: list[tuple[Envelope, Message, str]] = []
            received_at, received = None, ""
            for msg in messages:
                if msg.received_at is not received_at:  # consecutive messages often share one
                    received_at, received = msg.received_at, ts_key(msg.received_at)
                try:
                    valid.append((validate(msg.topic, msg.payload), msg, received))
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
            # event_id is the idempotency key: one lookup for the batch, then only new events go on.
            seen = self.storage.known_event_ids([e.event_id for e, _, _ in valid])
            raw: list[Row] = []
            for event, msg, received in valid:
                if event.event_id in seen:
                    result.duplicates += 1
                    continue
                seen.add(event.event_id)
                ts = ts_key(event.ts)
                raw.append(
                    (
                        event.event_id,
                        event.store_id,
                        event.node_id,
                        event.seq,
                        getattr(event, "type", "?"),
                        ts,
                        received,
                        msg.payload.decode("utf-8"),
                    )
                )
                result.stored += 1
                self._apply(event, batch, ts)
                if isinstance(event, Status):
                    # Live, the status the broker delivered last is the node's state: its last will
                    # ("offline") is stamped when the connection began, before that connection's "online".
                    batch.statuses.append((event, received if msg.source == "mqtt" else ts))
                batch.touch_node(event, received if msg.source == "mqtt" else None, ts)
            self.storage.insert_events(raw)
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
                                ts_key(msg.received_at),
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

    def _apply(self, event: Envelope, batch: _Batch, ts: str) -> None:
        """Turn one new event into rows for the batch's bulk writes (no I/O here); `ts` is
        `ts_key(event.ts)`, formatted once by the caller."""
        s = self.settings(event.store_id)
        store = event.store_id
        if isinstance(event, VisitStarted):
            batch.visit_starts.append(
                (
                    store,
                    event.visitor_id,
                    event.node_id,
                    ts,
                    event.door_id,
                    *day_and_hour(event.ts, s.tz),
                )
            )
        elif isinstance(event, VisitEnded):
            batch.visit_ends.append(
                (
                    store,
                    event.visitor_id,
                    event.node_id,
                    ts_key(event.started_at),
                    ts,
                    event.duration_s,
                    event.door_id,
                    event.end_reason,
                    int(event.browsed),
                    int(event.entered_car),
                    int(event.received),
                    *day_and_hour(event.started_at, s.tz),
                )
            )
        elif isinstance(event, ZoneDwell):
            batch.dwells.append(
                (
                    event.event_id,
                    store,
                    event.visitor_id,
                    event.zone_id,
                    ts_key(event.entered_at),
                    ts_key(event.exited_at),
                    event.dwell_s,
                    local_day(event.entered_at, s.tz).isoformat(),
                )
            )
            key = (store, event.visitor_id, event.node_id)
            if event.dwell_s >= s.browse_min_s:
                batch.flags["browsed"].append(key)
            else:
                # Several short stays may add up to a browse: checked once the batch's dwells are stored.
                batch.short_dwells.append((*key, event.zone_id, s.browse_min_s))
        elif isinstance(event, CarEntry):
            batch.car_entries.append(
                (
                    event.event_id,
                    store,
                    event.visitor_id,
                    event.car_id,
                    ts_key(event.entered_at),
                    ts_key(event.exited_at),
                    event.inside_s,
                    local_day(event.entered_at, s.tz).isoformat(),
                )
            )
            batch.flags["entered_car"].append((store, event.visitor_id, event.node_id))
        elif isinstance(event, Reception):
            batch.flags["received"].append((store, event.visitor_id, event.node_id))
        elif isinstance(event, Heat):
            day = local_day(event.minute, s.tz).isoformat()
            hour_start = hour_start_utc(event.minute, s.tz)
            hkey = ts_key(hour_start)
            day_cells = batch.heat_day[(store, day, event.cell_m)]
            hour_cells = batch.heat_hour[(store, hkey, day, event.cell_m)]
            for ix, iy, ps in event.cells:
                day_cells[(ix, iy)] += ps
                hour_cells[(ix, iy)] += ps
            batch.occupancy.append((store, ts_key(event.minute), event.node_id, event.occupancy_max))
            batch.dirty_hours.add((store, hkey, ts_key(hour_start + timedelta(hours=1)), day))
        elif isinstance(event, Heartbeat):
            batch.heartbeats.append(event)
        if not isinstance(event, Status):
            batch.seqs[(store, event.node_id)].append(event.seq)

    # -- flushing a batch -----------------------------------------------------------------------------

    def _flush(self, batch: _Batch, *, seq: bool) -> None:
        st = self.storage
        # Visit writes commute (flags are OR-ed, a start stays authoritative), so bulk order is free.
        st.upsert_visit_starts(batch.visit_starts)
        st.upsert_visit_ends(batch.visit_ends)
        st.insert_dwells(batch.dwells)
        st.insert_car_entries(batch.car_entries)
        for store, visitor, node, zone_id, enough_s in batch.short_dwells:
            if st.dwell_total(store, visitor, zone_id) >= enough_s:
                batch.flags["browsed"].append((store, visitor, node))
        for flag, keys in batch.flags.items():
            st.flag_visits(flag, keys)
        for row in batch.occupancy:
            st.set_occupancy_minute(*row)
        for (store, node), (seen, ts) in batch.nodes.items():
            st.touch_node(store, node, seen, ts)
        for hb in batch.heartbeats:
            st.set_node_heartbeat(hb.store_id, hb.node_id, ts_key(hb.ts), hb.model_dump_json(by_alias=True))
        for status, order_key in batch.statuses:
            st.set_node_status(status.store_id, status.node_id, order_key, status.status)
        for (store, day, cell_m), cells in batch.heat_day.items():
            st.add_heat("heat_day", (store, day), day, cell_m, cells)
        for (store, hkey, day, cell_m), cells in batch.heat_hour.items():
            st.add_heat("heat_hour", (store, hkey), day, cell_m, cells)
        for store, hkey, hend, day in batch.dirty_hours:
            st.refresh_hour_occupancy(store, hkey, hend, day)
        # The store-days this batch touched were marked by storage triggers (migration 2).
        now = time.monotonic()
        if now - self._last_refresh >= self.refresh_interval_s:
            self._refresh_pending()
            self._last_refresh = now
            self.pending = False
        else:
            self.pending = True
        if seq:
            for (store, node), seqs in batch.seqs.items():
                ranges = merge_ranges(st.seq_ranges(store, node), seqs)
                st.write_seq_ranges(store, node, ranges)

    def refresh_pending(self) -> int:
        """Refresh every store-day waiting for it; returns how many."""
        with self.storage.transaction():
            n = self._refresh_pending()
        self._last_refresh = time.monotonic()
        self.pending = False
        return n

    def _refresh_pending(self) -> int:
        days = self.storage.take_dirty()
        # Daily rows in one write: the week parts that follow them are computed for all at once.
        self.storage.write_daily([self._refresh_day(store, day) for store, day in days])
        return len(days)

    def _refresh_day(self, store: str, day: str) -> Row:
        """Recompute a store-day's hourly visitors and per-car figures from the stored facts; returns its
        daily row (funnel) to write."""
        st = self.storage
        s = self.settings(store)
        visitors, browsers, entrants, receptions = st.day_visit_counts(store, day)
        durations = st.day_visit_durations(store, day)
        by_hour = st.day_visitors_by_hour(store, day)
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
        st.write_hourly_visitors(store, day, by_hour)
        st.write_car_daily(store, day, car_rows)
        return (
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


@dataclass
class _Batch:
    """What one batch touched, so the flush refreshes exactly that."""

    dirty_hours: set[tuple[str, str, str, str]] = field(default_factory=set)
    heat_day: defaultdict[tuple[str, str, float], defaultdict[tuple[int, int], float]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(float))
    )
    heat_hour: defaultdict[tuple[str, str, str, float], defaultdict[tuple[int, int], float]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(float))
    )
    visit_starts: list[Row] = field(default_factory=list)
    visit_ends: list[Row] = field(default_factory=list)
    dwells: list[Row] = field(default_factory=list)
    short_dwells: list[tuple[str, str, str, str, float]] = field(default_factory=list)
    car_entries: list[Row] = field(default_factory=list)
    flags: defaultdict[str, list[Row]] = field(default_factory=lambda: defaultdict(list))
    occupancy: list[tuple[str, str, str, int]] = field(default_factory=list)
    heartbeats: list[Heartbeat] = field(default_factory=list)
    statuses: list[tuple[Status, str]] = field(default_factory=list)
    """Each status with the key that orders it: when it was received live, else its own time stamp."""
    seqs: defaultdict[tuple[str, str], list[int]] = field(default_factory=lambda: defaultdict(list))
    nodes: dict[tuple[str, str], tuple[str | None, str]] = field(default_factory=dict)

    def touch_node(self, event: Envelope, received: str | None, ts: str) -> None:
        """`received`: when it arrived live (MQTT); None for backfills and rebuilds, which say nothing
        about whether the node is reporting now. `ts`: the event's own time, stored form."""
        key = (event.store_id, event.node_id)
        old = self.nodes.get(key)
        if old is None:
            self.nodes[key] = (received, ts)
        else:
            seen = max(old[0] or "", received or "") or None
            self.nodes[key] = (seen, max(old[1], ts))


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
