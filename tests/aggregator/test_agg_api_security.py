"""The HTTP API as a hostile client meets it: the exact `serve` and `token create` command forms, scoped
and hashed tokens, private secret files, bounded connections and requests, TLS, no secret in any log, and
schemathesis over the generated OpenAPI description."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

from aggregator.api import ApiServer
from aggregator.ingest import Ingestor, Message
from aggregator.registry import parse_registry
from aggregator.storage import open_storage
from aggregator.synth import funnel_day_plans, local_midnight_utc, stamper_for, visit_events
from aggregator.tokens import TokenBook
from edge.events import to_json, topic_for
from showroom.cli import main
from tests.netkit import free_port, wait_port

OPERATOR_TOKEN = "operator-token-0123456789abcdef"
DAY = date(2026, 11, 23)
STORES = {"sh-pudong-01": "aurora", "bj-chaoyang-02": "aurora", "gz-tianhe-03": "zenith"}


def make_db(db: str) -> str:
    ing = Ingestor(open_storage(db))
    ing.load_registry(
        parse_registry(
            {
                "stores": [
                    {"store_id": s, "name": s, "brand": b, "region": "east", "timezone": "Asia/Shanghai"}
                    for s, b in STORES.items()
                ]
            }
        )
    )
    for store in STORES:
        events = [
            e
            for p in funnel_day_plans(local_midnight_utc(DAY, "Asia/Shanghai"), 5, 3, 1, 0)
            for e in visit_events(stamper_for(store), p)
        ]
        ing.ingest([Message(topic_for(e), to_json(e), datetime.now(UTC)) for e in events])
    ing.storage.close()
    return db


def stored_bytes(db: str) -> bytes:
    """Everything the database holds: the SQLite file and its write-ahead log, or every PostgreSQL row."""
    if db.startswith("postgresql"):
        with psycopg.connect(db) as pg:
            tables = [
                str(r[0])
                for r in pg.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
            ]
            rows = [str(r[0]) for t in tables for r in pg.execute(f'SELECT t::text FROM "{t}" t').fetchall()]
        assert rows  # the stores and the tokens at least
        return "\n".join(rows).encode()
    path = Path(db)
    wal = path.with_name(path.name + "-wal")
    return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def secret_file(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def token_create(db: str, *scope: str) -> str:
    r = CliRunner().invoke(main, ["aggregator", "token", "create", "--db", str(db), *scope])
    assert r.exit_code == 0, r.output
    [token] = r.output.split()
    return token


@dataclass
class Served:
    url: str
    proc: subprocess.Popen[bytes]
    tokens: dict[str, str]
    db: str
    log: Path
    tmp: Path  # the server's own files

    def get(self, path: str, token: str | None = None, method: str = "GET") -> tuple[int, Any]:
        req = urllib.request.Request(self.url + path, method=method)
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            body = err.read()
            return err.code, json.loads(body) if body.startswith(b"{") else body


def serve_cmd(db: str, port: int, *extra: str) -> list[str]:
    showroom = str(Path(sys.executable).parent / "showroom")
    return [showroom, "aggregator", "serve", "--db", str(db), "--port", str(port), *extra]


@pytest.fixture(scope="module")
def served(module_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The API served from a database of each backend, the same world in both."""
    tmp = tmp_path_factory.mktemp("api-sec")
    db = make_db(module_db)
    tokens = {
        "store": token_create(db, "--store", "sh-pudong-01"),
        "brand": token_create(db, "--brand", "aurora"),
        "operator": OPERATOR_TOKEN,
    }
    token_file = secret_file(tmp / "tokens.txt", OPERATOR_TOKEN + "\n")
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(Path.cwd())}
    log = tmp / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            serve_cmd(db, port, "--token-file", str(token_file), "--header-timeout-s", "1"),
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        try:
            wait_port(port, timeout_s=30)
        except TimeoutError:
            raise AssertionError(log.read_text()) from None
        yield Served(f"http://127.0.0.1:{port}", proc, tokens, db, log, tmp)
    finally:
        proc.terminate()
        proc.wait(10)


# --- tokens ----------------------------------------------------------------------------------------------


def test_tokens_are_printed_once_and_kept_hashed(served: Served) -> None:
    raw = stored_bytes(served.db)
    for name in ("store", "brand"):
        assert served.tokens[name].encode() not in raw
        assert len(served.tokens[name]) >= 40


