"""Read-only HTTP JSON API for brand systems, with an OpenAPI 3.1 description and bearer-token auth.

Built on the standard library's threading HTTP server: the API is a handful of GET routes over the
query layer, so a web framework would add a dependency tree without adding safety. Every route except
`/openapi.json` and `/healthz` needs `Authorization: Bearer <token>`; tokens are compared in constant
time. Each thread reads through its own read-only database connection.
"""

from __future__ import annotations

import csv
import hmac
import io
import json
import logging
import re
import threading
from collections.abc import Callable
from datetime import UTC, date, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse
from zoneinfo import ZoneInfo

from aggregator.export import COLUMNS, daily_metric_rows
from aggregator.queries import Queries
from aggregator.serialize import jsonable

log = logging.getLogger(__name__)

MAX_PERIOD_DAYS = 400


class ApiError(Exception):
    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _date_param(params: dict[str, list[str]], name: str) -> date:
    values = params.get(name)
    if not values:
        raise ApiError(HTTPStatus.BAD_REQUEST, f"query parameter {name!r} (YYYY-MM-DD) is required")
    try:
        return date.fromisoformat(values[0])
    except ValueError as exc:
        raise ApiError(HTTPStatus.BAD_REQUEST, f"{name}={values[0]!r} is not a YYYY-MM-DD date") from exc


def _as_of_param(q: Queries, store_id: str, params: dict[str, list[str]]) -> datetime | None:
    """`as_of` (RFC 3339; without an offset: the store's local time); None (now) when absent."""
    values = params.get("as_of")
    if not values:
        return None
    try:
        parsed = datetime.fromisoformat(values[0])
    except ValueError as exc:
        raise ApiError(
            HTTPStatus.BAD_REQUEST, f"as_of={values[0]!r} is not an RFC 3339 time such as 2026-11-20T10:00Z"
        ) from exc
    return (
        parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=ZoneInfo(q.store(store_id).timezone))
    )


def _instant_param(params: dict[str, list[str]]) -> datetime | None:
    """`as_of` with an offset (several stores: no one zone to read it in); None (now) when absent."""
    values = params.get("as_of")
    if not values:
        return None
    try:
        parsed = datetime.fromisoformat(values[0])
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise ApiError(
            HTTPStatus.BAD_REQUEST,
            f"as_of={values[0]!r} is not an RFC 3339 time with an offset (2026-11-20T10:00Z)",
        )
    return parsed


def _funnel(q: Queries, store_id: str, params: dict[str, list[str]]) -> Any:
    try:
        return q.funnel(store_id, _date_param(params, "date"), _as_of_param(q, store_id, params))
    except ValueError as exc:
        raise ApiError(HTTPStatus.BAD_REQUEST, str(exc)) from exc


def _period(params: dict[str, list[str]]) -> tuple[date, date]:
    start, end = _date_param(params, "start"), _date_param(params, "end")
    if end < start:
        raise ApiError(HTTPStatus.BAD_REQUEST, f"end {end} is before start {start}")
    if (end - start).days >= MAX_PERIOD_DAYS:
        raise ApiError(HTTPStatus.BAD_REQUEST, f"period longer than {MAX_PERIOD_DAYS} days")
    return start, end


