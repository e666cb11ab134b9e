"""Shared test set-up: real services, real model files, real footage.

Tests that need a service use the `mqtt_broker` / `postgres_dsn` fixtures. Where the service is down they
skip on a developer's machine, but fail when SHOWROOM_REQUIRE_SERVICES=1 (set by .ci/run), so CI can never
pass by skipping.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pgkit import ClusterUnavailableError, PasswordCluster, PgDatabases, password_cluster

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
MODEL_DIR = Path(os.environ.setdefault("SHOWROOM_MODEL_DIR", str(SHARED / "models")))
PETS_DIR = SHARED / "data" / "pets09_s2l1"
EXAMPLES = REPO / "examples"


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    """Skip (developer machine) or fail (CI) when a service the test needs is not reachable."""
    if not _reachable(host, port):
        missing_service(f"{name} is not reachable on {host}:{port}")


def missing_service(message: str) -> None:
    """Skip with `message` on a developer's machine; fail with it where SHOWROOM_REQUIRE_SERVICES=1."""
    if os.environ.get("SHOWROOM_REQUIRE_SERVICES") == "1":
        pytest.fail(message + " and SHOWROOM_REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip(message)


@pytest.fixture
def mqtt_broker() -> tuple[str, int]:
    """The machine's Mosquitto on 127.0.0.1:1883."""
    require_service("MQTT broker", "127.0.0.1", 1883)
    return "127.0.0.1", 1883


@pytest.fixture
def postgres_dsn() -> str:
    """The machine's PostgreSQL (trust auth, database `test`)."""
    require_service("PostgreSQL", "127.0.0.1", 5432)
    return os.environ.get("SHOWROOM_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def pg_databases() -> Iterator[PgDatabases]:
    """Migrated databases on the machine's PostgreSQL, all dropped at the end of the run."""
    require_service("PostgreSQL", "127.0.0.1", 5432)
    dsn = os.environ.get("SHOWROOM_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
    dbs = PgDatabases(dsn)
    yield dbs
    dbs.drop_all()


@pytest.fixture(scope="session")
def password_pg() -> Iterator[PasswordCluster]:
    """A private PostgreSQL server that checks passwords (the machine's trusts everyone), for the run."""
    try:
        with password_cluster() as cluster:
            yield cluster
    except ClusterUnavailableError as exc:
        missing_service(f"cannot start a private PostgreSQL server: {exc}")


@pytest.fixture
def pets_dir() -> Path:
    """PETS09-S2L1 footage with ground truth (test data only, never copied into the product)."""
    if not (PETS_DIR / "gt.txt").exists():
        pytest.fail(f"test footage missing: {PETS_DIR}")
    return PETS_DIR


@pytest.fixture
def model_dir() -> Path:
    if not MODEL_DIR.is_dir():
        pytest.fail(f"model directory missing: {MODEL_DIR} (set SHOWROOM_MODEL_DIR)")
    return MODEL_DIR