def test_a_store_token_reads_its_store_only(served: Served) -> None:
    token = served.tokens["store"]
    assert served.get(f"/v1/stores/sh-pudong-01/funnel?date={DAY}", token)[0] == 200
    for other in ("bj-chaoyang-02", "gz-tianhe-03"):
        status, body = served.get(f"/v1/stores/{other}/funnel?date={DAY}", token)
        assert status == 404, body
        assert served.get(f"/v1/stores/{other}/daily?start={DAY}&end={DAY}", token)[0] == 404
    assert [s["store_id"] for s in served.get("/v1/stores", token)[1]] == ["sh-pudong-01"]
    league = served.get(f"/v1/league?start={DAY}&end={DAY}", token)[1]
    assert [r["store"]["store_id"] for r in league] == ["sh-pudong-01"]
    rows = served.get(f"/v1/daily-metrics?start={DAY}&end={DAY}", token)[1]
    assert {r["store_id"] for r in rows} == {"sh-pudong-01"}
    nodes = served.get("/v1/nodes?store=gz-tianhe-03", token)[1]
    assert nodes == []


def test_a_brand_token_reads_its_brands_stores_only(served: Served) -> None:
    token = served.tokens["brand"]
    assert sorted(s["store_id"] for s in served.get("/v1/stores", token)[1]) == [
        "bj-chaoyang-02",
        "sh-pudong-01",
    ]
    assert served.get(f"/v1/stores/bj-chaoyang-02/hourly?date={DAY}", token)[0] == 200
    assert served.get(f"/v1/stores/gz-tianhe-03/hourly?date={DAY}", token)[0] == 404
    every = served.get("/v1/stores", served.tokens["operator"])[1]
    assert sorted(s["store_id"] for s in every) == sorted(STORES)
    assert served.get("/v1/stores", "srv_not-a-token-at-all-0123456789")[0] == 401


def test_dates_out_of_range_and_bad_methods_are_client_errors(served: Served) -> None:
    token = served.tokens["operator"]
    store = "sh-pudong-01"
    for path in (
        f"/v1/stores/{store}/funnel?date=0001-01-01",
        f"/v1/stores/{store}/funnel?date=9999-12-31",
        f"/v1/stores/{store}/hourly?date=0001-01-01",
        f"/v1/stores/{store}/daily?start=0001-01-01&end=0001-01-02",
        f"/v1/stores/{store}/daily?start=9999-12-30&end=9999-12-31",
        f"/v1/stores/{store}/daily?start=2026-01-01&end=2027-02-05",  # 401 days
        f"/v1/stores/{store}/daily?start=2026-01-02&end=2026-01-01",
        "/v1/league?start=0001-01-01&end=0001-01-01",
    ):
        status, body = served.get(path, token)
        assert status == 400 and body["error"], (path, status, body)
    assert served.get(f"/v1/stores/{store}/daily?start=2026-01-01&end=2027-02-04", token)[0] == 200
    assert served.get("/v1/stores", token, method="TRACE")[0] == 405
    assert served.get("/v1/stores", token, method="POST")[0] == 405


def test_the_openapi_description_declares_the_limits(served: Served) -> None:
    doc = served.get("/openapi.json")[1]
    params = {p["name"]: p for p in doc["paths"]["/v1/stores/{store_id}/daily"]["get"]["parameters"]}
    assert "400 days" in params["end"]["description"]
    assert (
        params["start"]["schema"]["pattern"]
        == params["end"]["schema"]["pattern"]
        == r"^20[0-9]{2}-[0-9]{2}-[0-9]{2}$"
    )
    assert params["store_id"]["schema"]["pattern"]


def test_half_open_connections_do_not_hold_the_server(served: Served) -> None:
    port = int(served.url.rsplit(":", 1)[1])
    held = []
    for _ in range(300):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"GET /v1/stores HTTP/1.1\r\nHost: x\r\n")  # and never the end of the headers
        held.append(s)
    try:
        t0 = time.monotonic()
        assert served.get("/v1/stores", served.tokens["operator"])[0] == 200
        assert time.monotonic() - t0 < 2.0
        time.sleep(2.5)  # the header timeout is 1 s
        closed = 0
        for s in held:
            s.settimeout(2)
            with contextlib.suppress(TimeoutError, ConnectionResetError):
                closed += s.recv(1024) == b""
        print(f"half-open connections closed by the server: {closed} of {len(held)}")
        assert closed == len(held)
    finally:
        for s in held:
            s.close()


