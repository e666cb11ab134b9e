"""Read-only HTTP JSON API for brand systems: FastAPI on uvicorn, OpenAPI generated from the route types.

Every route except `/openapi.json` and `/healthz` needs `Authorization: Bearer <token>`; a token reads the
stores of its scope only (`aggregator.tokens`): another store answers 404, as an unknown one does. Limits
are declared in the OpenAPI description and enforced: dates within `FIRST_DAY`..`LAST_DAY`, periods of at
most `MAX_PERIOD_DAYS`. The server bounds what a client can hold: a connection that has not sent a whole
request within `header_timeout_s` is closed (so half-open connections cost nothing lasting), a request
that runs longer than `request_timeout_s` is answered 503, and at most `limit_concurrency` connections are
served at once. Each worker thread reads through its own read-only database connection.
"""

import asyncio
import csv
import io
import logging
import socket
import ssl
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import uvicorn
from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AfterValidator, StringConstraints
from starlette.exceptions import HTTPException as StarletteHTTPException
from uvicorn.protocols.http.h11_impl import H11Protocol

from aggregator.api_limits import ApiLimits
from aggregator.export import COLUMNS, daily_metric_rows
from aggregator.league import totals as league_totals
from aggregator.queries import Queries
from aggregator.serialize import jsonable
from aggregator.tokens import Scope, TokenBook
from edge.events import ID_PATTERN

log = logging.getLogger(__name__)

MAX_PERIOD_DAYS = 400
FIRST_DAY = date(2000, 1, 1)
LAST_DAY = date(2099, 12, 31)
JSON = Any
DEFAULT_LIMITS = ApiLimits()


# ---------------------------------------------------------------------------------------------------
# Parameters
# ---------------------------------------------------------------------------------------------------

_DAY_RULE = f"between {FIRST_DAY} and {LAST_DAY}"
_DAY_PATTERN = r"^20[0-9]{2}-[0-9]{2}-[0-9]{2}$"
"""`FIRST_DAY`..`LAST_DAY` as the schema declares it (JSON Schema has no bounds for dates)."""


def _day(description: str) -> Any:
    return Query(description=description, json_schema_extra={"pattern": _DAY_PATTERN})


def _in_range(day: date) -> date:
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ValueError(f"the day must be {_DAY_RULE}")
    return day


StoreIdText = Annotated[str, StringConstraints(pattern=ID_PATTERN, max_length=64)]
StoreId = Annotated[str, PathParam(pattern=ID_PATTERN, max_length=64, description="Store id.")]
Day = Annotated[date, AfterValidator(_in_range), _day(f"Store-local day, {_DAY_RULE}.")]
Start = Annotated[date, AfterValidator(_in_range), _day(f"First local day, {_DAY_RULE}.")]
End = Annotated[
    date,
    AfterValidator(_in_range),
    _day(
        f"Last local day, {_DAY_RULE}; not before `start`, at most {MAX_PERIOD_DAYS - 1} days after it "
        f"(a period of at most {MAX_PERIOD_DAYS} days); otherwise 400."
    ),
]
Brand = Annotated[str | None, Query(max_length=64, description="Brand id.")]
Region = Annotated[str | None, Query(max_length=100, description="Region.")]
Stores = Annotated[list[StoreIdText] | None, Query(max_length=500, description="Store id (repeatable).")]
AsOf = Annotated[
    datetime | None,
    Query(
        description="Instant to read at (RFC 3339; without an offset: the store's local time). Default: now. "
        "A day in progress at it is compared with earlier days up to the same local time; an instant "
        "before `date` begins answers 400."
    ),
]
AsOfInstant = Annotated[
    datetime | None,
    Query(description="Instant to read at (RFC 3339 with an offset: stores differ in zone). Default: now."),
]


def _in_zone(at: datetime, timezone: str) -> datetime:
    """`at`, read in the store's zone when it has no offset."""
    return at if at.tzinfo is not None else at.replace(tzinfo=ZoneInfo(timezone))


@dataclass(frozen=True)
class Period:
    start: date
    end: date


