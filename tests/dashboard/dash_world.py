"""A small, known showroom world for the dashboard's tests, put into a real aggregator database.

Three stores in two brands; known visits, car dwells, car entries, receptions, heat and node health,
built as contract events (edge.events) and written through the aggregator's own ingest, so the
dashboard is tested on exactly what the aggregator makes of real events.

The headline day `DAY` of store `sh-01` is DOMAIN.md's example screen: 59 visitors, 46 car browsers and
11 car entrants after a day with 35, 33 and 7.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TypeVar
from zoneinfo import ZoneInfo

import cv2
import numpy as np
from streamlit.testing.v1 import AppTest

from aggregator.audit import record_audit
from aggregator.ingest import Ingestor, Message
from aggregator.registry import parse_registry
from aggregator.storage import open_storage
from dashboard.auth import hash_password, users_yaml
from edge.events import (
    CameraHealth,
    CarEntry,
    Envelope,
    EventStamper,
    Heartbeat,
    Heat,
    IdSource,
    Reception,
    Status,
    VisitEnded,
    VisitStarted,
    ZoneDwell,
    to_json,
    topic_for,
)

DAY = date(2026, 11, 20)  # a Friday
TZ = "Asia/Shanghai"
PASSWORD = "showroom-test-pass"
LIVE = "mqtt"  # the ingest's source name for payloads received live from the broker

CARS = [
    {
        "id": "car-01",
        "model_name": "Model S Sedan",
        "browse_zone_m": [[2, 3], [10, 3], [10, 9], [2, 9]],
        "interior_zone_m": [[4, 5], [8.8, 5], [8.8, 7], [4, 7]],
    },
    {
        "id": "car-02",
        "model_name": "Model X SUV",
        "browse_zone_m": [[12, 3], [20, 3], [20, 9], [12, 9]],
        "interior_zone_m": [[14, 5], [19, 5], [19, 7.1], [14, 7.1]],
    },
    {
        "id": "car-03",
        "model_name": "City EV Hatchback",
        "browse_zone_m": [[22, 3], [29, 3], [29, 9], [22, 9]],
        "interior_zone_m": [[24, 5.1], [28, 5.1], [28, 6.9], [24, 6.9]],
    },
]

PLAN_SH01 = {
    # No drawing: the heatmap draws the floor's outline, these doors, the staff area and the reception. The
    # side door and the staff area have no name: the page calls them by kind and number, never by id.
    "doors": [
        {"id": "main", "name": "Main entrance", "line_m": [[14, 24], [18, 24]]},
        {"id": "side-door", "line_m": [[0, 10], [0, 13]]},
    ],
    "staff_areas": [{"id": "back-office", "polygon_m": [[31, 12], [36, 12], [36, 16], [31, 16]]}],
    "zones": [
        {
            "id": "welcome",
            "kind": "reception",
            "name": "Welcome desk",
            "polygon_m": [[30, 18], [35, 18], [35, 22], [30, 22]],
        }
    ],
}
FLOOR_IMAGE = "floor-bj-02.png"
"""bj-02's floor drawing (written beside the database by `build_db`), stretched over its 36 x 24 m floor."""
FLOOR_IMAGE_BGR = (200, 200, 0)
"""The drawing's colour: teal (#00c8c8), a colour the heat's magma scale never takes."""

REGISTRY = {
    "brands": [{"id": "aurora", "name": "Aurora Motors"}, {"id": "nova", "name": "Nova Auto"}],
    "stores": [
        {
            "store_id": "sh-01",
            "name": "Pudong Flagship",
            "brand": "aurora",
            "region": "east",
            "timezone": TZ,
            "floor_size_m": [36, 24],
            "cars": CARS,
            "floor_plan": PLAN_SH01,
        },
        {
            "store_id": "bj-02",
            "name": "Chaoyang Mall",
            "brand": "aurora",
            "region": "north",
            "timezone": TZ,
            "floor_size_m": [36, 24],
            "cars": CARS[:2],
            "floor_plan": {"image": FLOOR_IMAGE},
        },
        {
            "store_id": "gz-03",
            "name": "Tianhe Center",
            "brand": "nova",
            "region": "south",
            "timezone": TZ,
            "floor_size_m": [36, 24],
            "cars": CARS[:2],
        },
    ],
}