# --- secret files and TLS --------------------------------------------------------------------------------


def test_token_and_key_files_are_refused_unless_private(tmp_path: Path) -> None:
    db = make_db(str(tmp_path / "agg.sqlite"))  # secret files and TLS, whatever the storage: SQLite only
    loose = secret_file(tmp_path / "tokens.txt", OPERATOR_TOKEN + "\n", 0o644)
    r = CliRunner().invoke(
        main, ["aggregator", "serve", "--db", str(db), "--port", "0", "--token-file", str(loose)]
    )
    assert r.exit_code == 2 and "0600" in r.output and "Traceback" not in r.output
    tokens = secret_file(tmp_path / "ok.txt", OPERATOR_TOKEN + "\n")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    make_cert(cert, key)
    key.chmod(0o640)
    r = CliRunner().invoke(
        main,
        ["aggregator", "serve", "--db", str(db), "--port", "0", "--token-file", str(tokens),
         "--certfile", str(cert), "--keyfile", str(key)],
    )  # fmt: skip
    assert r.exit_code == 2 and "key.pem" in r.output and "0600" in r.output
    r = CliRunner().invoke(
        main, ["aggregator", "token", "create", "--db", str(db), "--brand", "aurora", "--store", "x"]
    )
    assert r.exit_code == 2 and "exactly one" in r.output
    # the broker password of `aggregator run` is a secret file too
    password = secret_file(tmp_path / "mqtt.password", "s3cret-password\n", 0o644)
    r = CliRunner().invoke(
        main,
        [
            "aggregator",
            "run",
            "--broker",
            "mqtt://127.0.0.1:9",
            "--db",
            str(db),
            "--password-file",
            str(password),
        ],
    )
    assert r.exit_code == 2 and "0600" in r.output and "s3cret-password" not in r.output, r.output


def make_cert(cert: Path, key: Path) -> None:
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    key.chmod(0o600)


def test_tls(tmp_path: Path) -> None:
    db = make_db(str(tmp_path / "agg.sqlite"))  # secret files and TLS, whatever the storage: SQLite only
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    make_cert(cert, key)
    server = ApiServer(("127.0.0.1", 0), db, TokenBook([OPERATOR_TOKEN]), certfile=cert, keyfile=key)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        wait_port(server.server_port, timeout_s=10)
        ctx = ssl.create_default_context(cafile=str(cert))
        req = urllib.request.Request(f"https://127.0.0.1:{server.server_port}/v1/stores")
        req.add_header("Authorization", f"Bearer {OPERATOR_TOKEN}")
        with urllib.request.urlopen(req, timeout=10, context=ctx) as resp:
            assert resp.status == 200 and len(json.loads(resp.read())) == len(STORES)
        with pytest.raises(OSError):  # plain HTTP is not answered
            urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/healthz", timeout=5)
    finally:
        server.shutdown()
        server.server_close()


# --- schemathesis over the generated OpenAPI description ------------------------------------------------


def test_schemathesis_finds_no_failure(served: Served) -> None:
    schemathesis = Path(sys.executable).parent / "schemathesis"
    config = Path(__file__).with_name("schemathesis.toml")
    r = subprocess.run(
        [str(schemathesis), "--config-file", str(config), "run", served.url + "/openapi.json",
         "-H", f"Authorization: Bearer {served.tokens['operator']}", "--max-examples", "5", "--workers", "1",
         "--phases", "coverage,fuzzing", "--suppress-health-check", "all", "--seed", "1"],
        capture_output=True, text=True, timeout=120, cwd=served.tmp,  # its example store stays there
    )  # fmt: skip
    summary = r.stdout[r.stdout.find("SUMMARY") :]
    print(summary)
    assert r.returncode == 0 and "No issues found" in r.stdout, r.stdout[-4000:]


# --- last: stops the served API ---------------------------------------------------------------------------


def test_the_api_never_logs_a_secret(served: Served) -> None:
    for token in served.tokens.values():
        served.get("/v1/stores", token)
        served.get("/v1/stores", token + "x")
    served.proc.terminate()
    served.proc.wait(10)
    out = served.log.read_text(encoding="utf-8")
    assert "serving http://" in out and "GET /v1/stores" in out  # it does log requests
    for token in served.tokens.values():
        assert token not in out
