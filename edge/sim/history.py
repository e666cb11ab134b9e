"""Backfilled history: whole store days simulated and turned into the contract events a node would have sent.

Each store day runs the simulator over opening hours with the daily rhythm (scaled per store), computes
the ground truth and emits its events (visits, dwells, car entries, receptions, per-minute heat). They go
to the aggregator through its real ingest, so dashboards have days and weeks to compare with.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path

from edge.config import NodeConfig
from edge.events import Envelope, EventStamper, IdSource, parse_event, to_json
from edge.sim.behaviour import CLOSE_HOUR, OPEN_HOUR, BehaviourParams
from edge.sim.scenarios import Scenario
from edge.sim.simulation import Simulation
from edge.sim.truth import compute_truth


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


__all__ = ["StoreStyle", "cached_store_day", "renumber", "store_day_events"]
