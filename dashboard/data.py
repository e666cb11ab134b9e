"""The dashboard's only door to the data: the aggregator's query layer, scoped to the logged-in user.

`ScopedData` wraps `aggregator.queries.Queries` and checks, on every call, that the user's role and
assignment allow it: a store manager gets their own stores only, brand HQ the stores of their brands,
an installer node health only. Views never hold a `Queries` object, so no view can forget a check.
Results may come from a cache (`fetch`), but the check always runs first.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from aggregator.audit import Audit
from aggregator.league import LeagueEntry, LeagueReport, totals
from aggregator.queries import (
    AuditStatus,
    DailyMetrics,
    Funnel,
    Health,
    Heatmap,
    HistoryLoading,
    HourTraffic,
    LeagueRow,
    NodeHealth,
    Occupancy,
    Queries,
    SilentStore,
    StoreInfo,
    StorePage,
    ZoneComparison,
    ZoneOccupancy,
)
from aggregator.zones import FloorZone
from dashboard.auth import AccessDeniedError, User

Fetch = Callable[[str, tuple[Any, ...]], Any]
"""(Queries method name, positional arguments) -> result; may serve from a cache."""

_opened: dict[str, tuple[Queries, threading.Lock]] = {}
_opening = threading.Lock()


def open_queries(db: Path | str) -> tuple[Queries, threading.Lock]:
    """The process's read-only `Queries` on `db` and the lock that serialises its use.

    One connection per database for every session: Streamlit runs each rerun on a fresh thread, so a
    per-thread connection would be reopened (and its registry cache lost) on every click.
    """
    key = str(db)
    with _opening:
        if key not in _opened:
            _opened[key] = (Queries.open(key), threading.Lock())
        return _opened[key]


def direct_fetch(db: Path | str) -> Fetch:
    """A fetch that always asks the database."""

    def fetch(method: str, args: tuple[Any, ...]) -> Any:
        queries, lock = open_queries(db)
        with lock:
            return getattr(queries, method)(*args)

    return fetch


class ScopedData:
    """The aggregator's queries, restricted to what `user` may see. Every method checks first."""

    def __init__(self, fetch: Fetch, user: User) -> None:
        self._fetch = fetch
        self.user = user
        self._stores: list[StoreInfo] | None = None

    # -- scope ----------------------------------------------------------------------------------------

    def stores(self) -> list[StoreInfo]:
        """The stores this user may see, sorted by id (read once per instance: one per page run, and every
        other method checks its store against this list)."""
        if self._stores is None:
            every: list[StoreInfo] = self._fetch("stores", ())
            self._stores = [s for s in every if self.user.can_see_store(s.store_id, s.brand or None)]
        return list(self._stores)

    def store(self, store_id: str) -> StoreInfo:
        """One store the user may see; AccessDeniedError otherwise (also for ids that do not exist)."""
        for s in self.stores():
            if s.store_id == store_id:
                return s
        raise AccessDeniedError(f"user {self.user.username!r} may not see store {store_id!r}")

    def _figures_of(self, store_id: str) -> StoreInfo:
        if not self.user.sees_visitor_figures:
            raise AccessDeniedError(f"role {self.user.role!r} does not see visitor figures")
        return self.store(store_id)

    # -- one store ------------------------------------------------------------------------------------

    def store_page(self, store_id: str, day: date, start: date, end: date, as_of: datetime) -> StorePage:
        """Every figure of the store page from one database snapshot, as one cache entry per page and
        period: the funnel, hourly traffic, occupancy, heatmap, cars, health and audit cannot disagree.
        `as_of` is the instant the page reads at (round it to a minute so reloads share the entry)."""
        self._figures_of(store_id)
        result: StorePage = self._fetch("store_page", (store_id, day, start, end, as_of))
        return result

    def funnel(self, store_id: str, day: date, as_of: datetime | None = None) -> Funnel:
        self._figures_of(store_id)
        result: Funnel = self._fetch("funnel", (store_id, day) if as_of is None else (store_id, day, as_of))
        return result

    def zone_comparison(
        self, store_id: str, start: date, end: date, extra_zones: tuple[FloorZone, ...] = ()
    ) -> ZoneComparison:
        """Person-seconds per floor zone over the period beside the period before, ranked."""
        self._figures_of(store_id)
        result: ZoneComparison = self._fetch("zone_comparison", (store_id, start, end, extra_zones))
        return result

    def floor_image(self, store_id: str) -> bytes | None:
        """The store's floor plan drawing (PNG), None without one."""
        self.store(store_id)
        result: bytes | None = self._fetch("floor_image", (store_id,))
        return result

    def history_loading(self, store_id: str) -> HistoryLoading | None:
        """The store's history backfill while it runs ("history loading (n of m days)"); None when done."""
        self.store(store_id)
        result: HistoryLoading | None = self._fetch("history_loading", (store_id,))
        return result

    def hourly_traffic(self, store_id: str, day: date) -> list[HourTraffic]:
        self._figures_of(store_id)
        result: list[HourTraffic] = self._fetch("hourly_traffic", (store_id, day))
        return result

    def heatmap(self, store_id: str, start: date, end: date) -> Heatmap:
        self._figures_of(store_id)
        result: Heatmap = self._fetch("heatmap", (store_id, start, end))
        return result

    def heatmap_hours(self, store_id: str, start_utc: datetime, end_utc: datetime) -> Heatmap:
        self._figures_of(store_id)
        result: Heatmap = self._fetch("heatmap_hours", (store_id, start_utc, end_utc))
        return result

    def car_ranking(self, store_id: str, start: date, end: date) -> list[Any]:
        self._figures_of(store_id)
        result: list[Any] = self._fetch("car_ranking", (store_id, start, end))
        return result

    def first_day(self, store_id: str) -> date | None:
        self._figures_of(store_id)
        result: date | None = self._fetch("first_day", (store_id,))
        return result

    def occupancy_now(self, store_id: str, now: datetime) -> Occupancy:
        self._figures_of(store_id)
        result: Occupancy = self._fetch("occupancy_now", (store_id, now))
        return result

    def zone_occupancy_now(self, store_id: str, now: datetime) -> ZoneOccupancy:
        """Visitors in each floor zone from the nodes' latest minute of heat."""
        self._figures_of(store_id)
        result: ZoneOccupancy = self._fetch("zone_occupancy_now", (store_id, now))
        return result

    def daily_series(self, store_id: str, start: date, end: date) -> list[DailyMetrics]:
        self._figures_of(store_id)
        result: list[DailyMetrics] = self._fetch("daily_series", (store_id, start, end))
        return result

    def health(self, store_id: str, start: date, end: date) -> Health:
        self._figures_of(store_id)
        result: Health = self._fetch("health", (store_id, start, end))
        return result

    # -- many stores ----------------------------------------------------------------------------------

    def league(
        self, start: date, end: date, brand: str | None = None, region: str | None = None
    ) -> list[LeagueRow]:
        """League rows of the visible stores only, re-ranked within what the user sees."""
        if self.user.role != "brand_hq":
            raise AccessDeniedError(f"role {self.user.role!r} has no league table")
        if brand is not None and brand not in self.user.brands:
            raise AccessDeniedError(f"user {self.user.username!r} may not see brand {brand!r}")
        brands = [brand] if brand is not None else sorted(self.user.brands)
        rows: list[LeagueRow] = []
        for b in brands:
            rows.extend(self._fetch("league", (start, end, b, region)))
        rows = [r for r in rows if self.user.can_see_store(r.store.store_id, r.store.brand or None)]
        rows.sort(key=lambda r: (r.health is None, -(r.health or 0.0), r.store.store_id))
        return [
            LeagueRow(i + 1, r.store, r.figures, r.health, r.partial, r.as_of) for i, r in enumerate(rows)
        ]

    def league_report(
        self,
        start: date,
        end: date,
        as_of: datetime,
        brand: str | None = None,
        region: str | None = None,
    ) -> LeagueReport:
        """HQ's league of the visible stores (`Queries.league_report`): change against the period before,
        ranks within each brand with its size, outliers, partial and missing days; totals per brand and
        region over the visible stores. Health is still scored against each brand's every store."""
        if self.user.role != "brand_hq":
            raise AccessDeniedError(f"role {self.user.role!r} has no league table")
        if brand is not None and brand not in self.user.brands:
            raise AccessDeniedError(f"user {self.user.username!r} may not see brand {brand!r}")
        entries: list[LeagueEntry] = []
        report: LeagueReport | None = None
        for b in [brand] if brand is not None else sorted(self.user.brands):
            report = self._fetch("league_report", (start, end, as_of, b, region))
            entries.extend(e for e in report.entries if self.user.can_see_store(e.store_id, e.brand or None))
        if report is None:
            raise AccessDeniedError(f"user {self.user.username!r} has no brand")
        return replace(
            report, entries=tuple(entries), brands=totals(entries, "brand"), regions=totals(entries, "region")
        )

    def silent_stores(self, now: datetime, after: timedelta) -> list[SilentStore]:
        visible = {s.store_id for s in self.stores()}
        every: list[SilentStore] = self._fetch("silent_stores", (now, after))
        return [s for s in every if s.store_id in visible]

    def audit_status(self, now: datetime) -> list[AuditStatus]:
        """Door-count audit standing of the visible stores, stale ones first."""
        visible = {s.store_id for s in self.stores()}
        every: list[AuditStatus] = self._fetch("audit_status", (now,))
        return [a for a in every if a.store_id in visible]

    def last_audit(self, store_id: str) -> Audit | None:
        """The store's latest door-count audit (None: never audited)."""
        self.store(store_id)
        audits: list[Audit] = self._fetch("audits", (store_id, 1))
        return audits[0] if audits else None

    def nodes(self, store_ids: Sequence[str] | None = None, now: datetime | None = None) -> list[NodeHealth]:
        """Node health of the visible stores (of `store_ids` among them when given)."""
        visible = [s.store_id for s in self.stores()]
        if store_ids is not None:
            for store_id in store_ids:
                if store_id not in visible:
                    raise AccessDeniedError(f"user {self.user.username!r} may not see store {store_id!r}")
            visible = list(store_ids)
        if not visible:
            return []
        result: list[NodeHealth] = self._fetch("nodes", (tuple(visible), now or datetime.now(UTC)))
        return result
