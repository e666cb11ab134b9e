"""Dashboard page times on 200 stores x 1 year (target: each page renders completely within 2 s).

Data: the aggregator's bulk rollup generator (`aggregator.synth.fill_rollups`), 200 stores in 5 brands,
365 days. Two measurements per page:

- server: one Streamlit script run of the page (log-in done, every query and figure built), with Streamlit's
  AppTest, cold (query cache cleared) and warm (cached), median of `--repeat` runs;
- browser: `showroom dashboard` on localhost, Debian's Chromium via Playwright: from pressing "Log in"
  (or reloading with a new period) until every element and chart has drawn, median of `--repeat` runs.

    .venv/bin/python bench/bench_dashboard.py [--stores 200] [--days 365] [--repeat 3] [--no-browser]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "dashboard"))

from aggregator.storage import SqliteStorage  # noqa: E402
from aggregator.synth import fill_rollups  # noqa: E402
from dashboard.auth import hash_password, users_yaml  # noqa: E402
from dashboard.settings import ENV_DB, ENV_USERS  # noqa: E402

PASSWORD = "bench-password"
START = date(2025, 1, 1)


def build(base: Path, stores: int, days: int) -> tuple[Path, Path, date]:
    db = base / "aggregator.sqlite"
    t0 = time.perf_counter()
    storage = SqliteStorage(db)
    fill_rollups(storage, n_stores=stores, start=START, n_days=days)
    storage.close()
    size_mib = db.stat().st_size >> 20
    print(f"generated {stores} stores x {days} days in {time.perf_counter() - t0:.1f} s ({size_mib} MiB)")
    users = base / "users.yaml"
    h = hash_password(PASSWORD)
    users.write_text(
        users_yaml(
            [
                {"username": "manager", "role": "store_manager", "stores": ["s0000"], "password_hash": h},
                {"username": "hq", "role": "brand_hq", "brands": ["b0"], "password_hash": h},
                {"username": "installer", "role": "installer", "password_hash": h},
            ]
        ),
        encoding="utf-8",
    )
    return db, users, START + timedelta(days=days - 1)


BASELINE = "(baseline) empty Streamlit page"
PAGES: list[tuple[str, str, dict[str, str]]] = [
    ("store, day", "manager", {"period": "day"}),
    ("store, 30 days", "manager", {"period": "month"}),
    ("brand HQ, 7 days (40 stores)", "hq", {"period": "week"}),
    ("brand HQ, 30 days (40 stores)", "hq", {"period": "month"}),
    ("installer (200 nodes)", "installer", {}),
]


def server_times(db: Path, users: Path, last_day: date, repeat: int) -> dict[str, tuple[float, float]]:
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    os.environ[ENV_DB], os.environ[ENV_USERS] = str(db), str(users)
    out: dict[str, tuple[float, float]] = {}
    for name, user, params in PAGES:
        cold: list[float] = []
        warm: list[float] = []
        for _ in range(repeat):
            at = AppTest.from_file(str(REPO / "dashboard" / "app.py"), default_timeout=60)
            for k, v in {**params, "date": last_day.isoformat()}.items():
                at.query_params[k] = v
            at.run()
            at.text_input(key="login_username").input(user)
            at.text_input(key="login_password").input(PASSWORD)
            st.cache_data.clear()
            t0 = time.perf_counter()
            at.button[0].click()
            at.run()
            cold.append(time.perf_counter() - t0)
            denied = [e.value for e in at.error if "access" in e.value or "not available" in e.value]
            assert not at.exception and not denied and at.title, (
                name,
                [e.value for e in at.exception],
                denied,
            )
            t0 = time.perf_counter()
            at.run()
            warm.append(time.perf_counter() - t0)
        out[name] = (statistics.median(cold), statistics.median(warm))
    return out


def browser_times(db: Path, users: Path, last_day: date, repeat: int) -> dict[str, tuple[float, float]]:
    """Per page: (view title shown, everything drawn) in seconds from pressing "Log in".

    Also measures, in the same run, the framework's floor: loading the log-in page (an almost empty
    Streamlit page) from a warm browser cache, under key "(baseline) empty Streamlit page".
    """
    from dash_server import dashboard_server, launch_chromium, wait_idle
    from playwright.sync_api import sync_playwright

    out: dict[str, tuple[float, float]] = {}
    with (
        tempfile.TemporaryDirectory() as tmp,
        dashboard_server(db, users, Path(tmp) / "dash.log") as url,
        sync_playwright() as p,
    ):
        browser = launch_chromium(p)
        context = browser.new_context(viewport={"width": 1440, "height": 2200})
        # Load the app's scripts once, as a returning user's browser would have them cached.
        warm_page: Any = context.new_page()
        warm_page.goto(url)
        warm_page.get_by_role("button", name="Log in").wait_for()
        warm_page.close()
        baseline = []
        for _ in range(repeat):
            page = context.new_page()
            t0 = time.perf_counter()
            page.goto(url)
            page.get_by_role("button", name="Log in").wait_for()
            baseline.append(time.perf_counter() - t0)
            page.close()
        out[BASELINE] = (statistics.median(baseline), statistics.median(baseline))
        for name, user, params in PAGES:
            first, full = [], []
            for _ in range(repeat):
                page = context.new_page()
                query = "&".join(f"{k}={v}" for k, v in {**params, "date": last_day.isoformat()}.items())
                page.goto(f"{url}/?{query}")
                page.get_by_role("textbox", name="Username").fill(user)
                page.get_by_role("textbox", name="Password").fill(PASSWORD)
                t0 = time.perf_counter()
                page.get_by_role("button", name="Log in").click()
                page.locator("h1").filter(has_not_text="Showroom Vision").first.wait_for(timeout=60_000)
                first.append(time.perf_counter() - t0)
                wait_idle(page, timeout_ms=60_000)
                # wait_idle pauses 0.3 s after the page settles: not part of the page's time.
                full.append(time.perf_counter() - t0 - 0.3)
                page.close()
            out[name] = (statistics.median(first), statistics.median(full))
        browser.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stores", type=int, default=200)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-browser", action="store_true", help="Server-side times only.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db, users, last_day = build(Path(tmp), args.stores, args.days)
        load = os.getloadavg()
        server = server_times(db, users, last_day, args.repeat)
        browser: dict[str, tuple[float, float]] = (
            {} if args.no_browser else browser_times(db, users, last_day, args.repeat)
        )
        print(f"\nload average at start: {load[0]:.1f} (2 cores)")
        print(
            "| page | server run, cold cache (s) | server run, cached (s) | browser, first content (s) "
            "| browser, complete (s) | complete <= 2 s |"
        )
        print("|---|---|---|---|---|---|")
        if BASELINE in browser:
            print(f"| {BASELINE} | – | – | – | {browser[BASELINE][1]:.2f} | – |")
        for name, _, _ in PAGES:
            cold, warm = server[name]
            first, full = browser.get(name, (None, None))
            worst = full if full is not None else cold
            print(
                f"| {name} | {cold:.2f} | {warm:.2f} | {'–' if first is None else f'{first:.2f}'} | "
                f"{'–' if full is None else f'{full:.2f}'} | {'yes' if worst <= 2.0 else 'no'} |"
            )


if __name__ == "__main__":
    main()
