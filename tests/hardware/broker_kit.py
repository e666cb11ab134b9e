"""A store's broker and aggregator for the installer tests: a private Mosquitto with accounts and ACLs (the
node may write its own topics and read its commissioning reply; the aggregator reads everything and writes
commissioning replies), and `showroom aggregator run` on SQLite connected to it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHOWROOM = [sys.executable, "-c", "from showroom.cli import main; main()"]
"""The `showroom` command of this checkout, whatever is installed as the console script."""

AGGREGATOR_USER = ("aggregator", "agg-secret")


@dataclass(frozen=True)
class Account:
    username: str
    password: str


@dataclass(frozen=True)
class StoreBroker:
    port: int
    node: Account
    aggregator: Account
    workdir: Path

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout_s} s")


def write_broker_config(workdir: Path, port: int, store_id: str, node_id: str, node: Account) -> Path:
    """mosquitto.conf, password file and ACL for one node and the aggregator (what the provisioning
    command will write; kept in this one function so it can take its place)."""
    pwfile, aclfile = workdir / "passwords", workdir / "acl"
    pwfile.write_text("")
    for user, password in ((node.username, node.password), AGGREGATOR_USER):
        add = ["mosquitto_passwd", "-b", str(pwfile), user, password]
        subprocess.run(add, check=True, capture_output=True)
    pwfile.chmod(0o600)
    aclfile.write_text(
        f"user {node.username}\n"
        f"topic write showroom/v1/{store_id}/{node_id}/#\n"
        f"topic read showroom/v1/{store_id}/{node_id}/commission/reply\n"
        f"user {AGGREGATOR_USER[0]}\n"
        "topic read showroom/v1/#\n"
        "topic write showroom/v1/+/+/commission/reply\n"
    )
    lines = ["per_listener_settings true"]
    if os.geteuid() == 0:
        lines.append("user root")  # otherwise it drops to a user that cannot read the test's folder
    lines += [
        f"listener {port} 127.0.0.1",
        "allow_anonymous false",
        f"password_file {pwfile}",
        f"acl_file {aclfile}",
        "persistence false",
    ]
    conf = workdir / "mosquitto.conf"
    conf.write_text("\n".join(lines) + "\n")
    return conf


def require_mosquitto() -> None:
    if shutil.which("mosquitto") and shutil.which("mosquitto_passwd"):
        return
    message = "the mosquitto broker binary is not installed"
    if os.environ.get("SHOWROOM_REQUIRE_SERVICES") == "1":
        pytest.fail(message + " and SHOWROOM_REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip(message)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@contextmanager
def store_broker(workdir: Path, store_id: str, node_id: str, node: Account) -> Iterator[StoreBroker]:
    """A private Mosquitto on a free port with the node's and the aggregator's accounts."""
    require_mosquitto()
    port = free_port()
    conf = write_broker_config(workdir, port, store_id, node_id, node)
    log = (workdir / "mosquitto.log").open("ab")
    proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=log, stderr=log)
    try:
        wait_port(port)
        yield StoreBroker(port, node, Account(*AGGREGATOR_USER), workdir)
    finally:
        _stop(proc)
        log.close()


@contextmanager
def running_aggregator(broker: StoreBroker, db_path: Path) -> Iterator[Path]:
    """`showroom aggregator run` (thread writer) on `db_path`, connected and subscribed; yields its log."""
    log_path = db_path.with_suffix(".log")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "AGG_PASSWORD": broker.aggregator.password}
    args = [*SHOWROOM, "aggregator", "run", "--broker", broker.url, "--db", str(db_path)]
    args += ["--username", broker.aggregator.username, "--password-env", "AGG_PASSWORD", "--writer", "thread"]
    with log_path.open("ab") as log:
        proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while "subscribing to" not in log_path.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the aggregator did not connect:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.1)
        time.sleep(0.3)  # the SUBACK follows the connect log line
        yield log_path
    finally:
        _stop(proc)
