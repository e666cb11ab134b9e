"""Run `showroom dashboard` on a free localhost port for browser tests and benchmarks; drive Chromium."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.netkit import free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SHOWROOM = Path(sys.executable).with_name("showroom")


@contextmanager
def dashboard_server(db: Path | str, users: Path, log_path: Path, timeout_s: float = 60.0) -> Iterator[str]:
    """Start `showroom dashboard --db --users --port` and yield its base URL; stop it afterwards."""
    port = free_port()
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [str(SHOWROOM), "dashboard", "--db", str(db), "--users", str(users), "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"dashboard exited with {proc.returncode}: {log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"dashboard did not answer within {timeout_s} s: {log_path.read_text()[-2000:]}"
                )
            time.sleep(0.2)
        yield url
    finally:
        # The server runs in its own session: stop exactly that process group.
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()


def launch_chromium(playwright: Any) -> Any:
    """Debian's Chromium, headless; Playwright never downloads a browser of its own here."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


def wait_idle(page: Any, timeout_ms: int = 20_000) -> None:
    """Wait until Streamlit finished the rerun and every element has drawn (no skeletons, charts drawn)."""
    page.wait_for_function(
        """() => {
            const app = document.querySelector('[data-testid="stApp"]');
            if (!app || app.getAttribute('data-test-script-state') === 'running') return false;
            const busy = '[data-testid="stSkeleton"], [data-testid="stStatusWidget"]';
            if (document.querySelector(busy)) return false;
            const charts = document.querySelectorAll('[data-testid="stVegaLiteChart"]');
            for (const c of charts) { if (!c.querySelector('canvas, svg')) return false; }
            const images = document.querySelectorAll('[data-testid="stImage"] img');
            for (const i of images) { if (!i.complete || i.naturalWidth === 0) return false; }
            return true;
        }""",
        timeout=timeout_ms,
    )
    page.wait_for_timeout(300)


def log_in(page: Any, url: str, username: str, password: str) -> None:
    """Open `url` and log in. A session this browser still holds (the session cookie) is logged out
    first, so the log-in form is always what comes first."""
    page.goto(url)
    form, signed_in = page.get_by_role("button", name="Log in"), page.get_by_text("Signed in as")
    form.or_(signed_in).first.wait_for(timeout=20_000)
    if form.count() == 0:
        page.locator("[data-testid=stSidebar]").get_by_role("button", name="Log out").click()
        form.wait_for(timeout=20_000)
        page.goto(url)
    page.get_by_role("textbox", name="Username").fill(username)
    page.get_by_role("textbox", name="Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.get_by_text("Signed in as").wait_for(timeout=20_000)
    wait_idle(page)