@dataclass(frozen=True)
class DayPlan:
    """What happens in one store on one local day."""

    visitors: int
    browsers: int
    entrants: int
    received: int


# (store, day) -> plan. Browsers are the first visitors, entrants the first browsers.
PLANS: dict[tuple[str, date], DayPlan] = {
    ("sh-01", DAY): DayPlan(59, 46, 11, 40),
    ("sh-01", DAY - timedelta(days=1)): DayPlan(35, 33, 7, 20),
    ("sh-01", DAY - timedelta(days=7)): DayPlan(50, 40, 10, 30),
    ("bj-02", DAY): DayPlan(20, 10, 2, 12),
    ("bj-02", DAY - timedelta(days=1)): DayPlan(25, 12, 3, 15),
    ("gz-03", DAY): DayPlan(30, 15, 5, 18),
    ("gz-03", DAY - timedelta(days=1)): DayPlan(28, 14, 4, 16),
}

AUDIT_SH01_MANUAL_IN = 10  # the system counted 9 visitors from 10:00 to 11:00 (one every 7 minutes)

USERS = [
    {
        "username": "li.wei",
        "name": "李伟",
        "role": "store_manager",
        "stores": ["sh-01"],
        "language": "en",
        "email": "Li.Wei@dealer.example",  # may also log in through an identity provider
    },
    {"username": "hq.aurora", "name": "Aurora HQ", "role": "brand_hq", "brands": ["aurora"]},
    {"username": "hq.nova", "name": "Nova HQ", "role": "brand_hq", "brands": ["nova"], "language": "zh"},
    {"username": "tech", "name": "Installer Wang", "role": "installer"},
    {"username": "hq.group", "name": "Group HQ", "role": "brand_hq", "brands": ["aurora", "nova"]},
]
IDP_ONLY_USERS = [
    # No password: logs in only through the deployment's identity provider.
    {
        "username": "zhao",
        "name": "Zhao Min",
        "role": "store_manager",
        "stores": ["bj-02"],
        "email": "zhao@dealer.example",
    },
]


def _local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=ZoneInfo(TZ)).astimezone(UTC)


def _day_events(stamper: EventStamper, ids: IdSource, day: date, plan: DayPlan) -> Iterator[Envelope]:
    """Visits from 10:00 local, one every 7 minutes; browsers look at car-01 (2/3) or car-02 (1/3)."""
    for i in range(plan.visitors):
        start = _local(day, 10) + timedelta(minutes=7 * i)
        duration = 300.0 + 30 * (i % 10)
        end = start + timedelta(seconds=duration)
        visitor = ids.visitor_id()
        browsed, entered, received = i < plan.browsers, i < plan.entrants, i < plan.received
        yield stamper.stamp(VisitStarted, start, visitor_id=visitor, door_id="main")
        car = "car-01" if i % 3 else "car-02"
        if browsed:
            z0 = start + timedelta(seconds=30)
            dwell = 20.0 + (i % 5) * 10
            yield stamper.stamp(
                ZoneDwell,
                z0 + timedelta(seconds=dwell),
                visitor_id=visitor,
                zone_id=car,
                entered_at=z0,
                exited_at=z0 + timedelta(seconds=dwell),
                dwell_s=dwell,
            )
        if entered:
            c0 = start + timedelta(seconds=40)
            yield stamper.stamp(
                CarEntry,
                c0 + timedelta(seconds=8),
                visitor_id=visitor,
                car_id=car,
                entered_at=c0,
                exited_at=c0 + timedelta(seconds=8),
                inside_s=8.0,
            )
        if received:
            r0 = start + timedelta(seconds=100)
            yield stamper.stamp(
                Reception, r0 + timedelta(seconds=60), visitor_id=visitor, started_at=r0, duration_s=60.0
            )
        yield stamper.stamp(
            VisitEnded,
            end,
            visitor_id=visitor,
            door_id="main",
            started_at=start,
            duration_s=duration,
            browsed=browsed,
            entered_car=entered,
            received=received,
        )


