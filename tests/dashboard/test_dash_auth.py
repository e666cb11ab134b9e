"""Users file, password hashes, role scoping and the `showroom dashboard` command line."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from dashboard.auth import (
    AccessDeniedError,
    UsersFileError,
    authenticate,
    check_hash_format,
    hash_password,
    load_users,
    user_for_identity,
    users_yaml,
    verify_password,
)
from dashboard.cli import dashboard_group, streamlit_argv
from showroom.cli import main as showroom_main

FAST = {"n": 2**10}  # cheap hashes for tests that do not measure cost


def _write_users(tmp_path: Path, entries: list[dict[str, object]]) -> Path:
    path = tmp_path / "users.yaml"
    path.write_text(users_yaml(entries), encoding="utf-8")
    return path


def test_hash_roundtrip_and_salted() -> None:
    a = hash_password("correct horse", **FAST)
    b = hash_password("correct horse", **FAST)
    assert a != b, "each hash must carry its own random salt"
    assert verify_password("correct horse", a)
    assert verify_password("correct horse", b)
    assert not verify_password("correct horsE", a)
    assert "correct" not in a


def test_default_hash_cost_is_not_trivial() -> None:
    encoded = hash_password("a long password")
    n, r, p, _, _ = check_hash_format(encoded)
    assert (n, r, p) == (2**14, 8, 1)
    start = time.perf_counter()
    verify_password("a long password", encoded)
    assert time.perf_counter() - start > 0.005


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        ("plain-text-password", "scrypt$N$r$p$salt$key"),
        ("scrypt$1000$8$1$AAAAAAAAAAA$AAAA", "out of range"),
        ("scrypt$x$8$1$AAAA$AAAA", "malformed"),
    ],
)
def test_bad_hash_formats_are_named(bad: str, words: str) -> None:
    with pytest.raises(ValueError, match=words.replace("$", r"\$")):
        check_hash_format(bad)


def test_short_password_refused() -> None:
    with pytest.raises(ValueError, match="at least 8"):
        hash_password("short")


def test_load_users_and_authenticate(tmp_path: Path) -> None:
    path = _write_users(
        tmp_path,
        [
            {
                "username": "Li.Wei",
                "name": "李伟",
                "role": "store_manager",
                "stores": ["sh-01"],
                "password_hash": hash_password("manager-pass", **FAST),
                "language": "zh",
            },
            {
                "username": "hq",
                "role": "brand_hq",
                "brands": ["aurora"],
                "password_hash": hash_password("hq-pass-123", **FAST),
            },
        ],
    )
    users = load_users(path)
    assert set(users) == {"li.wei", "hq"}
    user = authenticate(users, "li.wei", "manager-pass")
    assert user is not None and user.name == "李伟" and user.language == "zh"
    assert authenticate(users, " LI.WEI ", "manager-pass") is user
    assert authenticate(users, "li.wei", "wrong-pass") is None
    assert authenticate(users, "nobody", "manager-pass") is None


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"username": "a", "role": "store_manager", "stores": []}, "needs at least one store"),
        ({"username": "a", "role": "brand_hq"}, "needs at least one brand"),
        ({"username": "a", "role": "brand_hq", "brands": ["x"], "stores": ["s"]}, "remove 'stores'"),
        ({"username": "a", "role": "admin"}, "role"),
        ({"username": "a", "role": "installer", "password": "x"}, "password"),
    ],
)
def test_invalid_users_file_names_problem(tmp_path: Path, entry: dict[str, object], message: str) -> None:
    entry.setdefault("password_hash", hash_password("whatever-123", **FAST))
    path = _write_users(tmp_path, [entry])
    with pytest.raises(UsersFileError, match=message) as info:
        load_users(path)
    assert str(path) in str(info.value)


def test_duplicate_usernames_rejected(tmp_path: Path) -> None:
    h = hash_password("whatever-123", **FAST)
    path = _write_users(
        tmp_path,
        [
            {"username": "a", "role": "installer", "password_hash": h},
            {"username": "A", "role": "installer", "password_hash": h},
        ],
    )
    with pytest.raises(UsersFileError, match="appears twice"):
        load_users(path)


def test_identity_provider_entries(tmp_path: Path) -> None:
    h = hash_password("whatever-123", **FAST)
    path = _write_users(
        tmp_path,
        [
            {"username": "both", "role": "installer", "password_hash": h, "email": "Both@Dealer.example"},
            {"username": "idp", "role": "store_manager", "stores": ["s1"], "email": "idp@dealer.example"},
        ],
    )
    users = load_users(path)
    assert authenticate(users, "both", "whatever-123") is users["both"]
    assert authenticate(users, "idp", "") is None  # no password: the provider is the only way in
    assert user_for_identity(users, {"email": "both@dealer.EXAMPLE"}) is users["both"]
    assert user_for_identity(users, {"email": "idp@dealer.example", "email_verified": True}) is users["idp"]
    assert user_for_identity(users, {"email": "idp@dealer.example", "email_verified": False}) is None
    assert user_for_identity(users, {"email": "nobody@dealer.example"}) is None
    assert user_for_identity(users, {}) is None
    for bad, message in [
        ([{"username": "x", "role": "installer"}], "needs a 'password_hash', an 'email'"),
        ([{"username": "x", "role": "installer", "email": "not-an-email"}], "email"),
        (
            [
                {"username": "x", "role": "installer", "email": "same@dealer.example"},
                {"username": "y", "role": "installer", "email": "SAME@dealer.example"},
            ],
            "email 'SAME@dealer.example' appears twice",
        ),
    ]:
        with pytest.raises(UsersFileError, match=message):
            load_users(_write_users(tmp_path, bad))


def test_missing_users_file(tmp_path: Path) -> None:
    with pytest.raises(UsersFileError, match="cannot read"):
        load_users(tmp_path / "absent.yaml")


def test_role_scoping(tmp_path: Path) -> None:
    h = hash_password("whatever-123", **FAST)
    users = load_users(
        _write_users(
            tmp_path,
            [
                {"username": "m", "role": "store_manager", "stores": ["s1"], "password_hash": h},
                {"username": "hq", "role": "brand_hq", "brands": ["aurora"], "password_hash": h},
                {"username": "inst", "role": "installer", "password_hash": h},
                {"username": "inst-n", "role": "installer", "brands": ["nova"], "password_hash": h},
            ],
        )
    )
    brand_of: dict[str, str | None] = {"s1": "aurora", "s2": "aurora", "s3": "nova"}
    assert users["m"].visible_stores(brand_of) == ["s1"]
    assert users["hq"].visible_stores(brand_of) == ["s1", "s2"]
    assert users["inst"].visible_stores(brand_of) == ["s1", "s2", "s3"]
    assert users["inst-n"].visible_stores(brand_of) == ["s3"]
    assert users["m"].sees_visitor_figures and users["hq"].sees_visitor_figures
    assert not users["inst"].sees_visitor_figures
    assert issubclass(AccessDeniedError, PermissionError)


def test_cli_hash_password_stdin() -> None:
    result = CliRunner().invoke(dashboard_group, ["hash-password", "--password-stdin"], input="s3cret-pass\n")
    assert result.exit_code == 0, result.output
    assert verify_password("s3cret-pass", result.output.strip())


def test_cli_hash_password_prompt_confirms() -> None:
    result = CliRunner().invoke(dashboard_group, ["hash-password"], input="s3cret-pass\ns3cret-pass\n")
    assert result.exit_code == 0, result.output
    assert verify_password("s3cret-pass", result.output.strip().splitlines()[-1])


def test_cli_requires_db_and_users(tmp_path: Path) -> None:
    result = CliRunner().invoke(dashboard_group, [])
    assert result.exit_code == 2
    assert "--db and --users" in result.output


def test_cli_rejects_bad_users_file_before_starting(tmp_path: Path) -> None:
    db = tmp_path / "agg.db"
    db.write_bytes(b"")
    users = tmp_path / "users.yaml"
    users.write_text("users: [{username: a, role: installer, password_hash: nope}]\n", encoding="utf-8")
    result = CliRunner().invoke(dashboard_group, ["--db", str(db), "--users", str(users)])
    assert result.exit_code == 1
    assert "password_hash" in result.output


def test_dashboard_registered_on_root_command() -> None:
    result = CliRunner().invoke(showroom_main, ["dashboard", "--help"])
    assert result.exit_code == 0, result.output
    assert "hash-password" in result.output
    out = subprocess.run(
        [sys.executable, "-m", "streamlit", "version"], capture_output=True, text=True, check=True
    ).stdout
    assert "Streamlit" in out


def test_streamlit_argv_is_headless_without_usage_stats() -> None:
    argv = streamlit_argv(8765, "127.0.0.1")
    assert "--server.headless=true" in argv
    assert "--browser.gatherUsageStats=false" in argv
    assert "--server.port=8765" in argv
    assert argv[argv.index("run") + 1].endswith("dashboard/server.py")  # the app and its cookie route


def test_example_users_file_is_valid() -> None:
    users = load_users(Path(__file__).resolve().parents[2] / "examples" / "dashboard-users.yaml")
    assert {u.role for u in users.values()} == {"store_manager", "brand_hq", "installer"}
    assert all(authenticate(users, name, "change-me-now") is not None for name in users)