def _opt(params: dict[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    return values[0] if values else None


Handler = Callable[[Queries, dict[str, str], dict[str, list[str]]], Any]


def _known_store(q: Queries, store_id: str) -> str:
    try:
        q.store(store_id)
    except KeyError as exc:
        raise ApiError(HTTPStatus.NOT_FOUND, f"unknown store {store_id!r}") from exc
    return store_id


ROUTES: list[tuple[re.Pattern[str], Handler]] = [
    (
        re.compile(r"^/v1/stores$"),
        lambda q, _p, a: q.stores(brand=_opt(a, "brand"), region=_opt(a, "region")),
    ),
    (
        re.compile(r"^/v1/stores/(?P<store>[a-z0-9_-]+)/funnel$"),
        lambda q, p, a: _funnel(q, _known_store(q, p["store"]), a),
    ),
    (
        re.compile(r"^/v1/stores/(?P<store>[a-z0-9_-]+)/hourly$"),
        lambda q, p, a: q.hourly_traffic(_known_store(q, p["store"]), _date_param(a, "date")),
    ),
    (
        re.compile(r"^/v1/stores/(?P<store>[a-z0-9_-]+)/daily$"),
        lambda q, p, a: q.daily_series(_known_store(q, p["store"]), *_period(a)),
    ),
    (
        re.compile(r"^/v1/stores/(?P<store>[a-z0-9_-]+)/cars$"),
        lambda q, p, a: q.car_ranking(_known_store(q, p["store"]), *_period(a)),
    ),
    (
        re.compile(r"^/v1/stores/(?P<store>[a-z0-9_-]+)/health$"),
        lambda q, p, a: q.health(_known_store(q, p["store"]), *_period(a)),
    ),
    (
        re.compile(r"^/v1/stores/(?P<store>[a-z0-9_-]+)/heatmap$"),
        lambda q, p, a: q.heatmap(_known_store(q, p["store"]), *_period(a)),
    ),
    (
        re.compile(r"^/v1/stores/(?P<store>[a-z0-9_-]+)/audits$"),
        lambda q, p, _a: q.audits(_known_store(q, p["store"])),
    ),
    (re.compile(r"^/v1/audits$"), lambda q, _p, _a: q.audit_status(datetime.now(UTC))),
    (
        re.compile(r"^/v1/league$"),
        lambda q, _p, a: q.league(*_period(a), brand=_opt(a, "brand"), region=_opt(a, "region")),
    ),
    (
        re.compile(r"^/v1/league-report$"),
        lambda q, _p, a: q.league_report(
            *_period(a), _instant_param(a), brand=_opt(a, "brand"), region=_opt(a, "region")
        ),
    ),
    (re.compile(r"^/v1/nodes$"), lambda q, _p, a: q.nodes(a.get("store"))),
    (re.compile(r"^/v1/daily-metrics$"), lambda q, _p, a: daily_metric_rows(q, *_period(a), a.get("store"))),
]


def _param(name: str, required: bool, description: str, fmt: str | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    if fmt:
        schema["format"] = fmt
    return {"name": name, "in": "query", "required": required, "description": description, "schema": schema}


def openapi() -> dict[str, Any]:
    """The OpenAPI 3.1 description of the API."""
    store = {"name": "store_id", "in": "path", "required": True, "schema": {"type": "string"}}
    day = _param("date", True, "Store-local day", "date")
    period = [_param("start", True, "First local day", "date"), _param("end", True, "Last local day", "date")]
    filt = [_param("brand", False, "Brand id"), _param("region", False, "Region")]
    ok = {"200": {"description": "JSON", "content": {"application/json": {"schema": {}}}}}
    errors = {
        "400": {"description": "Bad parameter (the message says which)"},
        "401": {"description": "Missing or wrong bearer token"},
        "404": {"description": "Unknown store or route"},
    }

    def op(summary: str, params: list[dict[str, Any]]) -> dict[str, Any]:
        return {"get": {"summary": summary, "parameters": params, "responses": {**ok, **errors}}}

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Showroom Vision aggregator API",
            "version": "1",
            "description": "Read-only store metrics: funnels, hourly traffic, cars, heatmaps, health, nodes.",
        },
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
        "paths": {
            "/v1/stores": op("Stores of the registry", filt),
            "/v1/stores/{store_id}/funnel": op(
                "A day's funnel with day-over-day and week-over-week (a day in progress compared up to "
                "the same local time; count changes as fractions, rate changes in percentage points)",
                [store, day, _param("as_of", False, "Instant to read at (default now)", "date-time")],
            ),
            "/v1/stores/{store_id}/hourly": op("Visitors per local hour beside last week", [store, day]),
            "/v1/stores/{store_id}/daily": op("Daily funnel figures over a period", [store, *period]),
            "/v1/stores/{store_id}/cars": op("Per display car: browsers, dwell, entries", [store, *period]),
            "/v1/stores/{store_id}/health": op(
                "Health score against the brand's TOP and average", [store, *period]
            ),
            "/v1/stores/{store_id}/heatmap": op("Person-seconds per floor cell", [store, *period]),
            "/v1/stores/{store_id}/audits": op(
                "Door-count audits: manual and system counts, accuracy; the latest sample first", [store]
            ),
            "/v1/audits": op("Every store's last door-count audit, stale or never-audited stores first", []),
            "/v1/league": op("Stores ranked by health with period figures", [*period, *filt]),
            "/v1/league-report": op(
                "Stores ranked within their brand with the change against the period before, outliers, "
                "partial and missing days, totals per brand and region",
                [
                    *period,
                    *filt,
                    _param("as_of", False, "Instant to read at, with offset (default now)", "date-time"),
                ],
            ),
            "/v1/nodes": op("Edge node health", [_param("store", False, "Store id (repeatable)")]),
            "/v1/daily-metrics": op(
                "Daily store metrics (JSON, or CSV with Accept: text/csv)",
                [*period, _param("store", False, "Store id (repeatable)")],
            ),
        },
    }


class ApiServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], db_path: str | Path, tokens: list[str]) -> None:
        if not tokens or any(len(t) < 16 for t in tokens):
            raise ValueError("the API needs at least one bearer token of 16 or more characters")
        super().__init__(address, _Handler)
        self.db_path = db_path
        self.tokens = [t.encode() for t in tokens]
        self._local = threading.local()

    def queries(self) -> Queries:
        q: Queries | None = getattr(self._local, "queries", None)
        if q is None:
            q = Queries.open(self.db_path)
            self._local.queries = q
        return q

    def authorised(self, header: str | None) -> bool:
        if not header or not header.startswith("Bearer "):
            return False
        given = header[len("Bearer ") :].strip().encode()
        return any(hmac.compare_digest(given, t) for t in self.tokens)


