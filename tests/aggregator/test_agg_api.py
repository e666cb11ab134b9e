"""The read-only HTTP API: bearer auth, OpenAPI description, JSON and CSV answers, clear errors."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from aggregator.api import ApiServer
from aggregator.audit import record_audit
from aggregator.ingest import Ingestor, Message
from aggregator.registry import parse_registry
from aggregator.storage import SqliteStorage
from aggregator.synth import funnel_day_plans, local_midnight_utc, stamper_for, visit_events
from edge.events import to_json, topic_for

TOKEN = "t0ken-for-tests-0123456789"
AUDIT_START = datetime(2026, 11, 21, 16, 0, tzinfo=UTC)
STORE = "sh-pudong-01"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    db = tmp_path_factory.mktemp("api") / "agg.sqlite"
    ing = Ingestor(SqliteStorage(db))
    ing.load_registry(
        parse_registry(
            {
                "stores": [
                    {
                        "store_id": STORE,
                        "name": "P",
                        "brand": "aurora",
                        "region": "east",
                        "timezone": "Asia/Shanghai",
                    }
                ]
            }
        )
    )
    stamper = stamper_for(STORE)
    for day, counts in ((date(2026, 11, 22), (35, 33, 7, 0)), (date(2026, 11, 23), (59, 46, 11, 0))):
        events = [
            e
            for p in funnel_day_plans(local_midnight_utc(day, "Asia/Shanghai"), *counts)
            for e in visit_events(stamper, p)
        ]
        ing.ingest([Message(topic_for(e), to_json(e), datetime.now(UTC)) for e in events])
    # The whole local day of 22 November (00:00-24:00 Shanghai), counted by hand as 36 coming in.
    record_audit(ing.storage, STORE, AUDIT_START, AUDIT_START + timedelta(days=1), 36, auditor="Li Wei")
    server = ApiServer(("127.0.0.1", 0), db, [TOKEN])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def get(url: str, token: str | None = TOKEN, accept: str | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if accept:
        req.add_header("Accept", accept)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            body = resp.read().decode()
            return resp.status, body if accept == "text/csv" else json.loads(body)
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read().decode())


def test_auth_is_required_and_checked(api: str) -> None:
    assert get(f"{api}/v1/stores", token=None)[0] == 401
    assert get(f"{api}/v1/stores", token="wrong-token-0123456789")[0] == 401
    status, body = get(f"{api}/v1/stores")
    assert status == 200 and [s["store_id"] for s in body] == [STORE]


def test_openapi_describes_every_route(api: str) -> None:
    status, doc = get(f"{api}/openapi.json", token=None)
    assert status == 200 and doc["openapi"].startswith("3.1")
    assert "/v1/stores/{store_id}/funnel" in doc["paths"] and doc["components"]["securitySchemes"]["bearer"]
    assert len(doc["paths"]) == 12


def test_funnel_and_errors(api: str) -> None:
    status, f = get(f"{api}/v1/stores/{STORE}/funnel?date=2026-11-23")
    assert status == 200 and f["today"]["visitors"] == 59 and round(f["dod"]["visitors"], 4) == 0.6857
    assert get(f"{api}/v1/stores/{STORE}/funnel")[0] == 400
    status, err = get(f"{api}/v1/stores/{STORE}/funnel?date=yesterday")
    assert status == 400 and "yesterday" in err["error"]
    assert get(f"{api}/v1/stores/nope/funnel?date=2026-11-23")[0] == 404
    assert get(f"{api}/v1/nothing")[0] == 404
    status, h = get(f"{api}/v1/stores/{STORE}/health?start=2026-11-22&end=2026-11-23")
    assert status == 200 and len(h["dimensions"]) == 6
    status, league = get(f"{api}/v1/league?start=2026-11-22&end=2026-11-23&brand=aurora")
    assert (
        status == 200 and league[0]["store"]["store_id"] == STORE and league[0]["figures"]["visitors"] == 94
    )


def test_daily_metrics_csv(api: str) -> None:
    status, text = get(f"{api}/v1/daily-metrics?start=2026-11-01&end=2026-11-30", accept="text/csv")
    lines = text.strip().splitlines()
    assert status == 200 and lines[0].startswith("store_id,brand,region,day,visitors")
    assert [line.split(",")[4] for line in lines[1:]] == ["35", "59"]


def test_audits_with_their_accuracy(api: str) -> None:
    status, audits = get(f"{api}/v1/stores/{STORE}/audits")
    assert status == 200 and len(audits) == 1
    a = audits[0]
    assert (a["manual_in"], a["system_in"], a["manual_out"], a["auditor"]) == (36, 35, None, "Li Wei")
    assert a["start"] == "2026-11-21T16:00:00.000Z" and a["accuracy"] == round(1 - 1 / 36, 6)
    assert a["accuracy_in"] == a["accuracy"] and a["accuracy_out"] is None
    status, every = get(f"{api}/v1/audits")
    assert status == 200 and [(s["store_id"], s["last"]["audit_id"]) for s in every] == [
        (STORE, a["audit_id"])
    ]
    assert get(f"{api}/v1/stores/nope/audits")[0] == 404
