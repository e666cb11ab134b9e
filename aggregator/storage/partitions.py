"""Monthly range partitions of the PostgreSQL event and rollup tables, created when first needed.

A partition is created as a plain table and then attached: attaching takes a lock on the parent that does
not block concurrent inserts and reads (creating one `PARTITION OF` would block them all), and concurrent
processes creating the same partition serialise on an advisory lock.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date

import psycopg

PARTITION_LOCK = (0x53484F57, 1)
"""Advisory lock (namespace, key) held while a partition is created."""

_MONTH = re.compile(r"^(\d{4})-(\d{2})")


def month_of(key: str) -> tuple[int, int]:
    """(year, month) of a time key ('YYYY-MM-DD...'); ValueError naming the key otherwise."""
    m = _MONTH.match(key)
    if m is None or not 1 <= int(m.group(2)) <= 12:
        raise ValueError(f"time key {key!r} does not start with YYYY-MM")
    return int(m.group(1)), int(m.group(2))


def months_around(today: date, back: int, ahead: int) -> list[tuple[int, int]]:
    """The months from `back` before today's to `ahead` after it."""
    base = today.year * 12 + today.month - 1
    return [divmod(i, 12) for i in range(base - back, base + ahead + 1)]


def _bounds(year: int, month: int) -> tuple[str, str]:
    ny, nm = (year + 1, 1) if month == 12 else (year, month + 1)
    return f"{year:04d}-{month:02d}", f"{ny:04d}-{nm:02d}"


def partition_name(table: str, year: int, month: int) -> str:
    return f"{table}_p{year:04d}_{month:02d}"


class Partitions:
    """Knows which monthly partitions exist (per process) and creates the missing ones."""

    def __init__(self) -> None:
        self._known: set[tuple[str, int, int]] = set()

    def missing(self, table: str, keys: Iterable[str]) -> bool:
        """Whether some month of these keys has no partition this process knows of."""
        return bool({(table, *month_of(k)) for k in keys} - self._known)

    def ensure(self, conn: psycopg.Connection[tuple[object, ...]], table: str, keys: Iterable[str]) -> None:
        """Make sure `table` has the partitions of the months of these time keys (in `conn`'s transaction:
        a rollback forgets what it created)."""
        wanted = {(table, *month_of(k)) for k in keys} - self._known
        if not wanted:
            return
        conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", PARTITION_LOCK)
        existing = {
            str(r[0])
            for r in conn.execute(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = %s::regclass",
                (table,),
            )
        }
        for t, year, month in sorted(wanted):
            name = partition_name(t, year, month)
            if name not in existing:
                lo, hi = _bounds(year, month)
                conn.execute(f'CREATE TABLE "{name}" (LIKE "{t}" INCLUDING DEFAULTS INCLUDING CONSTRAINTS)')
                conn.execute(
                    f"ALTER TABLE \"{t}\" ATTACH PARTITION \"{name}\" FOR VALUES FROM ('{lo}') TO ('{hi}')"
                )
        self._known |= wanted

    def forget(self) -> None:
        """After a rollback: what this process created may be gone."""
        self._known.clear()
