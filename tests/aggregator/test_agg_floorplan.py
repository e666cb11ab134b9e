"""The floor plan a store's heatmap is drawn over: read from the edge node configs (drawing, doors, staff
areas) or stated in the registry (and its reception, negotiation and entrance zones), kept by both storage
backends, copied by a migration, and readable from a database written before floor plans were kept."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import psycopg
import pytest

from aggregator.ingest import Ingestor, Message
from aggregator.queries import Queries
from aggregator.registry import FLOOR_IMAGE_MAX_PX, RegistryError, load_registry, parse_registry
from aggregator.storage import SqliteStorage, open_storage
from aggregator.storage.migrations import MIGRATIONS
from aggregator.storage.pg_migrations import PG_MIGRATIONS
from aggregator.synth import heat_event, stamper_for
from aggregator.transfer import copy_history
from edge.events import to_json, topic_for
from tests.aggregator.conftest import PgDatabases

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "showroom-shanghai-01.yaml"


def drawing(path: Path, w: int = 720, h: int = 480) -> Path:
    """A floor drawing: white, with a pure green block in its top-left quarter."""
    image = np.full((h, w, 3), 255, np.uint8)
    image[: h // 2, : w // 2] = (0, 200, 0)
    assert cv2.imwrite(str(path), image)
    return path


def node_config(tmp: Path, image: str | None, px_per_m: float | None = None) -> Path:
    """The shipped example node config, with `floor.image` set (relative to the config's folder)."""
    text = EXAMPLE.read_text(encoding="utf-8")
    floor = "floor:\n  size_m: [36, 24]\n"
    assert floor in text
    extra = (f"  image: {image}\n" if image else "") + (f"  image_px_per_m: {px_per_m}\n" if px_per_m else "")
    path = tmp / "configs" / "node.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text.replace(floor, floor + extra), encoding="utf-8")
    return path


def registry_file(tmp: Path, body: str) -> Path:
    path = tmp / "stores.yaml"
    path.write_text(
        "stores:\n  - store_id: sh-pudong-01\n    name: Pudong\n    brand: aurora\n    region: east\n" + body,
        encoding="utf-8",
    )
    return path


def test_node_configs_give_the_plan_with_its_drawing_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "configs").mkdir()
    drawing(tmp_path / "configs" / "plan.png")
    node_config(tmp_path, "plan.png", px_per_m=20)
    reg = registry_file(
        tmp_path,
        "    node_configs: [configs/node.yaml]\n    floor_plan:\n      zones:\n"
        "        - {id: desk, kind: reception, name: Welcome desk, polygon_m: [[30, 1], [35, 1], [35, 5]]}\n",
    )
    [store] = load_registry(reg).stores
    assert [(d.id, d.line_m) for d in store.plan.doors] == [
        ("main", ((14.0, 23.5), (18.0, 23.5))),
        ("side", ((33.0, 23.5), (35.0, 23.5))),
    ]
    assert [a.id for a in store.plan.staff_areas] == ["reception-desk", "back-office"]
    assert [(z.kind, z.name) for z in store.plan.zones] == [("reception", "Welcome desk")]
    assert store.plan.image_extent_m == (36.0, 24.0)  # 720 x 480 px at 20 px per metre
    png = store.floor_image_png
    assert png is not None
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (480, 720, 3) and image[10, 10].tolist() == [0, 200, 0]


def test_a_large_drawing_is_kept_small_and_stretched_over_the_floor_without_a_scale(tmp_path: Path) -> None:
    (tmp_path / "configs").mkdir()
    drawing(tmp_path / "configs" / "big.jpg", 4000, 2000)
    node_config(tmp_path, "big.jpg")
    [store] = load_registry(registry_file(tmp_path, "    node_configs: [configs/node.yaml]\n")).stores
    assert store.plan.image_extent_m == (36.0, 24.0)
    assert store.floor_image_png is not None
    image = cv2.imdecode(np.frombuffer(store.floor_image_png, np.uint8), cv2.IMREAD_COLOR)
    assert max(image.shape[:2]) == FLOOR_IMAGE_MAX_PX


