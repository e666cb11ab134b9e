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
from typing import NamedTuple
from zoneinfo import ZoneInfo

import numpy as np

from aggregator import histogram
from aggregator.gaps import gap_report
from aggregator.lru import LruCache
from aggregator.registry import Registry
from aggregator.storage.base import StorageBackend
from aggregator.storage.errors import StorageUnavailableError
from aggregator.storage.records import (
    CarDayRow,
    CarEntryRecord,
    DailyRow,
    DwellRecord,
    EventRecord,
    QuarantineRecord,
    StoreRow,
    VisitEndRecord,
    VisitKey,
    VisitStartRecord,
)
from aggregator.timebuckets import day_and_hour, hour_start_utc, local_day, ts_key, zone
from edge.events import (
    DEFAULT_WINDOW,
    CarEntry,
    ContractError,
    Envelope,
    Heartbeat,
    Heat,
    Reason,
    Reception,
    Status,
    TimeWindow,
    VisitEnded,
    VisitStarted,
    ZoneDwell,
    check_heat_floor,
    check_topic_matches,
    control_topic,
    parse_payload,
    parse_topic,
    read_json,
)
from edge.mqtt_common import ReplayFormatError, ReplayReply

log = logging.getLogger(__name__)

REPLAY_REPLY_SUFFIX = "/replay/reply"

MAX_SEQ_JUMP = 10_000_000
"""How far past the highest `seq` stored for a node a new payload's may lie (about three years of a busy
node's payloads); a larger jump is forged or corrupt and is quarantined, not believed."""

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
    gaps: dict[tuple[str, str], list[tuple[int, int]]] = field(default_factory=dict)
    """Per (store, node) the batch touched: its open `seq` gaps after the batch (empty: none)."""
    replay_replies: int = 0
    """Nodes' answers to replay requests recorded."""

    def add(self, other: BatchResult) -> None:
        self.stored += other.stored
        self.duplicates += other.duplicates
        self.quarantined += other.quarantined
        for k, v in other.reasons.items():
            self.reasons[k] = self.reasons.get(k, 0) + v
        self.gaps.update(other.gaps)
        self.replay_replies += other.replay_replies


class RejectedError(ContractError):
    """A message the ingester refuses beyond the payload contract: `RejectedError(code, reason text)`,
    `code` one of `Reason`'s values."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason, Reason(code))


TOPIC_CACHE: LruCache[str, tuple[str, str, str] | tuple[Reason, str]] = LruCache(4096)
"""Parsed topics (or why they are not topics): a running aggregator sees the same few per node again and
again; bounded, so a flood of unique invalid topics costs nothing lasting."""


def validate(
    topic: str, payload: bytes, received_at: datetime | None = None, window: TimeWindow = DEFAULT_WINDOW
) -> Envelope:
    """The contract event in `payload` (`edge.events.parse_payload`), checked against its topic;
    `ContractError` says why not."""
    event = parse_payload(payload, received_at, window)
    parsed = _topic_parts(topic)
    if isinstance(parsed[0], Reason):
        raise ContractError(parsed[1], parsed[0])
    if parsed != (event.store_id, event.node_id, event.kind):
        check_topic_matches(topic, event)
    return event


def _topic_parts(topic: str) -> tuple[str, str, str] | tuple[Reason, str]:
    found = TOPIC_CACHE.get(topic)
    if found is None:
        try:
            found = parse_topic(topic)
        except ContractError as exc:
            found = (exc.rule, exc.message)  # the message only: an exception would keep its frames
        TOPIC_CACHE.put(topic, found)
    return found


class RebuildError(RuntimeError):
    """A store's stored events could not be rolled up again; nothing was changed."""


@dataclass(frozen=True)
class _StoreSettings:
    tz: ZoneInfo
    browse_min_s: float
    floor_size_m: tuple[float, float] | None = None


_UNKNOWN_STORE = _StoreSettings(zone("UTC"), 10.0)


