"""Versioned schema migrations of the SQLite store, applied in order, each once, each in a transaction.

Add a migration by appending to `MIGRATIONS`; never edit one that has shipped. A migration that creates a
table derived from existing rows by more than SQL can say (histogram sums) names it in `fills`: the storage
computes its rows in the same transaction, with the code that keeps it up to date afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]
    fills: tuple[str, ...] = ()


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "raw events, quarantine, visits, rollups, heat, nodes, registry",
        (
            # Raw contract payloads, exactly as received; event_id makes redelivery a no-op.
            """CREATE TABLE events (
                event_id TEXT PRIMARY KEY, store_id TEXT NOT NULL, node_id TEXT NOT NULL,
                seq INTEGER NOT NULL, type TEXT NOT NULL, ts TEXT NOT NULL, received_at TEXT NOT NULL,
                payload TEXT NOT NULL)""",
            "CREATE INDEX events_store_ts ON events (store_id, ts)",
            """CREATE TABLE quarantine (
                id INTEGER PRIMARY KEY, received_at TEXT NOT NULL, source TEXT NOT NULL, topic TEXT NOT NULL,
                reason_code TEXT NOT NULL, reason TEXT NOT NULL, payload_size INTEGER NOT NULL,
                payload_head BLOB NOT NULL)""",
            "CREATE INDEX quarantine_time ON quarantine (received_at)",
            """CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)""",
            # One row per visit (store, visitor); flags are OR-ed in from every event about the visit.
            """CREATE TABLE visits (
                store_id TEXT NOT NULL, visitor_id TEXT NOT NULL, node_id TEXT NOT NULL,
                has_start INTEGER NOT NULL DEFAULT 0, has_end INTEGER NOT NULL DEFAULT 0,
                started_at TEXT, ended_at TEXT, duration_s REAL, door_in TEXT, door_out TEXT, end_reason TEXT,
                browsed INTEGER NOT NULL DEFAULT 0, entered_car INTEGER NOT NULL DEFAULT 0,
                received INTEGER NOT NULL DEFAULT 0, day TEXT, hour_key TEXT,
                PRIMARY KEY (store_id, visitor_id))""",
            "CREATE INDEX visits_day ON visits (store_id, day)",
            """CREATE TABLE dwells (
                event_id TEXT PRIMARY KEY, store_id TEXT NOT NULL, visitor_id TEXT NOT NULL,
                zone_id TEXT NOT NULL, entered_at TEXT NOT NULL, exited_at TEXT NOT NULL,
                dwell_s REAL NOT NULL, day TEXT NOT NULL)""",
            "CREATE INDEX dwells_day ON dwells (store_id, day)",
            "CREATE INDEX dwells_visitor ON dwells (store_id, visitor_id, zone_id)",
            """CREATE TABLE car_entries (
                event_id TEXT PRIMARY KEY, store_id TEXT NOT NULL, visitor_id TEXT NOT NULL,
                car_id TEXT NOT NULL, entered_at TEXT NOT NULL, exited_at TEXT NOT NULL,
                inside_s REAL NOT NULL, day TEXT NOT NULL)""",
            "CREATE INDEX car_entries_day ON car_entries (store_id, day)",
            # Rollups, keyed in the store's local time.
            """CREATE TABLE daily_store (
                store_id TEXT NOT NULL, day TEXT NOT NULL,
                visitors INTEGER NOT NULL, car_browsers INTEGER NOT NULL, car_entrants INTEGER NOT NULL,
                receptions INTEGER NOT NULL, visits_ended INTEGER NOT NULL, visit_s_total REAL NOT NULL,
                median_visit_s REAL, visit_hist BLOB, car_zone_s REAL NOT NULL, active_hours INTEGER NOT NULL,
                PRIMARY KEY (store_id, day)) WITHOUT ROWID""",
            "CREATE INDEX daily_store_day ON daily_store (day)",
            """CREATE TABLE hourly_store (
                store_id TEXT NOT NULL, hour_key TEXT NOT NULL, day TEXT NOT NULL,
                visitors INTEGER NOT NULL DEFAULT 0, occupancy_max INTEGER,
                PRIMARY KEY (store_id, hour_key)) WITHOUT ROWID""",
            "CREATE INDEX hourly_store_day ON hourly_store (store_id, day)",
            """CREATE TABLE car_daily (
                store_id TEXT NOT NULL, day TEXT NOT NULL, car_id TEXT NOT NULL,
                browsers INTEGER NOT NULL, dwell_total_s REAL NOT NULL, dwell_median_s REAL,
                dwell_hist BLOB, entries INTEGER NOT NULL,
                PRIMARY KEY (store_id, day, car_id)) WITHOUT ROWID""",
            # Heat grids: float32 person-seconds, row-major [iy, ix], zlib; one per day and per hour.
            """CREATE TABLE heat_day (
                store_id TEXT NOT NULL, day TEXT NOT NULL, cell_m REAL NOT NULL,
                nx INTEGER NOT NULL, ny INTEGER NOT NULL, person_s REAL NOT NULL, grid BLOB NOT NULL,
                PRIMARY KEY (store_id, day, cell_m)) WITHOUT ROWID""",
            """CREATE TABLE heat_hour (
                store_id TEXT NOT NULL, hour_key TEXT NOT NULL, day TEXT NOT NULL, cell_m REAL NOT NULL,
                nx INTEGER NOT NULL, ny INTEGER NOT NULL, person_s REAL NOT NULL, grid BLOB NOT NULL,
                PRIMARY KEY (store_id, hour_key, cell_m)) WITHOUT ROWID""",
            """CREATE TABLE occupancy_minute (
                store_id TEXT NOT NULL, minute TEXT NOT NULL, node_id TEXT NOT NULL,
                occupancy_max INTEGER NOT NULL,
                PRIMARY KEY (store_id, minute, node_id)) WITHOUT ROWID""",
            # Nodes: liveness, last heartbeat, sequence coverage.
            """CREATE TABLE nodes (
                store_id TEXT NOT NULL, node_id TEXT NOT NULL,
                status TEXT, status_at TEXT, last_seen_at TEXT, last_event_ts TEXT,
                last_heartbeat_at TEXT, heartbeat TEXT,
                seq_min INTEGER, seq_max INTEGER, seq_received INTEGER NOT NULL DEFAULT 0,
                seq_missing INTEGER NOT NULL DEFAULT 0,
                PRIMARY KEY (store_id, node_id)) WITHOUT ROWID""",
            """CREATE TABLE node_seq_ranges (
                store_id TEXT NOT NULL, node_id TEXT NOT NULL, lo INTEGER NOT NULL, hi INTEGER NOT NULL,
                PRIMARY KEY (store_id, node_id, lo)) WITHOUT ROWID""",
            # Registry.
            """CREATE TABLE brands (brand_id TEXT PRIMARY KEY, name TEXT NOT NULL, weights TEXT NOT NULL)""",
            """CREATE TABLE stores (
                store_id TEXT PRIMARY KEY, name TEXT NOT NULL, brand TEXT NOT NULL, region TEXT NOT NULL,
                timezone TEXT NOT NULL, floor_w_m REAL, floor_h_m REAL, browse_min_s REAL NOT NULL,
                cars TEXT NOT NULL)""",
        ),
    ),
    Migration(
        2,
        "store-days whose rollups wait for a refresh",
        (
            "CREATE TABLE dirty_days (store_id TEXT NOT NULL, day TEXT NOT NULL, "
            "PRIMARY KEY (store_id, day)) WITHOUT ROWID",
            # Every write to a visit, dwell or car entry marks its store-day (old and new) for a refresh.
            # (NOT EXISTS rather than OR IGNORE: an outer statement's conflict policy overrides a trigger's.)
            """CREATE TRIGGER visits_ins AFTER INSERT ON visits WHEN new.day IS NOT NULL BEGIN
                INSERT INTO dirty_days SELECT new.store_id, new.day WHERE NOT EXISTS
                    (SELECT 1 FROM dirty_days WHERE store_id = new.store_id AND day = new.day); END""",
            """CREATE TRIGGER visits_upd AFTER UPDATE ON visits BEGIN
                INSERT INTO dirty_days SELECT new.store_id, new.day WHERE new.day IS NOT NULL AND NOT EXISTS
                    (SELECT 1 FROM dirty_days WHERE store_id = new.store_id AND day = new.day);
                INSERT INTO dirty_days SELECT old.store_id, old.day
                    WHERE old.day IS NOT NULL AND old.day IS NOT new.day AND NOT EXISTS
                    (SELECT 1 FROM dirty_days WHERE store_id = old.store_id AND day = old.day); END""",
            """CREATE TRIGGER dwells_ins AFTER INSERT ON dwells BEGIN
                INSERT INTO dirty_days SELECT new.store_id, new.day WHERE NOT EXISTS
                    (SELECT 1 FROM dirty_days WHERE store_id = new.store_id AND day = new.day); END""",
            """CREATE TRIGGER car_entries_ins AFTER INSERT ON car_entries BEGIN
                INSERT INTO dirty_days SELECT new.store_id, new.day WHERE NOT EXISTS
                    (SELECT 1 FROM dirty_days WHERE store_id = new.store_id AND day = new.day); END""",
        ),
    ),
    Migration(
        3,
        "door-count accuracy audits",
        (
            # A person's count of a recorded sample beside what the system counted in the same window.
            """CREATE TABLE audits (
                id INTEGER PRIMARY KEY, store_id TEXT NOT NULL, start_ts TEXT NOT NULL, end_ts TEXT NOT NULL,
                manual_in INTEGER NOT NULL, system_in INTEGER NOT NULL,
                manual_out INTEGER, system_out INTEGER,
                auditor TEXT NOT NULL, note TEXT NOT NULL, recorded_at TEXT NOT NULL)""",
            "CREATE INDEX audits_store ON audits (store_id, end_ts)",
            # Visit starts by time, for door counts over an arbitrary window.
            "CREATE INDEX visits_started ON visits (store_id, started_at)",
        ),
    ),
    Migration(
        4,
        "week parts of the daily store rollups, so a period reads a few rows per store",
        (
            # Per local day and store, the daily_store rows of the day's Monday-to-Sunday week summed up to
            # and including the day (part 'to_day') and from the day on (part 'from_day'), wherever those
            # days hold a daily row (storage/weekparts.py). The day leads the key: a league reads the same
            # few days of every store.
            """CREATE TABLE week_part_store (
                day TEXT NOT NULL, part TEXT NOT NULL, store_id TEXT NOT NULL,
                visitors INTEGER NOT NULL, car_browsers INTEGER NOT NULL, car_entrants INTEGER NOT NULL,
                receptions INTEGER NOT NULL, open_days INTEGER NOT NULL, car_zone_s REAL NOT NULL,
                active_hours INTEGER NOT NULL, days_with_ended INTEGER NOT NULL, max_median_visit_s REAL,
                visit_hist BLOB,
                PRIMARY KEY (day, part, store_id)) WITHOUT ROWID""",
        ),
        fills=("week_part_store",),
    ),
    Migration(
        5,
        "sequence gaps a node said it cannot replay, with its reason",
        (
            """CREATE TABLE node_seq_unrecoverable (
                store_id TEXT NOT NULL, node_id TEXT NOT NULL, lo INTEGER NOT NULL, hi INTEGER NOT NULL,
                reason TEXT NOT NULL, reported_at TEXT NOT NULL,
                PRIMARY KEY (store_id, node_id, lo)) WITHOUT ROWID""",
        ),
    ),
    Migration(
        6,
        "API tokens, kept as their SHA-256 only, each scoped to a brand or a store",
        (
            # Tokens are 256-bit random strings shown once at creation: the hash alone identifies one.
            """CREATE TABLE api_tokens (
                token_sha256 TEXT PRIMARY KEY, brand_id TEXT, store_id TEXT, note TEXT NOT NULL,
                created_at TEXT NOT NULL,
                CHECK ((brand_id IS NULL) <> (store_id IS NULL)))""",
        ),
    ),
    Migration(
        7,
        "each store's floor plan (doors, staff areas, zones) and its drawing",
        (
            # '{}': a store loaded before floor plans were kept has none until its registry is loaded again.
            "ALTER TABLE stores ADD COLUMN floor_plan TEXT NOT NULL DEFAULT '{}'",
            # PNG; read on its own (`floor_image`), not with every registry read.
            "ALTER TABLE stores ADD COLUMN floor_image BLOB",
        ),
    ),
)