def test_a_missing_or_unreadable_drawing_is_refused_naming_it(tmp_path: Path) -> None:
    node = node_config(tmp_path, "nowhere.png")
    reg = registry_file(tmp_path, "    node_configs: [configs/node.yaml]\n")
    with pytest.raises(
        RegistryError, match=r"stores\[0\]\.floor_plan: floor image .*nowhere.png: no such file"
    ):
        load_registry(reg)
    (node.parent / "nowhere.png").write_bytes(b"not an image at all")
    with pytest.raises(RegistryError, match=r"nowhere.png: not a readable image"):
        load_registry(reg)
    reg = registry_file(tmp_path, "    timezone: Asia/Shanghai\n    floor_plan: {image: plan.png}\n")
    drawing(tmp_path / "plan.png")
    with pytest.raises(RegistryError, match="image_px_per_m or the floor's size_m"):
        load_registry(reg)
    reg = registry_file(tmp_path, "    timezone: Asia/Shanghai\n    floor_plan: {walls: []}\n")
    with pytest.raises(RegistryError, match=r"floor_plan.walls: Extra inputs are not permitted"):
        load_registry(reg)


def test_the_registry_states_a_plan_without_node_configs(tmp_path: Path) -> None:
    drawing(tmp_path / "plan.png", 400, 200)
    reg = registry_file(
        tmp_path,
        "    timezone: Asia/Shanghai\n    floor_size_m: [20, 10]\n    floor_plan:\n"
        "      image: plan.png\n"
        "      doors: [{id: front, name: Front door, line_m: [[8, 10], [12, 10]]}]\n"
        "      staff_areas: [{id: office, polygon_m: [[0, 0], [4, 0], [4, 3], [0, 3]]}]\n",
    )
    [store] = load_registry(reg).stores
    assert store.plan.doors[0].name == "Front door" and store.plan.image_extent_m == (20.0, 10.0)


def test_both_backends_keep_the_plan_and_its_drawing(tmp_path: Path, db: str) -> None:
    (tmp_path / "configs").mkdir()
    drawing(tmp_path / "configs" / "plan.png")
    node_config(tmp_path, "plan.png", px_per_m=20)
    registry = load_registry(
        registry_file(
            tmp_path,
            "    node_configs: [configs/node.yaml]\n    floor_plan:\n      zones:\n"
            "        - {id: talk, kind: negotiation, name: Tables,"
            " polygon_m: [[20, 14], [26, 14], [26, 18]]}\n",
        )
    )
    storage = open_storage(db)
    Ingestor(storage).load_registry(registry)
    q = Queries(storage)
    store = q.store("sh-pudong-01")
    assert store.plan == registry.stores[0].plan
    assert q.floor_image("sh-pudong-01") == registry.stores[0].floor_image_png
    kinds = {z.zone_id: z.kind for z in q.floor_zones("sh-pudong-01")}
    assert kinds["zone.talk"] == "negotiation" and kinds["staff.back-office"] == "staff"
    # Copied to another database (SQLite to the test's backend's twin) with its drawing.
    copy = SqliteStorage(tmp_path / "copy.sqlite")
    copy_history(storage, copy)
    assert Queries(copy).store("sh-pudong-01").plan == store.plan
    assert copy.floor_image("sh-pudong-01") == registry.stores[0].floor_image_png
    copy.close()
    storage.close()


def test_a_database_from_before_floor_plans_stays_readable_and_migrates(tmp_path: Path) -> None:
    path = tmp_path / "v6.sqlite"
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE schema_migrations "
        "(version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    for m in MIGRATIONS[:6]:
        for stmt in m.statements:
            conn.execute(stmt)
        conn.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)", (m.version, m.description, "-"))
    conn.execute(
        "INSERT INTO stores VALUES ('s1', 'S', 'b', 'r', 'Asia/Shanghai', 20, 10, 10, "
        '\'[{"id": "car-01", "model_name": "M"}]\')'
    )
    conn.commit()
    conn.close()
    reader = Queries(SqliteStorage(path, readonly=True))
    store = reader.store("s1")
    assert store.cars[0].id == "car-01" and store.plan.doors == () and reader.floor_image("s1") is None
    reader.close()
    writer = SqliteStorage(path)  # migrates
    assert writer.schema_version() == MIGRATIONS[-1].version == 7
    assert Queries(writer).store("s1").plan.image_extent_m is None and writer.floor_image("s1") is None
    writer.close()


