"""Log-in sessions that survive a reload, and the failed-log-in lock-out.

A session is a random id kept on the server (user, expiry) and handed to the browser as a cookie signed
and time-stamped by itsdangerous, so a cookie cannot be forged, is refused once older than the session's
lifetime, and stops working the moment the server forgets its id (log-out, or a server restart: the
signing key is random per process). Nothing about the user but the username travels in the cookie.

The cookies are set by the server (`dashboard.server`), HttpOnly and SameSite=Strict, so no script on a page
can read them: a Streamlit script cannot answer an HTTP request itself, so it hands the browser a one-time
code (`handoff`, valid `HANDOFF_TTL_S`, usable once) that the page trades at the server's cookie route for the
cookie (`redeem`).

Each browser also gets a client id (a second signed cookie). Failed log-ins are counted per client and
username, so five wrong passwords from one browser lock that browser out for that username, not the real
user in another browser; a looser count per network address and username keeps a guesser who throws the
cookie away from trying without end.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from itsdangerous import BadSignature, URLSafeTimedSerializer

SESSION_COOKIE = "showroom_session"
CLIENT_COOKIE = "showroom_client"
SESSION_TTL_S = 12 * 3600.0  # one working day
CLIENT_TTL_S = 365 * 86400.0
MAX_FAILURES_PER_CLIENT = 5
MAX_FAILURES_PER_ADDRESS = 20
LOCK_S = 30.0
HANDOFF_TTL_S = 60.0
COOKIE_ROUTE = "/auth/cookie"
"""Where a page posts a handoff code for its cookie (`dashboard.server`)."""
COOKIE_NAMES = (SESSION_COOKIE, CLIENT_COOKIE)


@dataclass(frozen=True)
class _Live:
    username: str
    expires_at: float


class SessionStore:
    """Live sessions of one dashboard process, behind signed, expiring cookie values."""

    def __init__(
        self,
        secret: bytes | None = None,
        ttl_s: float = SESSION_TTL_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if ttl_s <= 0:
            raise ValueError(f"session lifetime must be positive, got {ttl_s} s")
        self.ttl_s = ttl_s
        self._clock = clock
        key = secret if secret is not None else secrets.token_bytes(32)
        self._sessions = URLSafeTimedSerializer(key, salt="showroom-session")
        self._clients = URLSafeTimedSerializer(key, salt="showroom-client")
        self._live: dict[str, _Live] = {}
        self._handoffs: dict[str, tuple[float, str, str, int]] = {}
        self._lock = threading.Lock()

    def issue(self, username: str) -> str:
        """A new session for `username`; returns the cookie value."""
        sid = secrets.token_urlsafe(24)
        now = self._clock()
        with self._lock:
            self._forget_expired(now)
            self._live[sid] = _Live(username.lower(), now + self.ttl_s)
        return self._sessions.dumps({"sid": sid, "user": username.lower()})

    def username(self, cookie: str | None) -> str | None:
        """The username of a live session's cookie; None for a missing, forged, expired or ended one."""
        if not cookie:
            return None
        payload = self._loads(self._sessions, cookie, self.ttl_s)
        if not isinstance(payload, dict):
            return None
        sid, user = payload.get("sid"), payload.get("user")
        with self._lock:
            live = self._live.get(sid) if isinstance(sid, str) else None
            if live is None or live.username != user:
                return None
            if live.expires_at <= self._clock():
                del self._live[sid]  # type: ignore[arg-type]
                return None
            return live.username

    def revoke(self, cookie: str | None) -> None:
        """End the session of `cookie` (log-out): the cookie is refused from now on, wherever it is kept."""
        payload = self._loads(self._sessions, cookie, None) if cookie else None
        if isinstance(payload, dict) and isinstance(payload.get("sid"), str):
            with self._lock:
                self._live.pop(payload["sid"], None)

    def revoke_user(self, username: str) -> int:
        """End every session of a user (e.g. removed from the users file); returns how many."""
        with self._lock:
            gone = [sid for sid, live in self._live.items() if live.username == username.lower()]
            for sid in gone:
                del self._live[sid]
        return len(gone)

    def new_client(self) -> tuple[str, str]:
        """A fresh client id and its cookie value."""
        client_id = secrets.token_urlsafe(16)
        return client_id, self._clients.dumps(client_id)

    def client_id(self, cookie: str | None) -> str | None:
        """The client id of a genuine client cookie, else None."""
        if not cookie:
            return None
        value = self._loads(self._clients, cookie, CLIENT_TTL_S)
        return value if isinstance(value, str) else None

    def handoff(self, name: str, value: str, max_age_s: float) -> str:
        """A one-time code the browser trades for the cookie `name` = `value` (kept `max_age_s`; 0 deletes
        it) within `HANDOFF_TTL_S`."""
        if name not in COOKIE_NAMES:
            raise ValueError(f"no cookie {name!r} is handed to browsers (only {', '.join(COOKIE_NAMES)})")
        code = secrets.token_urlsafe(24)
        now = self._clock()
        with self._lock:
            for old in [c for c, h in self._handoffs.items() if h[0] <= now]:
                del self._handoffs[old]
            self._handoffs[code] = (now + HANDOFF_TTL_S, name, value, max(0, int(max_age_s)))
        return code

    def redeem(self, code: str) -> tuple[str, str, int] | None:
        """The cookie (name, value, max-age s) a handoff code stands for, once; None for an unknown, used
        or expired code."""
        with self._lock:
            found = self._handoffs.pop(code, None)
        if found is None or found[0] <= self._clock():
            return None
        return found[1], found[2], found[3]

    def _loads(self, serializer: URLSafeTimedSerializer, value: str | None, max_age: float | None) -> object:
        try:
            return serializer.loads(value or "", max_age=None if max_age is None else int(max_age))
        except BadSignature:  # also SignatureExpired
            return None

    def _forget_expired(self, now: float) -> None:
        for sid in [s for s, live in self._live.items() if live.expires_at <= now]:
            del self._live[sid]


