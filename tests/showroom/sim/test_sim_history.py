"""Backfilled history: derived days keep their share of visits, move in time, get new ids; today is cut."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from edge.config import load_config
from edge.events import EventStamper, Heat, IdSource, VisitEnded, VisitStarted, parse_event, to_json
from edge.sim.scenarios import get_scenario
from edge.sim.simulation import Simulation
from showroom.sim.evaluate import measure
from showroom.sim.history import cut_at, derive_day, history_plan
from showroom.sim.truth import compute_truth

CONFIG = load_config(Path(__file__).parents[3] / "examples" / "sim-store.yaml")


@pytest.fixture(scope="module")
def template() -> list:  # type: ignore[type-arg]
    sim = Simulation(CONFIG, get_scenario("saturday-peak").with_duration(1200), seed=8)
    sim.finish()
    return compute_truth(sim, dt_s=0.5).events(EventStamper(CONFIG.store_id, CONFIG.node_id, IdSource(8)))


def test_a_derived_day_keeps_its_share_of_whole_visits_a_week_later(template: list) -> None:  # type: ignore[type-arg]
    derived = derive_day(template, 7, 0.6, seed=1)
    base, out = measure(template, CONFIG.thresholds), measure(derived, CONFIG.thresholds)
    assert out.visitors == pytest.approx(0.6 * base.visitors, abs=0.15 * base.visitors)
    started = {e.visitor_id for e in derived if isinstance(e, VisitStarted)}
    ended = {e.visitor_id for e in derived if isinstance(e, VisitEnded)}
    assert started == ended  # visits are kept or dropped whole
    assert not started & {e.visitor_id for e in template if isinstance(e, VisitStarted)}  # new visitor ids
    assert min(e.ts for e in derived) - min(e.ts for e in template) >= timedelta(days=7) - timedelta(
        minutes=5
    )
    assert all(parse_event(to_json(e)) == e for e in derived)
    heat_ratio = out.heat_person_s / base.heat_person_s
    assert heat_ratio == pytest.approx(0.6, abs=0.01)
    assert len({e.event_id for e in derived}) == len(derived)


def test_cut_at_keeps_only_what_had_ended(template: list) -> None:  # type: ignore[type-arg]
    middle = min(e.ts for e in template) + (max(e.ts for e in template) - min(e.ts for e in template)) / 2
    cut = cut_at(template, middle)
    assert all(e.ts <= middle for e in cut)
    started = {e.visitor_id for e in cut if isinstance(e, VisitStarted)}
    assert started == {e.visitor_id for e in cut if isinstance(e, VisitEnded)}
    assert any(isinstance(e, Heat) for e in cut) and 0 < len(cut) < len(template)


def test_history_plan_derives_weekdays_from_friday_and_weekends_from_saturday() -> None:
    monday = date(2026, 11, 23)
    plan = history_plan(monday, 14)
    assert [d for d, _, _ in plan] == [monday - timedelta(days=i) for i in range(15)]
    for day, template, keep in plan:
        assert template.weekday() == (5 if day.weekday() >= 5 else 4)
        assert template < monday and 0 < keep <= 1.0
        assert (keep == 1.0) == (day == template)