class Ingestor:
    """Writes validated events into a storage backend and keeps the rollups current."""

    UNAVAILABLE_RETRIES = 5
    """Retries of a batch whose database connection failed (a server restart), before giving up."""
    UNAVAILABLE_WAIT_S = 1.0
    """Wait before the first of those retries (then twice, three times as long...)."""

    def __init__(
        self,
        storage: StorageBackend,
        refresh_interval_s: float = 0.0,
        time_window: TimeWindow = DEFAULT_WINDOW,
        max_seq_jump: int = MAX_SEQ_JUMP,
    ) -> None:
        """`refresh_interval_s`: 0 refreshes the touched store-days' rollups in every batch; more batches
        them (a live MQTT ingester uses about a second), with the pending store-days kept in storage so a
        restart refreshes what was left. `time_window`: how far from its receipt a payload's timestamps
        may lie. `max_seq_jump`: how far past a node's highest stored `seq` a payload's may lie."""
        self.storage = storage
        self.time_window = time_window
        self.max_seq_jump = max_seq_jump
        self.refresh_interval_s = refresh_interval_s
        self._last_refresh = 0.0
        self.pending = False
        """True while some store-days wait for a refresh (call `refresh_pending` when idle)."""
        self.totals = BatchResult()
        self._settings: dict[str, _StoreSettings] = {}
        self._warned_unknown: LruCache[str, bool] = LruCache(1024)
        self._load_settings()

    # -- registry -------------------------------------------------------------------------------------

    def _load_settings(self) -> None:
        self._registry_version = self.storage.registry_version()
        self._settings = {
            str(r[0]): _StoreSettings(
                zone(str(r[4])),
                float(r[7]),
                (float(r[5]), float(r[6])) if r[5] is not None and r[6] is not None else None,
            )
            for r in self.storage.store_rows()
        }

    def settings(self, store_id: str) -> _StoreSettings:
        found = self._settings.get(store_id)
        if found is None:
            # A store not (yet) in the registry is bucketed in UTC; loading it later rebuilds its rollups.
            # Not remembered per store id: ids come from senders, so only a bounded set of warnings is.
            if store_id not in self._warned_unknown:
                self._warned_unknown.put(store_id, True)
                log.warning("store %s is not in the registry: bucketing its events in UTC", store_id)
            return _UNKNOWN_STORE
        return found

    def load_registry(self, registry: Registry) -> list[str]:
        """Write brands and stores; rebuild the rollups of stores whose time zone or threshold changed.
        Returns the ids of rebuilt stores. All in one transaction: if a rebuild fails (`RebuildError`),
        the registry is left as it was."""
        before = {r.store_id: (r.timezone, float(r.browse_min_s)) for r in self.storage.store_rows()}
        rebuilt = []
        try:
            with self.storage.transaction():
                for b in registry.brands:
                    self.storage.write_brand(b.id, b.name, {str(k): v for k, v in b.weights().items()})
                for s in registry.stores:
                    cars = [c.model_dump(mode="json") for c in s.cars]
                    w, h = s.floor_size_m if s.floor_size_m else (None, None)
                    self.storage.write_store(
                        StoreRow(
                            store_id=s.store_id,
                            name=s.name,
                            brand=s.brand,
                            region=s.region,
                            timezone=s.timezone,
                            floor_w_m=w,
                            floor_h_m=h,
                            browse_min_s=s.browse_min_s,
                            cars_json=json.dumps(cars),
                            floor_plan_json=s.plan.model_dump_json(),
                        )
                    )
                    self.storage.write_floor_image(s.store_id, s.floor_image_png)
                self._load_settings()
                with_data = set(self.storage.store_ids_with_data())
                for s in registry.stores:
                    old = before.get(s.store_id, ("UTC", 10.0))
                    if s.store_id in with_data and old != (s.timezone, s.browse_min_s):
                        self._rebuild(s.store_id)
                        rebuilt.append(s.store_id)
        finally:
            self._load_settings()  # what was committed, or what was there before
        return rebuilt

    def rebuild(self, store_id: str) -> None:
        """Recompute every rollup of a store from its stored raw events (`RebuildError`: nothing changed)."""
        with self.storage.transaction():
            self._rebuild(store_id)

    def _rebuild(self, store_id: str) -> None:
        self._last_refresh = 0.0
        self.storage.delete_derived(store_id)
        batch = _Batch()
        for event_id, _type, payload, _received_at in list(self.storage.raw_events(store_id)):
            try:
                event = parse_payload(payload)
            except ContractError as exc:
                raise RebuildError(
                    f"store {store_id}: stored event {event_id} no longer passes the contract "
                    f"({exc.code}: {exc.message}); nothing was changed"
                ) from None
            ts = ts_key(event.ts)
            self._apply(event, batch, ts)
            batch.touch_node(event, None, ts)
        self._flush(batch, seq=False)

    # -- ingest ---------------------------------------------------------------------------------------

    def ingest(self, messages: Sequence[Message]) -> BatchResult:
        """Validate, store and roll up one batch in one transaction."""
        result = BatchResult()
        batch = _Batch()
        if self.storage.registry_version() != self._registry_version:
            self._load_settings()  # another process loaded the registry
        with self.storage.transaction():
            # Each message in order: valid (event, message, received) or its quarantine record.
            checked: list[tuple[Envelope, Message, str] | QuarantineRecord] = []
            received_at, received = None, ""
            for msg in messages:
                if msg.received_at is not received_at:  # consecutive messages often share one
                    received_at, received = msg.received_at, ts_key(msg.received_at)
                try:
                    if msg.topic.endswith(REPLAY_REPLY_SUFFIX):
                        # A node's answer to a replay request: recorded here, in the batch's transaction.
                        self._record_replay_reply(msg, received)
                        result.replay_replies += 1
                        continue
                    event = validate(msg.topic, msg.payload, msg.received_at, self.time_window)
                    if isinstance(event, Heat):
                        check_heat_floor(event, self.settings(event.store_id).floor_size_m)
                    checked.append((event, msg, received))
                except ContractError as rej:
                    checked.append(_quarantine_row(msg, received, rej, result))
            # Every node's highest stored seq in one read, then the seq checks in message order.
            seq_hi: dict[tuple[str, str], int | None] = dict(
                self.storage.highest_seqs(
                    {(c[0].store_id, c[0].node_id) for c in checked if not isinstance(c, QuarantineRecord)}
                )
            )
            valid: list[tuple[Envelope, Message, str]] = []
            quarantine: list[QuarantineRecord] = []
            for c in checked:
                if isinstance(c, QuarantineRecord):
                    quarantine.append(c)
                    continue
                event, msg, received = c
                try:
                    self._check_seq(event, seq_hi)
                    valid.append((event, msg, received))
                except ContractError as rej:
                    quarantine.append(_quarantine_row(msg, received, rej, result))
            # event_id is the idempotency key: one lookup for the batch, then only new events go on (under
            # the stores' locks, so another aggregator process cannot store the same event meanwhile).
            self.storage.lock_stores({e.store_id for e, _, _ in valid})
            seen = self.storage.known_event_ids([e.event_id for e, _, _ in valid])
            raw: list[EventRecord] = []
            for event, msg, received in valid:
                if event.event_id in seen:
                    result.duplicates += 1
                    continue
                seen.add(event.event_id)
                ts = ts_key(event.ts)
                raw.append(
                    EventRecord(
                        event_id=event.event_id,
                        store_id=event.store_id,
                        node_id=event.node_id,
                        seq=event.seq,
                        type=getattr(event, "type", "?"),
                        ts=ts,
                        received_at=received,
                        payload=msg.payload.decode("utf-8"),
                    )
                )
                result.stored += 1
                self._apply(event, batch, ts)
                if msg.source == "mqtt" and isinstance(event, Status):
                    # A live status counts from when it arrived: the broker sends a will when the node is
                    # gone, whatever the node's clock said when it was made.
                    batch.statuses[-1] = (event, received)
                batch.touch_node(event, received if msg.source == "mqtt" else None, ts)
            self.storage.insert_events(raw)
            if quarantine:
                self.storage.insert_quarantine(quarantine)
            self._flush(batch, seq=True)
            result.gaps = batch.open_gaps
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

    def _record_replay_reply(self, msg: Message, received: str) -> None:
        """Record what a node said it cannot send again (`.../replay/reply`); `RejectedError` if malformed."""
        parsed = control_topic(msg.topic)
        if parsed is None or parsed[2] != "replay/reply":
            raise RejectedError("bad_topic", f"topic {msg.topic[:200]!r} is not a node's replay/reply topic")
        store_id, node_id, _ = parsed
        try:
            reply = ReplayReply.parse(msg.payload)
        except ReplayFormatError as exc:
            raise RejectedError("bad_replay_reply", str(exc)) from exc
        if reply.unavailable:
            self.storage.add_unrecoverable_ranges(store_id, node_id, reply.unavailable, received)
            log.warning(
                "node %s/%s cannot send again: %s",
                store_id,
                node_id,
                "; ".join(f"seq {lo}..{hi} ({reason})" for lo, hi, reason in reply.unavailable[:5]),
            )

    def _check_seq(self, event: Envelope, seq_hi: dict[tuple[str, str], int | None]) -> None:
        """A node's `seq` climbs by one per payload: one far past its highest stored is not believed.
        `seq_hi`: the batch's view of each node's highest seq so far (stored ones read before)."""
        key = (event.store_id, event.node_id)
        hi = seq_hi.get(key)
        if hi is not None and event.seq > hi + self.max_seq_jump:
            raise ContractError(
                f"seq: {event.seq} jumps {event.seq - hi} past node {key[0]}/{key[1]}'s highest {hi} "
                f"(at most {self.max_seq_jump})",
                Reason.SEQ_JUMP,
            )
        if not isinstance(event, Status):
            seq_hi[key] = event.seq if hi is None else max(hi, event.seq)

    def ingest_safe(self, messages: Sequence[Message]) -> BatchResult:
        """`ingest`, but never raises: if a batch fails (a storage error, a bug), its messages are retried
        one by one and any that still fail are quarantined with the error, so nothing is lost silently."""
        for attempt in range(self.UNAVAILABLE_RETRIES + 1):
            try:
                return self.ingest(messages)
            except StorageUnavailableError:
                # Nothing of the batch was written: wait for the database rather than quarantine the batch.
                if attempt == self.UNAVAILABLE_RETRIES:
                    raise
                log.warning("database unavailable; retrying the batch of %d", len(messages), exc_info=True)
                time.sleep(self.UNAVAILABLE_WAIT_S * (attempt + 1))
            except Exception:
                log.exception("batch of %d failed; retrying one by one", len(messages))
                break
        result = BatchResult()
        for msg in messages:
            try:
                result.add(self.ingest([msg]))
            except Exception as exc:
                log.exception("payload on %r failed; quarantining it", msg.topic)
                with self.storage.transaction():
                    self.storage.insert_quarantine(
                        [
                            _quarantine_record(
                                msg, ts_key(msg.received_at), "internal", f"{type(exc).__name__}: {exc}"
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
            day, hour_key = day_and_hour(event.ts, s.tz)
            batch.visit_starts.append(
                VisitStartRecord(
                    store_id=store,
                    visitor_id=event.visitor_id,
                    node_id=event.node_id,
                    started_at=ts,
                    door_id=event.door_id,
                    day=day,
                    hour_key=hour_key,
                )
            )
        elif isinstance(event, VisitEnded):
            day, hour_key = day_and_hour(event.started_at, s.tz)
            batch.visit_ends.append(
                VisitEndRecord(
                    store_id=store,
                    visitor_id=event.visitor_id,
                    node_id=event.node_id,
                    started_at=ts_key(event.started_at),
                    ended_at=ts,
                    duration_s=event.duration_s,
                    door_id=event.door_id,
                    end_reason=event.end_reason,
                    browsed=int(event.browsed),
                    entered_car=int(event.entered_car),
                    received=int(event.received),
                    day=day,
                    hour_key=hour_key,
                )
            )
        elif isinstance(event, ZoneDwell):
            batch.dwells.append(
                DwellRecord(
                    event_id=event.event_id,
                    store_id=store,
                    visitor_id=event.visitor_id,
                    zone_id=event.zone_id,
                    entered_at=ts_key(event.entered_at),
                    exited_at=ts_key(event.exited_at),
                    dwell_s=event.dwell_s,
                    day=local_day(event.entered_at, s.tz).isoformat(),
                )
            )
            key = VisitKey(store, event.visitor_id, event.node_id)
            if event.dwell_s >= s.browse_min_s:
                batch.flags["browsed"].append(key)
            else:
                # Several short stays may add up to a browse: checked once the batch's dwells are stored.
                batch.short_dwells.append((*key, event.zone_id, s.browse_min_s))
        elif isinstance(event, CarEntry):
            batch.car_entries.append(
                CarEntryRecord(
                    event_id=event.event_id,
                    store_id=store,
                    visitor_id=event.visitor_id,
                    car_id=event.car_id,
                    entered_at=ts_key(event.entered_at),
                    exited_at=ts_key(event.exited_at),
                    inside_s=event.inside_s,
                    day=local_day(event.entered_at, s.tz).isoformat(),
                )
            )
            batch.flags["entered_car"].append(VisitKey(store, event.visitor_id, event.node_id))
        elif isinstance(event, Reception):
            batch.flags["received"].append(VisitKey(store, event.visitor_id, event.node_id))
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
        elif isinstance(event, Status):
            batch.statuses.append((event, ts))
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
        # Short stays add up per visitor and zone: their totals, this batch's stored, read in one go.
        totals = st.dwell_totals(
            (store, visitor, zone_id) for store, visitor, _n, zone_id, _e in batch.short_dwells
        )
        for store, visitor, node, zone_id, enough_s in batch.short_dwells:
            if totals[(store, visitor, zone_id)] >= enough_s:
                batch.flags["browsed"].append(VisitKey(store, visitor, node))
        for flag, keys in batch.flags.items():
            st.flag_visits(flag, keys)
        for row in batch.occupancy:
            st.set_occupancy_minute(*row)
        st.touch_nodes([(store, node, seen, ts) for (store, node), (seen, ts) in batch.nodes.items()])
        for hb in batch.heartbeats:
            st.set_node_heartbeat(hb.store_id, hb.node_id, ts_key(hb.ts), hb.model_dump_json(by_alias=True))
        for status, at in batch.statuses:
            st.set_node_status(status.store_id, status.node_id, at, status.status)
        st.add_heats(
            "heat_day",
            [((store, day), day, cell_m, cells) for (store, day, cell_m), cells in batch.heat_day.items()],
        )
        st.add_heats(
            "heat_hour",
            [
                ((store, hkey), day, cell_m, cells)
                for (store, hkey, day, cell_m), cells in batch.heat_hour.items()
            ],
        )
        for store, hkey, hend, day in batch.dirty_hours:
            st.refresh_hour_occupancy(store, hkey, hend, day)
        # The store-days this batch touched were marked by the storage in this transaction.
        now = time.monotonic()
        if now - self._last_refresh >= self.refresh_interval_s:
            self._refresh_pending()
            self._last_refresh = now
            self.pending = False
        else:
            self.pending = True
        if seq:
            merged = {
                (store, node): merge_ranges(st.seq_ranges(store, node), seqs)
                for (store, node), seqs in batch.seqs.items()
            }
            st.write_seq_ranges([(store, node, ranges) for (store, node), ranges in merged.items()])
            for (store, node), ranges in merged.items():
                open_gaps: list[tuple[int, int]] = []
                if len(ranges) > 1:
                    unrecoverable = [(lo, hi, r) for lo, hi, r, _ in st.unrecoverable_ranges(store, node)]
                    report = gap_report(ranges, unrecoverable)
                    open_gaps = [(g.lo, g.hi) for g in report if g.state == "open"]
                batch.open_gaps[(store, node)] = open_gaps

    def refresh_pending(self) -> int:
        """Refresh every store-day waiting for it; returns how many."""
        with self.storage.transaction():
            n = self._refresh_pending()
        self._last_refresh = time.monotonic()
        self.pending = False
        return n

    def _refresh_pending(self) -> int:
        days = self.storage.take_dirty()
        # Each kind of row in one write for all the days: the week parts that follow the daily rows are
        # computed for all at once.
        refreshed = [self._refresh_day(store, day) for store, day in days]
        self.storage.write_hourly_visitors(
            [(store, day, by_hour) for (store, day), _d, by_hour, _c in refreshed]
        )
        self.storage.write_car_daily([(store, day, cars) for (store, day), _d, _h, cars in refreshed])
        self.storage.write_daily([daily for _k, daily, _h, _c in refreshed])
        return len(days)

    def _refresh_day(
        self, store: str, day: str
    ) -> tuple[tuple[str, str], DailyRow, dict[str, int], list[CarDayRow]]:
        """Recompute a store-day's rows from the stored facts: ((store, day), its daily row (funnel), its
        visitors by hour, its per-car rows), to write."""
        st = self.storage
        s = self.settings(store)
        facts = st.day_facts(store, day)
        durations, by_hour, dwell_rows = facts.visit_durations_s, facts.visitors_by_hour, facts.dwell_totals
        per_car: dict[str, list[float]] = defaultdict(list)
        zone_s: dict[str, float] = defaultdict(float)
        for zone_id, _visitor, total in dwell_rows:
            zone_s[str(zone_id)] += float(total)
            if float(total) >= s.browse_min_s:
                per_car[str(zone_id)].append(float(total))
        entries = {str(c): int(n) for c, n in facts.car_entries}
        car_rows = []
        for car in sorted(set(zone_s) | set(entries)):
            dw = per_car.get(car, [])
            car_rows.append(
                CarDayRow(
                    car_id=car,
                    browsers=len(dw),
                    dwell_total_s=zone_s.get(car, 0.0),
                    dwell_median_s=float(np.median(dw)) if dw else None,
                    dwell_hist=histogram.encode(histogram.histogram(dw)),
                    entries=entries.get(car, 0),
                )
            )
        daily = DailyRow(
            store_id=store,
            day=day,
            visitors=facts.visitors,
            car_browsers=facts.car_browsers,
            car_entrants=facts.car_entrants,
            receptions=facts.receptions,
            visits_ended=len(durations),
            visit_s_total=float(sum(durations)),
            median_visit_s=float(np.median(durations)) if durations else None,
            visit_hist=histogram.encode(histogram.histogram(durations)),
            car_zone_s=float(sum(zone_s.values())),
            active_hours=sum(1 for n in by_hour.values() if n > 0),
        )
        return (store, day), daily, by_hour, car_rows


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
    visit_starts: list[VisitStartRecord] = field(default_factory=list)
    visit_ends: list[VisitEndRecord] = field(default_factory=list)
    dwells: list[DwellRecord] = field(default_factory=list)
    short_dwells: list[tuple[str, str, str, str, float]] = field(default_factory=list)
    car_entries: list[CarEntryRecord] = field(default_factory=list)
    flags: defaultdict[str, list[VisitKey]] = field(default_factory=lambda: defaultdict(list))
    occupancy: list[tuple[str, str, str, int]] = field(default_factory=list)
    heartbeats: list[Heartbeat] = field(default_factory=list)
    statuses: list[tuple[Status, str]] = field(default_factory=list)
    """Each status and the time it counts from (stored form): its receipt when live, else its `ts`."""
    open_gaps: dict[tuple[str, str], list[tuple[int, int]]] = field(default_factory=dict)
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


def _quarantine_row(msg: Message, received: str, rej: ContractError, result: BatchResult) -> QuarantineRecord:
    """The quarantine row of a rejected message (counted in `result`)."""
    result.quarantined += 1
    result.reasons[rej.code] = result.reasons.get(rej.code, 0) + 1
    return _quarantine_record(msg, received, rej.code, rej.message)


def _quarantine_record(msg: Message, received: str, code: str, reason: str) -> QuarantineRecord:
    """A refused message as kept in quarantine. Its texts quote the payload (a key, a value), which may hold
    U+0000: that is written as the escape `\\u0000`, so every backend can store it (PostgreSQL refuses the
    character itself) and the row still says what was wrong."""
    return QuarantineRecord(
        received_at=received,
        source=_storable(msg.source),
        topic=_storable(msg.topic[:1024]),
        reason_code=code,
        reason=_storable(reason[:2000]),
        payload_size=len(msg.payload),
        payload_head=bytes(msg.payload[:QUARANTINE_HEAD_BYTES]),
    )


def _storable(text: str) -> str:
    return text.replace("\x00", "\\u0000")


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
        data = read_json(raw)
    except ContractError:
        return Message("(file)", raw, received_at, source)  # quarantined with the same reason
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
