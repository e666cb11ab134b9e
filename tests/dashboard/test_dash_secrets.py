"""The dashboard never logs a secret: `showroom --log-level debug dashboard` with an identity provider's
secrets configured, a failed and a good log-in in a real browser; neither password, hash, client secret
nor cookie secret appears in anything the server wrote."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import dash_world as world
import pytest
from dash_server import CHROMIUM, SHOWROOM, launch_chromium, wait_idle

from tests.netkit import free_port

if not CHROMIUM.exists():
    if os.environ.get("SHOWROOM_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{CHROMIUM} is missing (apt-get install chromium)", pytrace=False)
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")

CLIENT_SECRET = "oidc-client-secret-7f3a9c"
COOKIE_SECRET = "cookie-secret-b81e22d4"
WRONG_PASSWORD = "wrong-Passw0rd-5e1d"


def test_the_dashboard_never_logs_a_secret(tmp_path: Path) -> None:
    db = world.build_db(tmp_path / "aggregator.sqlite")
    users = world.write_users(tmp_path / "users.yaml")
    (tmp_path / ".streamlit").mkdir()
    (tmp_path / ".streamlit" / "secrets.toml").write_text(
        "[auth]\n"
        'redirect_uri = "http://127.0.0.1/oauth2callback"\n'
        f'cookie_secret = "{COOKIE_SECRET}"\n'
        'client_id = "showroom"\n'
        f'client_secret = "{CLIENT_SECRET}"\n'
        'server_metadata_url = "http://127.0.0.1:9/.well-known/openid-configuration"\n',
        encoding="utf-8",
    )
    port = free_port()
    log_path = tmp_path / "dashboard.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(SHOWROOM), "--log-level", "debug", "dashboard", "--db", str(db), "--users", str(users),
             "--port", str(port)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=tmp_path,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(Path.cwd()),
                 "STREAMLIT_LOGGER_LEVEL": "debug"},
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log_path.read_text()[-2000:]
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1):
                    break
            except OSError:
                assert time.monotonic() < deadline, log_path.read_text()[-2000:]
                time.sleep(0.2)
        with sync_api.sync_playwright() as p:
            browser = launch_chromium(p)
            page = browser.new_page()
            page.goto(url)
            for password in (WRONG_PASSWORD, world.PASSWORD):
                page.get_by_role("textbox", name="Username").fill("li.wei")
                page.get_by_role("textbox", name="Password").fill(password)
                # the form's own button (the identity provider's is a second "Log in")
                page.get_by_test_id("stBaseButton-primaryFormSubmit").click()
                if password == WRONG_PASSWORD:
                    page.get_by_text("Unknown username or wrong password.").wait_for()
            page.get_by_text("Signed in as").wait_for(timeout=20_000)
            wait_idle(page)
            browser.close()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    text = log_path.read_text(encoding="utf-8", errors="replace")
    assert "dashboard on" in text and "Running script" in text  # it did log, at its most talkative level
    hashes = re.findall(r"scrypt\$[^\s\"']+", users.read_text())
    assert hashes
    for secret in (world.PASSWORD, WRONG_PASSWORD, CLIENT_SECRET, COOKIE_SECRET, *hashes):
        assert secret not in text, f"a secret is in the dashboard's log: {secret[:6]}..."
