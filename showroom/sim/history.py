"""Backfilled history: whole store days simulated and turned into the contract events a node would have sent.

Each store day runs the simulator over opening hours with the daily rhythm (scaled per store), computes
the ground truth and emits its events (visits, dwells, car entries, receptions, per-minute heat). They go
to the aggregator through its real ingest, so dashboards have days and weeks to compare with.
"""

from __future__ import annotations

import json
import random
import zlib
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path

from edge.config import NodeConfig
from edge.events import (
    Envelope,
    EventStamper,
    IdSource,
    VisitEnded,
    VisitStarted,
    format_ts,
    parse_event,
    to_json,
)
from edge.sim.behaviour import CLOSE_HOUR, DAY_FACTOR, OPEN_HOUR, BehaviourParams
from edge.sim.scenarios import Scenario
from edge.sim.simulation import Simulation
from showroom.sim.truth import compute_truth


@dataclass(frozen=True)
class StoreStyle:
    """How one store differs from the typical one: busier or quieter, more or less eager staff."""

    rate_scale: float = 1.0
    behaviour: BehaviourParams = field(default_factory=BehaviourParams)
    n_staff: int = 4


def store_day_events(
    config: NodeConfig,
    day: date,
    style: StoreStyle,
    *,
    until_utc: datetime | None = None,
    dt_s: float = 1.0,
) -> list[Envelope]:
    """The events of one store-local `day` (opening hours; with `until_utc`, only what had ended by then).

    Deterministic: the seed comes from the store id and the date. `seq` numbers start at 0 for the day;
    the caller renumbers them for the node.
    """
    start_local = datetime.combine(day, time(OPEN_HOUR))
    scenario = Scenario(
        name="history",
        description=f"{config.store_id} on {day.isoformat()}",
        start_local=start_local,
        duration_s=(CLOSE_HOUR - OPEN_HOUR) * 3600.0,
        rate_scale=style.rate_scale,
        behaviour=style.behaviour,
        n_staff=style.n_staff,
    )
    start_utc = scenario.start_utc(config.timezone)
    if until_utc is not None:
        open_s = (until_utc - start_utc).total_seconds()
        if open_s <= 0:
            return []
        scenario = scenario.with_duration(min(scenario.duration_s, open_s))
    seed = zlib.crc32(f"{config.store_id}:{day.isoformat()}".encode())
    sim = Simulation(config, scenario, seed)
    sim.finish()
    truth = compute_truth(sim, config.thresholds, dt_s=dt_s)
    if until_utc is not None:
        limit_s = (until_utc - start_utc).total_seconds()
        truth.visits = [v for v in truth.visits if v.end_s <= limit_s]
        first_minute = start_utc.replace(second=0, microsecond=0)
        keep_minutes = int(limit_s // 60) - 1 + int((start_utc - first_minute).total_seconds() // 60)
        truth.heat_s = {k: v for k, v in truth.heat_s.items() if k[0] <= keep_minutes}
    stamper = EventStamper(config.store_id, config.node_id, IdSource(seed))
    return truth.events(stamper)


def cached_store_day(
    config: NodeConfig, day: date, style: StoreStyle, cache_dir: Path, *, until_utc: datetime | None = None
) -> list[Envelope]:
    """`store_day_events`, kept as JSON lines under `cache_dir` (whole days only) for the next run."""
    path = cache_dir / config.store_id / f"{day.isoformat()}.jsonl"
    if until_utc is None and path.exists():
        return [parse_event(line) for line in path.read_bytes().splitlines() if line.strip()]
    events = store_day_events(config, day, style, until_utc=until_utc)
    if until_utc is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(b"".join(to_json(e) + b"\n" for e in events))
        tmp.replace(path)
    return events


def renumber(events: list[Envelope], first_seq: int) -> list[Envelope]:
    """The same events with `seq` counting up from `first_seq` in the given order."""
    return [e.model_copy(update={"seq": first_seq + i}) for i, e in enumerate(events)]


_TIME_FIELDS = ("ts", "started_at", "entered_at", "exited_at", "minute")


def derive_day(template: list[Envelope], shift_days: int, keep: float, seed: int) -> list[Envelope]:
    """Another day from a simulated one: a random `keep` share of its visits, `shift_days` later.

    The cheap way to weeks of history: a store's weekdays (or weekend days) share one simulated day,
    thinned to each day's own traffic. Visitor and event ids are new; heat is scaled by `keep`.
    """
    rng = random.Random(seed)
    ids = IdSource(seed)
    visitors = sorted({e.visitor_id for e in template if isinstance(e, VisitStarted)})
    kept = {v: ids.visitor_id() for v in visitors if rng.random() < keep}
    shift = timedelta(days=shift_days)
    out: list[Envelope] = []
    for event in template:
        data = json.loads(to_json(event))
        if "visitor_id" in data:
            if data["visitor_id"] not in kept:
                continue
            data["visitor_id"] = kept[data["visitor_id"]]
        for key in _TIME_FIELDS:
            if data.get(key) is not None:
                data[key] = format_ts(datetime.fromisoformat(data[key]) + shift)
        if data["type"] == "heat":
            data["cells"] = [
                [ix, iy, round(v * keep, 3)] for ix, iy, v in data["cells"] if round(v * keep, 3) > 0
            ]
            data["occupancy_max"] = round(data["occupancy_max"] * keep)
        data["event_id"] = ids.event_id(datetime.fromisoformat(data["ts"]))
        out.append(parse_event(data))
    return out


def cut_at(events: list[Envelope], until_utc: datetime) -> list[Envelope]:
    """Only what a node would have sent by `until_utc`: visits that had ended, heat of past minutes."""
    ended = {e.visitor_id for e in events if isinstance(e, VisitEnded) and e.ts <= until_utc}
    out = []
    for e in events:
        visitor = getattr(e, "visitor_id", None)
        if (visitor is not None and visitor not in ended) or e.ts > until_utc:
            continue
        out.append(e)
    return out


def history_plan(today: date, days: int, seed: int = 0) -> list[tuple[date, date, float]]:
    """(day, template day, keep share) for today and the `days` days before, newest first.

    Two simulated template days per store: the most recent Friday (weekday traffic at its busiest) and the
    most recent Saturday; every other day is derived from one of them, thinned to its weekday's traffic.
    """
    rng = random.Random(seed)
    out = []
    for back in range(days + 1):
        day = today - timedelta(days=back)
        weekend = day.weekday() >= 5
        template = _latest(today, 5 if weekend else 4)
        keep = 1.0
        if day != template:
            keep = DAY_FACTOR[day.weekday()] / DAY_FACTOR[template.weekday()] * rng.uniform(0.85, 1.0)
        out.append((day, template, keep))
    return out


def _latest(today: date, weekday: int) -> date:
    back = (today.weekday() - weekday) % 7 or 7
    return today - timedelta(days=back)


__all__ = [
    "StoreStyle",
    "cached_store_day",
    "cut_at",
    "derive_day",
    "history_plan",
    "renumber",
    "store_day_events",
]