def _period(start: Start, end: End) -> Period:
    if end < start:
        raise HTTPException(400, f"end {end} is before start {start}")
    if (end - start).days >= MAX_PERIOD_DAYS:
        raise HTTPException(400, f"period {start} to {end} is longer than {MAX_PERIOD_DAYS} days")
    return Period(start, end)


# ---------------------------------------------------------------------------------------------------
# The application
# ---------------------------------------------------------------------------------------------------

_bearer = HTTPBearer(
    auto_error=False, scheme_name="bearer", description="A token from a token file or `token create`."
)


class _Context:
    """Per app: the database, the token book and a read-only connection per worker thread."""

    def __init__(self, db_path: str | Path, book: TokenBook) -> None:
        self.db_path = db_path
        self.book = book
        self._local = threading.local()
        self._lock = threading.Lock()
        self._opened: list[Queries] = []

    def queries(self) -> Queries:
        q: Queries | None = getattr(self._local, "queries", None)
        if q is None:
            q = Queries.open(self.db_path)
            self._local.queries = q
            with self._lock:
                self._opened.append(q)
        return q

    def close(self) -> None:
        """Close every worker thread's connection (the server has stopped)."""
        with self._lock:
            opened, self._opened = self._opened, []
        for q in opened:
            q.close()


def _error(status: int, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Bearer realm="showroom"'} if status == 401 else None
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _problems(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("query", "path"))
        got = repr(err.get("input"))[:60]
        parts.append(f"{where}: {err.get('msg')} (got {got})")
    return "; ".join(parts) or "bad request"


def create_app(db_path: str | Path, book: TokenBook, limits: ApiLimits = DEFAULT_LIMITS) -> FastAPI:
    """The API over the database at `db_path`, with `book` deciding what each token reads."""
    ctx = _Context(db_path, book)
    app = FastAPI(
        title="Showroom Vision aggregator API",
        version="1",
        description="Read-only store metrics: funnels, hourly traffic, cars, heatmaps, health, nodes. "
        f"Dates are {_DAY_RULE}; periods are at most {MAX_PERIOD_DAYS} days.",
        docs_url=None,
        redoc_url=None,
    )
    app.state.context = ctx

    @app.exception_handler(RequestValidationError)
    async def _bad_request(_r: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(400, _problems(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_r: Request, exc: StarletteHTTPException) -> JSONResponse:
        response = _error(exc.status_code, str(exc.detail))
        response.headers.update(exc.headers or {})  # e.g. `Allow` on 405
        return response

    @app.middleware("http")
    async def _guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        try:
            response = await asyncio.wait_for(call_next(request), limits.request_timeout_s)
        except TimeoutError:
            log.warning("%s %s ran over %.0f s", request.method, request.url.path, limits.request_timeout_s)
            return _error(503, f"request took longer than {limits.request_timeout_s:g} s")
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    def queries() -> Queries:
        return ctx.queries()

    def scope(
        cred: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        q: Annotated[Queries, Depends(queries)],
    ) -> Scope:
        found = None if cred is None else ctx.book.scope_of(cred.credentials, q.storage)
        if found is None:
            raise HTTPException(401, "missing or wrong bearer token")
        return found

    Q = Annotated[Queries, Depends(queries)]  # noqa: N806
    S = Annotated[Scope, Depends(scope)]  # noqa: N806
    P = Annotated[Period, Depends(_period)]  # noqa: N806

    def known(q: Queries, s: Scope, store_id: str) -> str:
        try:
            info = q.store(store_id)
        except KeyError:
            info = None
        if info is None or not s.allows(info.store_id, info.brand):
            raise HTTPException(404, f"unknown store {store_id!r}")
        return store_id

    def in_scope(q: Queries, s: Scope) -> set[str]:
        return {i.store_id for i in q.stores() if s.allows(i.store_id, i.brand)}

    def answer(value: Any) -> JSONResponse:
        return JSONResponse(jsonable(value))

    ok: dict[int | str, dict[str, Any]] = {
        400: {"description": "Bad parameter (the message says which)"},
        401: {"description": "Missing or wrong bearer token"},
        404: {"description": "Unknown store (or one outside the token's scope)"},
        503: {"description": "Request ran over the server's time limit, or the server is full"},
    }

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/stores", summary="Stores of the registry", responses=ok)
    def stores(q: Q, s: S, brand: Brand = None, region: Region = None) -> JSON:
        return answer([i for i in q.stores(brand=brand, region=region) if s.allows(i.store_id, i.brand)])

    @app.get(
        "/v1/stores/{store_id}/funnel",
        summary="A day's funnel with day-over-day and week-over-week (a day in progress compared up to the "
        "same local time; count changes as fractions, rate changes in percentage points)",
        responses=ok,
    )
    def funnel(q: Q, s: S, store_id: StoreId, date: Day, as_of: AsOf = None) -> JSON:
        known(q, s, store_id)
        at = None if as_of is None else _in_zone(as_of, q.store(store_id).timezone)
        try:
            return answer(q.funnel(store_id, date, at))
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from exc

    @app.get("/v1/stores/{store_id}/hourly", summary="Visitors per local hour beside last week", responses=ok)
    def hourly(q: Q, s: S, store_id: StoreId, date: Day) -> JSON:
        return answer(q.hourly_traffic(known(q, s, store_id), date))

    @app.get("/v1/stores/{store_id}/daily", summary="Daily funnel figures over a period", responses=ok)
    def daily(q: Q, s: S, store_id: StoreId, p: P) -> JSON:
        return answer(q.daily_series(known(q, s, store_id), p.start, p.end))

    @app.get("/v1/stores/{store_id}/cars", summary="Per display car: browsers, dwell, entries", responses=ok)
    def cars(q: Q, s: S, store_id: StoreId, p: P) -> JSON:
        return answer(q.car_ranking(known(q, s, store_id), p.start, p.end))

    @app.get(
        "/v1/stores/{store_id}/health",
        summary="Health score against the brand's TOP and average",
        responses=ok,
    )
    def health(q: Q, s: S, store_id: StoreId, p: P) -> JSON:
        return answer(q.health(known(q, s, store_id), p.start, p.end))

    @app.get("/v1/stores/{store_id}/heatmap", summary="Person-seconds per floor cell", responses=ok)
    def heatmap(q: Q, s: S, store_id: StoreId, p: P) -> JSON:
        return answer(q.heatmap(known(q, s, store_id), p.start, p.end))

    @app.get(
        "/v1/stores/{store_id}/audits",
        summary="Door-count audits: manual and system counts, accuracy; the latest sample first",
        responses=ok,
    )
    def audits(q: Q, s: S, store_id: StoreId) -> JSON:
        return answer(q.audits(known(q, s, store_id)))

    @app.get(
        "/v1/audits",
        summary="Every store's last door-count audit, stale or never-audited stores first",
        responses=ok,
    )
    def audit_status(q: Q, s: S) -> JSON:
        mine = in_scope(q, s)
        return answer([a for a in q.audit_status(datetime.now(UTC)) if a.store_id in mine])

    @app.get("/v1/league", summary="Stores ranked by health with period figures", responses=ok)
    def league(q: Q, s: S, p: P, brand: Brand = None, region: Region = None) -> JSON:
        mine = in_scope(q, s)
        rows = q.league(p.start, p.end, brand=brand, region=region)
        return answer([r for r in rows if r.store.store_id in mine])

    @app.get(
        "/v1/league-report",
        summary="Stores ranked within their brand with the change against the period before, outliers, "
        "partial and missing days, totals per brand and region",
        responses=ok,
    )
    def league_report(
        q: Q, s: S, p: P, brand: Brand = None, region: Region = None, as_of: AsOfInstant = None
    ) -> JSON:
        if as_of is not None and as_of.tzinfo is None:
            raise HTTPException(400, f"as_of={as_of.isoformat()!r} needs an offset (2026-11-20T10:00Z)")
        mine = in_scope(q, s)
        report = q.league_report(p.start, p.end, as_of, brand=brand, region=region)
        entries = tuple(e for e in report.entries if e.store_id in mine)
        return answer(
            replace(
                report,
                entries=entries,
                brands=league_totals(entries, "brand"),
                regions=league_totals(entries, "region"),
            )
        )

    @app.get("/v1/nodes", summary="Edge node health", responses=ok)
    def nodes(q: Q, s: S, store: Stores = None) -> JSON:
        mine = in_scope(q, s)
        wanted = sorted(mine if store is None else mine & set(store))
        return answer(q.nodes(wanted) if wanted else [])

    @app.get(
        "/v1/daily-metrics",
        summary="Daily store metrics (JSON, or CSV with Accept: text/csv)",
        responses={**ok, 200: {"content": {"application/json": {}, "text/csv": {}}}},
    )
    def daily_metrics(request: Request, q: Q, s: S, p: P, store: Stores = None) -> JSON:
        mine = in_scope(q, s)
        wanted = sorted(mine if store is None else mine & set(store))
        rows = daily_metric_rows(q, p.start, p.end, wanted)
        if "text/csv" in request.headers.get("accept", ""):
            buf = io.StringIO()
            writer = csv.DictWriter(buf, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
            return Response(buf.getvalue(), media_type="text/csv; charset=utf-8")
        return answer(rows)

    return app


# ---------------------------------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------------------------------


class _GuardedH11(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, closing a connection that has not begun a request within the header
    timeout (at the start, or after its previous response): uvicorn itself only times out idle
    keep-alive connections, and any byte received cancels that."""

    header_timeout_s = 10.0
    _guard: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def _arm(self) -> None:
        waiting_for = self.cycle
        if self._guard is not None:
            self._guard.cancel()
        self._guard = self.loop.call_later(self.header_timeout_s, self._expire, waiting_for)

    def _expire(self, waiting_for: object) -> None:
        if self.cycle is waiting_for and not self.transport.is_closing():
            self.transport.close()  # no request began in time

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._guard is not None:
            self._guard.cancel()
        super().connection_lost(exc)


class ApiServer:
    """The API on a bound socket: `serve_forever()` (blocking), `shutdown()` from another thread."""

    def __init__(
        self,
        address: tuple[str, int],
        db_path: str | Path,
        book: TokenBook | Sequence[str],
        *,
        limits: ApiLimits = DEFAULT_LIMITS,
        certfile: Path | None = None,
        keyfile: Path | None = None,
    ) -> None:
        """`book`: the token book, or the operator's tokens (they read every store)."""
        if not isinstance(book, TokenBook):
            book = TokenBook(book)
        protocol = type("GuardedH11", (_GuardedH11,), {"header_timeout_s": limits.header_timeout_s})
        self.tls = certfile is not None
        self.socket = socket.create_server(address, backlog=2048)
        self.server_port: int = self.socket.getsockname()[1]
        app = create_app(db_path, book, limits)
        self._context: _Context = app.state.context
        config = uvicorn.Config(
            app,
            http=protocol,
            lifespan="off",
            log_config=None,
            limit_concurrency=limits.limit_concurrency,
            timeout_keep_alive=int(max(1, limits.header_timeout_s)),
            server_header=False,
            ssl_certfile=str(certfile) if certfile else None,
            ssl_keyfile=str(keyfile) if keyfile else None,
            ssl_cert_reqs=ssl.CERT_NONE,
        )
        self._server = uvicorn.Server(config)
        self._done = threading.Event()

    def serve_forever(self) -> None:
        try:
            self._server.run(sockets=[self.socket])
        finally:
            self._done.set()

    def shutdown(self, timeout_s: float = 10.0) -> None:
        self._server.should_exit = True
        self._done.wait(timeout_s)

    def server_close(self) -> None:
        self.socket.close()
        self._context.close()


__all__ = ["FIRST_DAY", "LAST_DAY", "MAX_PERIOD_DAYS", "ApiLimits", "ApiServer", "create_app"]
