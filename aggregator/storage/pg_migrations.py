"""Versioned schema migrations of the PostgreSQL store, applied in order, each once, each in a transaction.

The PostgreSQL schema has its own version line (its first migration is the SQLite store's four at once).
Text keys use the "C" collation: timestamps and day keys are compared and ordered as bytes, as in SQLite,
whatever the database's default collation. The event and rollup tables are partitioned by month of their
time key (storage/partitions.py creates the partitions); facts about visits are not, as a visit's rows are
found by store and visitor.
"""

from __future__ import annotations

from aggregator.storage.migrations import Migration

_T = 'text COLLATE "C"'

PARTITIONED: dict[str, str] = {
    "events": "ts",
    "daily_store": "day",
    "hourly_store": "hour_key",
    "car_daily": "day",
    "heat_day": "day",
    "heat_hour": "hour_key",
    "occupancy_minute": "minute",
    "week_part_store": "day",
}
"""Partitioned table -> its time key (RFC 3339 or day text; partitions hold one month each)."""

PG_MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "raw events, quarantine, visits, rollups, heat, nodes, registry, dirty days, audits, week parts",
        (
            # Raw contract payloads. The key includes the partition key (PostgreSQL requires it); event_id
            # alone is the idempotency key, checked under the store's lock before the insert.
            f"""CREATE TABLE events (
                event_id {_T} NOT NULL, store_id {_T} NOT NULL, node_id {_T} NOT NULL,
                seq bigint NOT NULL, type {_T} NOT NULL, ts {_T} NOT NULL, received_at {_T} NOT NULL,
                payload text NOT NULL, PRIMARY KEY (event_id, ts)) PARTITION BY RANGE (ts)""",
            "CREATE INDEX events_store_ts ON events (store_id, ts)",
            "CREATE INDEX events_id ON events (event_id)",
            f"""CREATE TABLE quarantine (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, received_at {_T} NOT NULL,
                source text NOT NULL, topic text NOT NULL, reason_code {_T} NOT NULL, reason text NOT NULL,
                payload_size integer NOT NULL, payload_head bytea NOT NULL)""",
            "CREATE INDEX quarantine_time ON quarantine (received_at)",
            f"CREATE TABLE counters (name {_T} PRIMARY KEY, value bigint NOT NULL)",
            f"""CREATE TABLE visits (
                store_id {_T} NOT NULL, visitor_id {_T} NOT NULL, node_id {_T} NOT NULL,
                has_start integer NOT NULL DEFAULT 0, has_end integer NOT NULL DEFAULT 0,
                started_at {_T}, ended_at {_T}, duration_s double precision, door_in text, door_out text,
                end_reason text, browsed integer NOT NULL DEFAULT 0, entered_car integer NOT NULL DEFAULT 0,
                received integer NOT NULL DEFAULT 0, day {_T}, hour_key {_T},
                PRIMARY KEY (store_id, visitor_id))""",
            "CREATE INDEX visits_day ON visits (store_id, day)",
            "CREATE INDEX visits_started ON visits (store_id, started_at)",
            f"""CREATE TABLE dwells (
                event_id {_T} PRIMARY KEY, store_id {_T} NOT NULL, visitor_id {_T} NOT NULL,
                zone_id {_T} NOT NULL, entered_at {_T} NOT NULL, exited_at {_T} NOT NULL,
                dwell_s double precision NOT NULL, day {_T} NOT NULL)""",
            "CREATE INDEX dwells_day ON dwells (store_id, day)",
            "CREATE INDEX dwells_visitor ON dwells (store_id, visitor_id, zone_id)",
            f"""CREATE TABLE car_entries (
                event_id {_T} PRIMARY KEY, store_id {_T} NOT NULL, visitor_id {_T} NOT NULL,
                car_id {_T} NOT NULL, entered_at {_T} NOT NULL, exited_at {_T} NOT NULL,
                inside_s double precision NOT NULL, day {_T} NOT NULL)""",
            "CREATE INDEX car_entries_day ON car_entries (store_id, day)",
            f"""CREATE TABLE daily_store (
                store_id {_T} NOT NULL, day {_T} NOT NULL,
                visitors integer NOT NULL, car_browsers integer NOT NULL, car_entrants integer NOT NULL,
                receptions integer NOT NULL, visits_ended integer NOT NULL, visit_s_total double precision
                NOT NULL, median_visit_s double precision, visit_hist bytea, car_zone_s double precision
                NOT NULL, active_hours integer NOT NULL,
                PRIMARY KEY (store_id, day)) PARTITION BY RANGE (day)""",
            "CREATE INDEX daily_store_day ON daily_store (day)",
            f"""CREATE TABLE hourly_store (
                store_id {_T} NOT NULL, hour_key {_T} NOT NULL, day {_T} NOT NULL,
                visitors integer NOT NULL DEFAULT 0, occupancy_max integer,
                PRIMARY KEY (store_id, hour_key)) PARTITION BY RANGE (hour_key)""",
            "CREATE INDEX hourly_store_day ON hourly_store (store_id, day)",
            f"""CREATE TABLE car_daily (
                store_id {_T} NOT NULL, day {_T} NOT NULL, car_id {_T} NOT NULL,
                browsers integer NOT NULL, dwell_total_s double precision NOT NULL,
                dwell_median_s double precision, dwell_hist bytea, entries integer NOT NULL,
                PRIMARY KEY (store_id, day, car_id)) PARTITION BY RANGE (day)""",
            f"""CREATE TABLE heat_day (
                store_id {_T} NOT NULL, day {_T} NOT NULL, cell_m double precision NOT NULL,
                nx integer NOT NULL, ny integer NOT NULL, person_s double precision NOT NULL,
                grid bytea NOT NULL, PRIMARY KEY (store_id, day, cell_m)) PARTITION BY RANGE (day)""",
            f"""CREATE TABLE heat_hour (
                store_id {_T} NOT NULL, hour_key {_T} NOT NULL, day {_T} NOT NULL,
                cell_m double precision NOT NULL, nx integer NOT NULL, ny integer NOT NULL,
                person_s double precision NOT NULL, grid bytea NOT NULL,
                PRIMARY KEY (store_id, hour_key, cell_m)) PARTITION BY RANGE (hour_key)""",
            f"""CREATE TABLE occupancy_minute (
                store_id {_T} NOT NULL, minute {_T} NOT NULL, node_id {_T} NOT NULL,
                occupancy_max integer NOT NULL,
                PRIMARY KEY (store_id, minute, node_id)) PARTITION BY RANGE (minute)""",
            f"""CREATE TABLE nodes (
                store_id {_T} NOT NULL, node_id {_T} NOT NULL,
                status text, status_at {_T}, last_seen_at {_T}, last_event_ts {_T},
                last_heartbeat_at {_T}, heartbeat text,
                seq_min bigint, seq_max bigint, seq_received bigint NOT NULL DEFAULT 0,
                seq_missing bigint NOT NULL DEFAULT 0, PRIMARY KEY (store_id, node_id))""",
            f"""CREATE TABLE node_seq_ranges (
                store_id {_T} NOT NULL, node_id {_T} NOT NULL, lo bigint NOT NULL, hi bigint NOT NULL,
                PRIMARY KEY (store_id, node_id, lo))""",
            f"CREATE TABLE brands (brand_id {_T} PRIMARY KEY, name text NOT NULL, weights text NOT NULL)",
            f"""CREATE TABLE stores (
                store_id {_T} PRIMARY KEY, name text NOT NULL, brand {_T} NOT NULL, region {_T} NOT NULL,
                timezone text NOT NULL, floor_w_m double precision, floor_h_m double precision,
                browse_min_s double precision NOT NULL, cars text NOT NULL)""",
            # Store-days whose rollups wait for a refresh, marked by the writes themselves in their
            # transaction (no triggers).
            f"""CREATE TABLE dirty_days (
                store_id {_T} NOT NULL, day {_T} NOT NULL, PRIMARY KEY (store_id, day))""",
            f"""CREATE TABLE audits (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, store_id {_T} NOT NULL,
                start_ts {_T} NOT NULL, end_ts {_T} NOT NULL,
                manual_in integer NOT NULL, system_in integer NOT NULL,
                manual_out integer, system_out integer,
                auditor text NOT NULL, note text NOT NULL, recorded_at {_T} NOT NULL)""",
            "CREATE INDEX audits_store ON audits (store_id, end_ts)",
            # Bumped by every write of daily rollups: readers cache period sums until it changes.
            "CREATE TABLE rollups_version (version bigint NOT NULL)",
            "INSERT INTO rollups_version VALUES (0)",
            f"""CREATE TABLE week_part_store (
                day {_T} NOT NULL, part {_T} NOT NULL, store_id {_T} NOT NULL,
                visitors integer NOT NULL, car_browsers integer NOT NULL, car_entrants integer NOT NULL,
                receptions integer NOT NULL, open_days integer NOT NULL, car_zone_s double precision NOT NULL,
                active_hours integer NOT NULL, days_with_ended integer NOT NULL,
                max_median_visit_s double precision, visit_hist bytea,
                PRIMARY KEY (day, part, store_id)) PARTITION BY RANGE (day)""",
        ),
    ),
    Migration(
        2,
        "sequence gaps a node said it cannot replay, with its reason",
        (
            f"""CREATE TABLE node_seq_unrecoverable (
                store_id {_T} NOT NULL, node_id {_T} NOT NULL, lo bigint NOT NULL, hi bigint NOT NULL,
                reason text NOT NULL, reported_at {_T} NOT NULL,
                PRIMARY KEY (store_id, node_id, lo))""",
        ),
    ),
    Migration(
        3,
        "API tokens, kept as their SHA-256 only, each scoped to a brand or a store",
        (
            f"""CREATE TABLE api_tokens (
                token_sha256 {_T} PRIMARY KEY, brand_id {_T}, store_id {_T}, note text NOT NULL,
                created_at {_T} NOT NULL,
                CHECK ((brand_id IS NULL) <> (store_id IS NULL)))""",
        ),
    ),
    Migration(
        4,
        "each store's floor plan (doors, staff areas, zones) and its drawing",
        (
            "ALTER TABLE stores ADD COLUMN floor_plan text NOT NULL DEFAULT '{}'",
            "ALTER TABLE stores ADD COLUMN floor_image bytea",
        ),
    ),
)