def _heat(stamper: EventStamper, day: date) -> Iterator[Envelope]:
    """Heat around car-01 (cells at x 4-8 m, y 4-8 m) during the day's first hour, one minute in four."""
    cells = [[ix, iy, 30.0] for ix in range(16, 32, 2) for iy in range(16, 32, 2)]
    for minute in range(0, 60, 4):
        m = _local(day, 10, minute)
        yield stamper.stamp(
            Heat, m + timedelta(seconds=60), minute=m, cell_m=0.25, cells=cells, occupancy_max=3
        )


def _heartbeat(
    stamper: EventStamper,
    ts: datetime,
    *,
    state: str = "ok",
    quality: str = "excellent",
    fps: float = 5.0,
    outbox: int = 0,
    calib: float = 0.08,
) -> Envelope:
    camera = CameraHealth(
        camera_id="cam-a",
        state=state,
        fps=fps,
        target_fps=5.0,  # type: ignore[arg-type]
        inference_ms=42.5,
        dropped_frames=0,
        reconnects=0,
        quality=quality,
    )  # type: ignore[arg-type]
    return stamper.stamp(
        Heartbeat,
        ts,
        cameras=[camera],
        outbox_depth=outbox,
        model_id="yolox-tiny",
        software_version="0.1.0",
        uptime_s=3600.0,
        calibration_error_m={"cam-a": calib},
    )


def world_events(now_utc: datetime, plans: dict[tuple[str, date], DayPlan] | None = None) -> list[Envelope]:
    """Every event of the test world (its days as `plans`, default `PLANS`), in sending order per node."""
    plans = PLANS if plans is None else plans
    events: list[Envelope] = []
    ids = IdSource(seed=7)
    for store in ("sh-01", "bj-02", "gz-03"):
        stamper = EventStamper(store, "node-a", ids)
        events.append(stamper.stamp(Status, _local(DAY - timedelta(days=7), 9), status="online"))
        for (s, day), plan in sorted(plans.items(), key=lambda kv: kv[0][1]):
            if s == store:
                events.extend(_day_events(stamper, ids, day, plan))
                events.extend(_heat(stamper, day))
        if store == "sh-01":
            events.append(_heartbeat(stamper, now_utc - timedelta(seconds=20)))
        elif store == "bj-02":
            events.append(
                _heartbeat(
                    stamper,
                    now_utc - timedelta(seconds=25),
                    state="stalled",
                    quality="poor",
                    fps=0.0,
                    outbox=2500,
                    calib=0.45,
                )
            )
        else:
            stamper.next_seq += 3  # three payloads lost on the way: a sequence gap
            events.append(_heartbeat(stamper, now_utc - timedelta(hours=3)))
            events.append(stamper.stamp(Status, now_utc - timedelta(hours=3), status="offline"))
    return events


Db = TypeVar("Db", Path, str)


