"""Visits a crash left open: ended with reason `restart` when the node starts again.

The outbox records each visit's start and forgets it at its end, in the same transaction as the events
(`Outbox.open_visits`). A node that stopped cleanly ended every visit (reason `shutdown`); one that was
killed or lost power did not, and those visits would never end. On the next start they end at the time of
the last payload the node stored before it stopped (the best known moment it was still watching), with
reason `restart`, so the aggregator can tell them from visits that ended at a door.
"""

from __future__ import annotations

from datetime import UTC, datetime

from edge.events import EventStamper, VisitEnded
from edge.node.outbox import Outbox


def visits_left_open(outbox: Outbox, stamper: EventStamper, now: datetime | None = None) -> list[VisitEnded]:
    """A `visit.ended` (reason `restart`) for each visit the outbox still has open; not stored here.

    `now` is the end time used when the outbox holds no payload at all to date the stop by."""
    open_visits = outbox.open_visits()
    if not open_visits:
        return []
    last = outbox.last_event_ts()
    stopped_at = datetime.fromisoformat(last) if last else (now or datetime.now(UTC))
    ended = []
    for visit in open_visits:
        started_at = datetime.fromisoformat(visit.started_at)
        ts = max(stopped_at, started_at)
        ended.append(
            stamper.stamp(
                VisitEnded,
                ts,
                visitor_id=visit.visitor_id,
                door_id=None,
                started_at=started_at,
                duration_s=(ts - started_at).total_seconds(),
                browsed=False,
                entered_car=False,
                received=False,
                end_reason="restart",
            )
        )
    return ended