class _Handler(BaseHTTPRequestHandler):
    server: ApiServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def _send(self, status: HTTPStatus, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        if status == HTTPStatus.UNAUTHORIZED:
            self.send_header("WWW-Authenticate", 'Bearer realm="showroom"')
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: HTTPStatus, value: Any) -> None:
        self._send(status, json.dumps(jsonable(value), ensure_ascii=False).encode())

    def do_GET(self) -> None:
        url = urlparse(self.path)
        if url.path == "/openapi.json":
            return self._json(HTTPStatus.OK, openapi())
        if url.path == "/healthz":
            return self._json(HTTPStatus.OK, {"status": "ok"})
        if not self.server.authorised(self.headers.get("Authorization")):
            return self._json(HTTPStatus.UNAUTHORIZED, {"error": "missing or wrong bearer token"})
        params = parse_qs(url.query)
        for pattern, handler in ROUTES:
            m = pattern.match(url.path)
            if m is None:
                continue
            try:
                result = handler(self.server.queries(), m.groupdict(), params)
            except ApiError as exc:
                return self._json(exc.status, {"error": exc.message})
            except Exception:
                log.exception("error serving %s", self.path)
                return self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal error"})
            if url.path == "/v1/daily-metrics" and "text/csv" in (self.headers.get("Accept") or ""):
                buf = io.StringIO()
                writer = csv.DictWriter(buf, fieldnames=COLUMNS)
                writer.writeheader()
                writer.writerows(result)
                return self._send(HTTPStatus.OK, buf.getvalue().encode(), "text/csv; charset=utf-8")
            return self._json(HTTPStatus.OK, result)
        return self._json(HTTPStatus.NOT_FOUND, {"error": f"no route {url.path}"})

    def do_POST(self) -> None:
        self._json(HTTPStatus.METHOD_NOT_ALLOWED, {"error": "the API is read-only"})

    do_PUT = do_DELETE = do_PATCH = do_POST  # noqa: N815