def test_visitors_in_each_zone_now_come_from_each_nodes_latest_minute_of_heat(db: str) -> None:
    storage = open_storage(db)
    ingestor = Ingestor(storage)
    ingestor.load_registry(
        parse_registry(
            {
                "stores": [
                    {
                        "store_id": "s1",
                        "name": "S",
                        "brand": "b",
                        "region": "r",
                        "timezone": "Asia/Shanghai",
                        "floor_size_m": [20, 10],
                        "cars": [
                            {
                                "id": "car-01",
                                "model_name": "M",
                                "browse_zone_m": [[0, 0], [6, 0], [6, 6], [0, 6]],
                                "interior_zone_m": [[2, 2], [4, 2], [4, 4], [2, 4]],
                            }
                        ],
                        "floor_plan": {
                            "zones": [
                                {
                                    "id": "desk",
                                    "kind": "reception",
                                    "name": "Desk",
                                    "polygon_m": [[10, 0], [14, 0], [14, 4], [10, 4]],
                                }
                            ],
                            "staff_areas": [
                                {
                                    "id": "office",
                                    "name": "Back office",
                                    "polygon_m": [[16, 0], [20, 0], [20, 4], [16, 4]],
                                }
                            ],
                        },
                    }
                ]
            }
        )
    )
    now = datetime(2026, 11, 23, 6, 30, 20, tzinfo=UTC)
    a, b = stamper_for("s1", "node-a"), stamper_for("s1", "node-b", seed=2)
    m0 = now.replace(second=0)
    # 0.25 m cells: (4, 4) lies at 1.1 m (around the car), (12, 12) at 3.1 m (inside it), (44, 4) at the desk.
    old = heat_event(a, m0 - timedelta(minutes=3), [(4, 4, 600.0)], 10)  # an older minute of node-a
    latest_a = heat_event(a, m0 - timedelta(minutes=2), [(4, 4, 120.0), (12, 12, 60.0), (70, 30, 30.0)], 3)
    latest_b = heat_event(b, m0 - timedelta(minutes=3), [(44, 4, 90.0)], 2)
    stale = heat_event(stamper_for("s1", "node-c", seed=3), m0 - timedelta(minutes=9), [(44, 4, 600.0)], 9)
    result = ingestor.ingest(
        [Message(topic_for(e), to_json(e), e.ts) for e in (old, latest_a, latest_b, stale)]
    )
    assert result.stored == 4
    staff = [z for z in Queries(storage).floor_zones("s1") if z.kind == "staff"]
    assert [(z.zone_id, z.label) for z in staff] == [("staff.office", "Back office")]  # its name, not its id
    occ = Queries(storage).zone_occupancy_now("s1", now)
    people = {z.zone.zone_id: z.people for z in occ.zones}
    assert people == {"car-01.browse": 2.0, "zone.desk": 1.5, "car-01.interior": 1.0}
    assert [z.zone.zone_id for z in occ.zones] == ["car-01.browse", "zone.desk", "car-01.interior"]
    assert occ.nodes == 2 and occ.floor_people == pytest.approx(5.0)
    assert occ.minute == m0 - timedelta(minutes=3)  # the older of the two nodes' minutes
    # A minute whose event is stamped exactly `now` (the page asks on a whole 10 s) is the latest.
    at_end = Queries(storage).zone_occupancy_now("s1", latest_a.ts)
    assert {z.zone.zone_id: z.people for z in at_end.zones} == people
    later = Queries(storage).zone_occupancy_now("s1", now + timedelta(minutes=10))
    assert later.minute is None and later.nodes == 0 and all(z.people == 0 for z in later.zones)
    storage.close()


def test_a_postgresql_database_from_before_floor_plans_stays_readable_and_migrates(
    pg_databases: PgDatabases,
) -> None:
    url = pg_databases.new()
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            # As the release before floor plans left it: migrations 1-3, a store.
            conn.execute("ALTER TABLE stores DROP COLUMN floor_plan, DROP COLUMN floor_image")
            conn.execute("DELETE FROM schema_migrations WHERE version = 4")
            conn.execute(
                "INSERT INTO stores VALUES ('s1', 'S', 'b', 'r', 'Asia/Shanghai', 20, 10, 10, "
                '\'[{"id": "car-01", "model_name": "M"}]\')'
            )
        reader = Queries(open_storage(url, readonly=True))
        store = reader.store("s1")
        assert store.cars[0].id == "car-01" and store.plan.doors == () and reader.floor_image("s1") is None
        reader.close()
        writer = open_storage(url)  # migrates
        assert writer.schema_version() == PG_MIGRATIONS[-1].version == 4
        assert Queries(writer).store("s1").plan.image_extent_m is None and writer.floor_image("s1") is None
        writer.close()
    finally:
        pg_databases.release(url)