_PROCESS_STORE: list[SessionStore] = []
_PROCESS_LOCK = threading.Lock()


def process_store() -> SessionStore:
    """The sessions of this server process, shared by the app's scripts and the server's cookie route. Its
    signing key is random, so a restart ends every session."""
    with _PROCESS_LOCK:
        if not _PROCESS_STORE:
            _PROCESS_STORE.append(SessionStore())
        return _PROCESS_STORE[0]


@dataclass
class LoginGuard:
    """Failed log-ins counted per (client, username) and per (network address, username); either
    reaching its limit refuses that pair for `lock_s` seconds."""

    per_client: int = MAX_FAILURES_PER_CLIENT
    per_address: int = MAX_FAILURES_PER_ADDRESS
    lock_s: float = LOCK_S
    clock: Callable[[], float] = time.monotonic
    _failures: dict[tuple[str, str], int] = field(default_factory=dict)
    _locked_until: dict[tuple[str, str], float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _keys(self, client: str, address: str | None, username: str) -> list[tuple[tuple[str, str], int]]:
        name = username.strip().lower()
        keys = [(("client:" + client, name), self.per_client)]
        if address is not None:
            keys.append((("address:" + address, name), self.per_address))
        return keys

    def wait_s(self, client: str, address: str | None, username: str) -> float:
        """Seconds until this client may try `username` again (0: now)."""
        now = self.clock()
        with self._lock:
            return max(
                [0.0]
                + [self._locked_until.get(k, 0.0) - now for k, _ in self._keys(client, address, username)]
            )

    def record(self, client: str, address: str | None, username: str, ok: bool) -> None:
        """Count a failure (or clear this client's count after a success)."""
        with self._lock:
            for key, limit in self._keys(client, address, username):
                if ok:
                    self._failures.pop(key, None)
                    continue
                self._failures[key] = self._failures.get(key, 0) + 1
                if self._failures[key] >= limit:
                    self._locked_until[key] = self.clock() + self.lock_s
                    self._failures[key] = 0
