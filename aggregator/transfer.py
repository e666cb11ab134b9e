"""Copying a pilot's history from one aggregator database to another (an SQLite file to PostgreSQL, as a
brand outgrows one machine), then checking the copy.

The registry, quarantined payloads, audits, API token hashes and node liveness are copied as they are;
the raw events are replayed through the ingester in batches, so the target's rollups are a recomputation
from the raw events in the target's own storage. The check compares counts and every store-day's funnel
with the source's.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from aggregator.ingest import BatchResult, Ingestor, Message
from aggregator.storage.base import Row, StorageBackend
from aggregator.storage.errors import StorageError
from aggregator.storage.records import AuditRecord, QuarantineRecord
from edge.events import KIND_OF_TYPE, TOPIC_ROOT

log = logging.getLogger(__name__)

ALL_DAYS = ("0000-01-01", "9999-12-31")


class TransferError(StorageError):
    """The target is not fit to receive a copy (it already holds events)."""


@dataclass
class TransferReport:
    """What was copied and what the check found."""

    events: int = 0
    duplicates: int = 0
    quarantined_on_replay: int = 0
    quarantine_rows: int = 0
    audits: int = 0
    api_tokens: int = 0
    stores: int = 0
    brands: int = 0
    source_events: int = 0
    target_events: int = 0
    daily_rows_compared: int = 0
    mismatches: list[str] = field(default_factory=list)

    @property
    def verified(self) -> bool:
        return (
            self.source_events == self.target_events
            and self.quarantined_on_replay == 0
            and not self.mismatches
        )


def _messages(rows: Iterable[Row]) -> Iterator[Message]:
    """Stored raw events as the messages that brought them: topic from the payload's store, node and type."""
    for _event_id, type_, payload, received_at in rows:
        data = json.loads(payload)
        kind = KIND_OF_TYPE.get(str(type_), "events")
        topic = f"{TOPIC_ROOT}/{data['store_id']}/{data['node_id']}/{kind}"
        received = datetime.fromisoformat(str(received_at))
        yield Message(topic, str(payload).encode("utf-8"), received, "migrate")


def copy_history(
    source: StorageBackend,
    target: StorageBackend,
    *,
    batch_size: int = 5000,
    progress: Callable[[int], None] | None = None,
) -> TransferReport:
    """Copy everything of `source` into `target` (which must hold no events) and check the copy."""
    if target.count_events():
        raise TransferError("the target database already holds events: copy into an empty one")
    report = TransferReport()
    with target.transaction():
        for brand_id, name, weights in source.brand_rows():
            target.write_brand(str(brand_id), str(name), json.loads(str(weights)))
            report.brands += 1
        for row in source.store_rows():
            target.write_store(row)
            target.write_floor_image(row.store_id, source.floor_image(row.store_id))
            report.stores += 1
    ingestor = Ingestor(target)
    batch: list[Message] = []
    totals = BatchResult()
    for msg in _messages(source.raw_events()):
        batch.append(msg)
        if len(batch) >= batch_size:
            totals.add(ingestor.ingest(batch))
            batch = []
            if progress is not None:
                progress(totals.stored)
    if batch:
        totals.add(ingestor.ingest(batch))
    ingestor.refresh_pending()
    report.events, report.duplicates = totals.stored, totals.duplicates
    report.quarantined_on_replay = totals.quarantined
    with target.transaction():
        quarantine = source.quarantine_rows(limit=2**62)[::-1]  # oldest first, as they came
        target.insert_quarantine([QuarantineRecord(*r[1:]) for r in quarantine])
        report.quarantine_rows = len(quarantine)
        counts = source.counters()
        target.add_counters({k: v for k, v in counts.items() if k.startswith("quarantined")})
        for audit in source.audit_rows(limit=2**62)[::-1]:
            target.insert_audit(AuditRecord(*audit[1:]))
            report.audits += 1
        for token in source.api_token_rows():  # hashes only: the tokens given out keep working
            target.insert_api_token(token)
            report.api_tokens += 1
        for node in source.node_rows():
            if node[5] is not None:
                target.touch_nodes([(str(node[0]), str(node[1]), node[4], str(node[5]))])
    _check(source, target, report)
    return report


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):  # sums may add up in another order
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)
    return a == b


def _check(source: StorageBackend, target: StorageBackend, report: TransferReport) -> None:
    """Counts, and the target's recomputed daily rollups against the source's, store-day by store-day."""
    report.source_events, report.target_events = source.count_events(), target.count_events()
    theirs = {(str(r[0]), str(r[1])): r for r in source.daily_rows(None, *ALL_DAYS)}
    ours = {(str(r[0]), str(r[1])): r for r in target.daily_rows(None, *ALL_DAYS)}
    report.daily_rows_compared = len(theirs)
    for key in sorted(set(theirs) | set(ours)):
        a, b = theirs.get(key), ours.get(key)
        if a is None or b is None:
            report.mismatches.append(f"{key[0]} {key[1]}: only in the {'target' if a is None else 'source'}")
        elif not all(_same(x, y) for x, y in zip(a, b, strict=True)):
            report.mismatches.append(f"{key[0]} {key[1]}: source {tuple(a[2:9])} != target {tuple(b[2:9])}")
    if len(source.quarantine_rows(limit=2**62)) != len(target.quarantine_rows(limit=2**62)):
        report.mismatches.append("quarantine counts differ")
    if sorted(map(tuple, source.api_token_rows())) != sorted(map(tuple, target.api_token_rows())):
        report.mismatches.append("API tokens differ")
