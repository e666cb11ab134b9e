"""A store's broker and aggregator for the installer tests: a private Mosquitto set up by the product's own
`showroom hardware broker-config` and `provision` (accounts and ACLs: the node may write its own topics and
read its commissioning reply; the aggregator reads everything and writes commissioning replies), and
`showroom aggregator run` on SQLite connected to it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.netkit import free_port, wait_port

REPO = Path(__file__).resolve().parents[2]
SHOWROOM = [sys.executable, "-c", "from showroom.cli import main; main()"]
"""The `showroom` command of this checkout, whatever is installed as the console script."""


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


def provision_broker(workdir: Path, port: int, store_id: str, node_id: str) -> tuple[Path, Account, Account]:
    """The broker folder as an installer makes it: `showroom hardware broker-config`, then `showroom hardware
    provision` for the node. Returns (mosquitto.conf, the node's account, the aggregator's account)."""
    broker_dir, node_dir = workdir / "broker", workdir / "node"
    for args in (
        ["broker-config", "--dir", str(broker_dir), "--port", str(port)],
        [
            "provision",
            "--store",
            store_id,
            "--node",
            node_id,
            "--dir",
            str(broker_dir),
            "--out",
            str(node_dir),
        ],
    ):
        done = subprocess.run([*SHOWROOM, "hardware", *args], cwd=REPO, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
    node_broker = yaml.safe_load((node_dir / "node.yaml").read_text())["broker"]
    aggregator = yaml.safe_load((broker_dir / "aggregator.yaml").read_text())
    return (
        broker_dir / "mosquitto.conf",
        Account(node_broker["username"], _secret(node_dir, node_broker["password_file"])),
        Account(aggregator["username"], _secret(broker_dir, aggregator["password_file"])),
    )


def _secret(folder: Path, password_file: str) -> str:
    path = Path(password_file)
    return (path if path.is_absolute() else folder / path).read_text().splitlines()[0]


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
def store_broker(workdir: Path, store_id: str, node_id: str) -> Iterator[StoreBroker]:
    """A private Mosquitto on a free port, provisioned with the node's and the aggregator's accounts."""
    require_mosquitto()
    port = free_port()
    conf, node, aggregator = provision_broker(workdir, port, store_id, node_id)
    log = (workdir / "mosquitto.log").open("ab")
    proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=log, stderr=log)
    try:
        wait_port(port)
        yield StoreBroker(port, node, aggregator, workdir)
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
