"""Session cookies (signed, expiring, revocable on the server) and the per-client log-in lock-out."""

from __future__ import annotations

import pytest

from dashboard.sessions import HANDOFF_TTL_S, SESSION_COOKIE, LoginGuard, SessionStore


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_cookie_opens_its_session_until_revoked() -> None:
    store = SessionStore()
    cookie = store.issue("Li.Wei")
    assert store.username(cookie) == "li.wei"
    other = store.issue("li.wei")
    store.revoke(cookie)
    assert store.username(cookie) is None
    assert store.username(other) == "li.wei", "log-out ends one session, not the user's other browsers"
    assert store.revoke_user("li.wei") == 1
    assert store.username(other) is None


def test_forged_foreign_or_tampered_cookies_open_nothing() -> None:
    store = SessionStore()
    cookie = store.issue("li.wei")
    assert store.username(cookie[:-2] + ("AA" if cookie[-2:] != "AA" else "BB")) is None
    assert store.username(SessionStore().issue("li.wei")) is None, "another server's key"
    assert store.username("") is None and store.username(None) is None
    assert store.username("not-a-cookie") is None
    # A client cookie is signed for another purpose: it is no session cookie.
    _, client_cookie = store.new_client()
    assert store.username(client_cookie) is None


def test_sessions_expire() -> None:
    clock = Clock()
    store = SessionStore(secret=b"k" * 32, ttl_s=60, clock=clock)
    cookie = store.issue("li.wei")
    clock.now += 59
    assert store.username(cookie) == "li.wei"
    clock.now += 2
    assert store.username(cookie) is None


def test_client_ids_round_trip_and_refuse_forgeries() -> None:
    store = SessionStore()
    client, cookie = store.new_client()
    assert store.client_id(cookie) == client
    assert store.client_id(cookie + "x") is None
    assert store.client_id(store.issue("li.wei")) is None


def test_lock_out_is_per_client_and_username() -> None:
    clock = Clock()
    guard = LoginGuard(per_client=5, per_address=20, lock_s=30, clock=clock)
    for _ in range(5):
        assert guard.wait_s("guesser", None, "manager") == 0
        guard.record("guesser", None, "manager", ok=False)
    assert guard.wait_s("guesser", None, "Manager ") > 29
    assert guard.wait_s("real-browser", None, "manager") == 0
    assert guard.wait_s("guesser", None, "someone-else") == 0
    clock.now += 31
    assert guard.wait_s("guesser", None, "manager") == 0


def test_a_guesser_who_drops_cookies_is_stopped_by_address() -> None:
    guard = LoginGuard(per_client=5, per_address=20, lock_s=30, clock=Clock())
    for attempt in range(20):
        guard.record(f"fresh-client-{attempt}", "203.0.113.7", "manager", ok=False)
    assert guard.wait_s("fresh-client-99", "203.0.113.7", "manager") > 0
    assert guard.wait_s("office", "198.51.100.2", "manager") == 0


def test_a_handoff_code_stands_for_its_cookie_once_and_briefly() -> None:
    """The browser trades a one-time code for its cookie at the server's cookie route (the server sets it
    HttpOnly): the code works once, not after `HANDOFF_TTL_S`, and only for the dashboard's own cookies."""
    now = [1000.0]
    store = SessionStore(clock=lambda: now[0])
    cookie = store.issue("li.wei")
    code = store.handoff(SESSION_COOKIE, cookie, store.ttl_s)
    assert cookie not in code
    assert store.redeem(code) == (SESSION_COOKIE, cookie, int(store.ttl_s))
    assert store.redeem(code) is None  # used
    late = store.handoff(SESSION_COOKIE, cookie, store.ttl_s)
    now[0] += HANDOFF_TTL_S + 1
    assert store.redeem(late) is None  # expired
    assert store.redeem("made-up") is None
    assert store.redeem(store.handoff(SESSION_COOKIE, "", 0)) == (SESSION_COOKIE, "", 0)  # a deletion
    with pytest.raises(ValueError, match="no cookie 'other'"):
        store.handoff("other", "x", 60)
