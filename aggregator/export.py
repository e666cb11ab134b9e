"""Export of daily store metrics (one row per store and local day) as CSV or Parquet.

Parquet needs pyarrow (installed with the dashboard's dependencies, or the `parquet` extra).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

from aggregator.queries import Queries

COLUMNS = (
    "store_id",
    "brand",
    "region",
    "day",
    "visitors",
    "car_browsers",
    "car_entrants",
    "receptions",
    "browse_rate",
    "car_entry_rate",
    "reception_rate",
    "median_visit_s",
)


def daily_metric_rows(
    queries: Queries, start: date, end: date, store_ids: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """Rows of every store (or those given) for each day in [start, end] that has data."""
    stores = {s.store_id: s for s in queries.stores()}
    wanted = list(store_ids) if store_ids is not None else sorted(stores)
    rows = []
    for store_id in wanted:
        info = stores.get(store_id)
        for m in queries.daily_series(store_id, start, end):
            if not m.has_data:
                continue
            f = m.figures
            rows.append(
                {
                    "store_id": store_id,
                    "brand": info.brand if info else "",
                    "region": info.region if info else "",
                    "day": m.day.isoformat(),
                    "visitors": f.visitors,
                    "car_browsers": f.car_browsers,
                    "car_entrants": f.car_entrants,
                    "receptions": f.receptions,
                    "browse_rate": f.browse_rate,
                    "car_entry_rate": f.car_entry_rate,
                    "reception_rate": f.reception_rate,
                    "median_visit_s": f.median_visit_s,
                }
            )
    return rows


def write_csv(rows: Sequence[dict[str, Any]], path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def write_parquet(rows: Sequence[dict[str, Any]], path: Path) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise RuntimeError("Parquet export needs pyarrow: pip install 'showroom-vision[parquet]'") from exc
    schema = pa.schema(
        [
            ("store_id", pa.string()),
            ("brand", pa.string()),
            ("region", pa.string()),
            ("day", pa.date32()),
            ("visitors", pa.int64()),
            ("car_browsers", pa.int64()),
            ("car_entrants", pa.int64()),
            ("receptions", pa.int64()),
            ("browse_rate", pa.float64()),
            ("car_entry_rate", pa.float64()),
            ("reception_rate", pa.float64()),
            ("median_visit_s", pa.float64()),
        ]
    )
    data = {c: [r[c] for r in rows] for c in COLUMNS}
    data["day"] = [date.fromisoformat(d) for d in data["day"]]
    pq.write_table(pa.table(data, schema=schema), path)


def export_daily(
    queries: Queries, start: date, end: date, out: Path, store_ids: Sequence[str] | None = None
) -> int:
    """Write the rows to `out` (.csv or .parquet by suffix); returns the row count."""
    rows = daily_metric_rows(queries, start, end, store_ids)
    if out.suffix == ".parquet":
        write_parquet(rows, out)
    elif out.suffix == ".csv":
        write_csv(rows, out)
    else:
        raise ValueError(f"export file must end in .csv or .parquet, got {out.name!r}")
    return len(rows)