def build_db(
    db: Db, now_utc: datetime | None = None, plans: dict[tuple[str, date], DayPlan] | None = None
) -> Db:
    """Fill a fresh aggregator database with the world (its days as `plans`, default `PLANS`), through
    the aggregator's ingest. `db` is a new SQLite file's path or an empty database's URL (`open_storage`).

    Each payload is handed to the ingest as a live MQTT receipt one second after its timestamp (never
    after `now_utc`), so liveness and silence are what they would be live: gz-03's last payload arrived
    three hours ago. (The aggregator takes liveness only from live receipts, not from backfills.)
    """
    if isinstance(db, Path) and db.exists():
        raise FileExistsError(f"{db} exists: the test world is built into a fresh database only")
    now_utc = now_utc or datetime.now(UTC)
    # The drawing is read when the registry is loaded (and kept in the database), so any folder serves.
    base = db.parent if isinstance(db, Path) else Path(tempfile.mkdtemp(prefix="dash-world-"))
    write_floor_image(base / FLOOR_IMAGE)
    storage = open_storage(db)
    ingestor = Ingestor(storage)
    ingestor.load_registry(parse_registry(REGISTRY, base=base))
    messages = [
        Message(topic_for(e), to_json(e), min(e.ts + timedelta(seconds=1), now_utc), source=LIVE)
        for e in world_events(now_utc, plans)
    ]
    result = ingestor.ingest(messages)
    assert result.quarantined == 0 and result.stored == len(messages), result
    # Door-count audits: sh-01 audited on DAY (10:00-11:00 local: the auditor counted one more than the
    # system), bj-02 last audited 120 days before DAY (stale; 06:00-07:00 local, still the day before in
    # UTC, so a date shown in UTC would be a day early), gz-03 never.
    record_audit(
        storage,
        "sh-01",
        _local(DAY, 10),
        _local(DAY, 11),
        AUDIT_SH01_MANUAL_IN,
        auditor="Zhang Min",
        now=now_utc,
    )
    old = DAY - timedelta(days=120)
    record_audit(storage, "bj-02", _local(old, 6), _local(old, 7), 20, auditor="Zhang Min", now=now_utc)
    storage.close()
    return db


def write_floor_image(path: Path) -> Path:
    """bj-02's floor drawing: 720 x 480 px of `FLOOR_IMAGE_BGR` with a dark wall round its edge."""
    image = np.zeros((480, 720, 3), np.uint8)
    image[:] = FLOOR_IMAGE_BGR
    cv2.rectangle(image, (0, 0), (719, 479), (40, 40, 40), 12)
    if not cv2.imwrite(str(path), image):
        raise OSError(f"could not write {path}")
    return path


def write_users(path: Path) -> Path:
    """The world's users, all with password PASSWORD (cheap hashes: tests do not measure hashing)."""
    entries = [{**u, "password_hash": hash_password(PASSWORD, n=2**10)} for u in USERS] + IDP_ONLY_USERS
    path.write_text(users_yaml(entries), encoding="utf-8")
    return path


def fresh_heartbeats(db: Path | str, now_utc: datetime | None = None) -> None:
    """Send this moment's heartbeats of the two live nodes (sh-01 healthy, bj-02 troubled), as nodes do
    every 30 s, so liveness checks do not depend on how long ago the database was built."""
    now_utc = now_utc or datetime.now(UTC)
    storage = open_storage(db)
    nodes = {n[0]: n[9] for n in storage.node_rows(["sh-01", "bj-02"])}
    ingestor = Ingestor(storage)
    events = [
        _heartbeat(EventStamper("sh-01", "node-a", IdSource(), int(nodes["sh-01"]) + 1), now_utc),
        _heartbeat(
            EventStamper("bj-02", "node-a", IdSource(), int(nodes["bj-02"]) + 1),
            now_utc,
            state="stalled",
            quality="poor",
            fps=0.0,
            outbox=2500,
            calib=0.45,
        ),
    ]
    result = ingestor.ingest([Message(topic_for(e), to_json(e), now_utc, source=LIVE) for e in events])
    assert result.stored == 2, result
    storage.close()


APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"
PLAN_LABELS = (
    "Main entrance",
    "Door 2",
    "Staff area 1",
    "Welcome desk",
    "Floor plan",
    "Door",
    "Staff area",
    "Reception",
)
"""What sh-01's heatmap names over its floor outline: its door, staff area and reception zone, and the plan's
legend."""


def logged_in(username: str, *, timeout_s: float = 30, **params: str) -> AppTest:
    """The app as `username` sees it after logging in on a page opened with URL `params` (the database and
    users file come from the environment, as `showroom dashboard` passes them)."""
    at = AppTest.from_file(str(APP), default_timeout=timeout_s)
    for key, value in params.items():
        at.query_params[key] = value
    at.run()
    at.text_input(key="login_username").input(username)
    at.text_input(key="login_password").input(PASSWORD)
    at.button[0].click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at
