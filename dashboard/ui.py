"""The app's shell: settings, log-in, language, navigation by role; then one view.

Everything that decides what a person may see happens here and in `dashboard.data` on the server: the
logged-in user lives in Streamlit's server-side session state, and the URL's query parameters (`view`,
`store`, `date`) are only requests, checked against the user's role and stores on every rerun. A reload
(a new Streamlit session) is logged in again from the browser's session cookie, which only names a session
the server still holds (`dashboard.sessions`).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import streamlit as st
from streamlit.errors import StreamlitMissingAuthlibError

from aggregator.storage import StorageError
from aggregator.storage.url import redact
from dashboard import charts
from dashboard.auth import (
    AccessDeniedError,
    User,
    UsersFileError,
    authenticate,
    load_users,
    user_for_identity,
)
from dashboard.data import Fetch, ScopedData, direct_fetch
from dashboard.i18n import LANGUAGES, Lang, as_lang, t
from dashboard.sessions import (
    CLIENT_COOKIE,
    CLIENT_TTL_S,
    COOKIE_ROUTE,
    SESSION_COOKIE,
    LoginGuard,
    SessionStore,
    process_store,
)
from dashboard.settings import Settings, SettingsError
from dashboard.views import hq, installer, store
from dashboard.views.common import CHARTS_SHOWN, ViewContext, follow_url, set_param, write_url

log = logging.getLogger(__name__)

ViewRender = Callable[[ViewContext], None]
VIEWS: dict[str, tuple[str, ViewRender]] = {
    "store": ("nav.store", store.render),
    "hq": ("nav.hq", hq.render),
    "installer": ("nav.installer", installer.render),
}
VIEWS_BY_ROLE: dict[str, tuple[str, ...]] = {
    "store_manager": ("store",),
    "brand_hq": ("hq", "store"),
    "installer": ("installer",),
}


PAGE_STYLE = """<style>
/* Page titles on one line at any width (a tablet included): the size follows the width, never a break. */
h1 { font-size: clamp(1.5rem, 1rem + 1.6vw, 2.6rem) !important; white-space: nowrap; overflow: hidden;
     text-overflow: ellipsis; }
</style>"""


@st.cache_resource
def _warm_chart_renderer() -> threading.Thread:
    """Start the server-side chart renderer once per process, in the background while someone logs in:
    its first drawing costs about a second (the JavaScript engine starting), later ones milliseconds."""
    spec = {
        "data": {"values": [{"x": 0}]},
        "mark": "point",
        "encoding": {"x": {"field": "x", "type": "quantitative"}},
    }
    thread = threading.Thread(target=charts.to_svg, args=(spec,), name="chart-renderer-warm-up", daemon=True)
    thread.start()
    return thread


@st.cache_resource
def _login_guard() -> LoginGuard:
    return LoginGuard()


def _sessions() -> SessionStore:
    # One per server process, shared with the server's cookie route (`dashboard.server`).
    return process_store()


@st.cache_data(ttl=60, max_entries=5000, show_spinner=False)
def _cached_fetch(db: str, method: str, args: tuple[Any, ...]) -> Any:
    # Shared by every session: checks happen in ScopedData before a call reaches this cache.
    return direct_fetch(db)(method, args)


def _fetch(db: str | Path) -> Fetch:
    key = str(db)

    def fetch(method: str, args: tuple[Any, ...]) -> Any:
        return _cached_fetch(key, method, args)

    return fetch


@st.cache_resource(max_entries=4)
def _users(path: str, mtime_ns: int) -> dict[str, User]:
    # Keyed on the file's mtime: editing the users file takes effect without a restart.
    return load_users(Path(path))


def _lang() -> Lang:
    return as_lang(st.session_state.get("lang"))


def _language_picker(container: object = st, key: str = "lang_choice") -> None:
    """The language switch. The log-in form has its own (`key`): the page that follows a log-in is drawn
    in the same run, with the sidebar's."""

    def _changed() -> None:
        st.session_state["lang"] = st.session_state[key]

    # Keep the widget in step with the session's language (set at log-in from the user's preference).
    if st.session_state.get(key) != _lang():
        st.session_state[key] = _lang()
    container.segmented_control(  # type: ignore[attr-defined]
        t(_lang(), "language"),
        options=list(LANGUAGES),
        format_func=lambda code: LANGUAGES[code],
        key=key,
        on_change=_changed,
        required=True,
    )


def _identity_provider() -> bool:
    """Whether the deployment configured an OpenID Connect provider (Streamlit's `[auth]` secrets)."""
    try:
        return st.secrets.load_if_toml_exists() and "auth" in st.secrets
    except Exception:  # an unreadable secrets file is reported by Streamlit itself
        log.exception("could not read Streamlit's secrets; log-in through an identity provider is off")
        return False


def _provider_logged_in() -> bool:
    return bool(st.user.get("is_logged_in", False))


def _provider_user(users: dict[str, User], lang: Lang) -> User | None:
    """The users-file entry of the person the identity provider logged in; a person it vouched for who
    has no entry is told so (and may log out), and sees nothing else."""
    user = user_for_identity(users, st.user.to_dict())
    if user is None:
        st.error(t(lang, "login.idp_unknown", email=st.user.get("email") or "?"))
        if st.button(t(lang, "logout"), key="idp_logout"):
            st.logout()
    return user


def _login(users: dict[str, User], idp: bool) -> User | None:
    """The log-in form; the user once their password checks out, else None."""
    lang = _lang()
    _, middle, _ = st.columns([1, 2, 1])
    with middle:
        st.title(t(lang, "app.title"))
        st.caption(t(lang, "app.tagline"))
        _language_picker(key="lang_choice_login")
        if idp and st.button(t(lang, "login.idp"), key="login_idp", type="primary"):
            try:
                st.login()  # off to the provider; back here with st.user filled in
            except StreamlitMissingAuthlibError:
                log.error(
                    "identity provider configured, but Authlib is missing: install showroom-vision[idp]"
                )
                st.error(t(lang, "login.idp_missing"))
        with st.form("login", border=True):
            st.subheader(t(lang, "login.title"))
            username = st.text_input(t(lang, "login.username"), key="login_username")
            password = st.text_input(t(lang, "login.password"), type="password", key="login_password")
            submitted = st.form_submit_button(t(lang, "login.submit"), type="primary")
        if not submitted:
            return None
        guard, client, address = _login_guard(), _client_id(), st.context.ip_address
        wait = guard.wait_s(client, address, username)
        if wait > 0:
            st.error(t(lang, "login.locked", seconds=int(wait) + 1))
            return None
        user = authenticate(users, username, password)
        guard.record(client, address, username, user is not None)
        if user is None:
            st.error(t(lang, "login.failed"))
        return user


_COOKIES_TO_WRITE = "cookies_to_write"
"""Session key: the one-time codes (cookie name -> code) this browser is to trade for its cookies."""


def _remember_cookie(name: str, value: str, max_age_s: float) -> None:
    st.session_state.setdefault(_COOKIES_TO_WRITE, {})[name] = _sessions().handoff(name, value, max_age_s)


def _write_cookies() -> None:
    """Have the browser trade its one-time codes for the session's cookies at the server's cookie route
    (`dashboard.server`): set by the server, HttpOnly, so no script on the page can read them."""
    codes: dict[str, str] = st.session_state.get(_COOKIES_TO_WRITE, {})
    if not codes:
        return
    posts = "\n".join(
        f"page.fetch(page.location.origin + {json.dumps(COOKIE_ROUTE)}, "
        f"{{method: 'POST', body: {json.dumps(code)}, credentials: 'same-origin'}});"
        for _name, code in sorted(codes.items())
    )
    # A same-origin frame: unlike st.html, it runs its script again whenever the script changes (a new code).
    st.iframe(f"<script>const page = window.parent;\n{posts}</script>", height=1)


def _client_id() -> str:
    """This browser's client id (from its client cookie; a new one, and the cookie, when it has none)."""
    known = st.session_state.get("client_id")
    if isinstance(known, str):
        return known
    sessions = _sessions()
    client = sessions.client_id(st.context.cookies.get(CLIENT_COOKIE))
    if client is None:
        client, cookie = sessions.new_client()
        _remember_cookie(CLIENT_COOKIE, cookie, CLIENT_TTL_S)
    st.session_state["client_id"] = client
    return client


def _start_session(user: User) -> None:
    cookie = _sessions().issue(user.username)
    st.session_state["session_cookie"] = cookie
    _remember_cookie(SESSION_COOKIE, cookie, _sessions().ttl_s)


def _resumed_username(users: dict[str, User]) -> str | None:
    """The user of this run: the session's, while its session is live on the server (a log-out in
    another tab ends it here too), else the one the browser's session cookie names (after a reload)."""
    sessions = _sessions()
    username = st.session_state.get("username")
    if isinstance(username, str):
        if sessions.username(st.session_state.get("session_cookie")) == username and username in users:
            return username
        _logout()
        return None
    cookie = st.context.cookies.get(SESSION_COOKIE)
    if st.session_state.get("logged_out") or not cookie:
        return None
    resumed = sessions.username(cookie)
    if resumed is None or resumed not in users:
        return None
    st.session_state["username"] = resumed
    st.session_state["session_cookie"] = cookie
    st.session_state.setdefault("lang", users[resumed].language)
    return resumed


def _logout() -> None:
    _sessions().revoke(st.session_state.get("session_cookie"))
    for key in ("username", "login_password", "session_cookie"):
        st.session_state.pop(key, None)
    # The cookie this page was opened with is dead on the server; forget it in the browser too.
    st.session_state["logged_out"] = True
    _remember_cookie(SESSION_COOKIE, "", 0)


def _choose_view(user: User, lang: Lang) -> str | None:
    allowed = VIEWS_BY_ROLE[user.role]
    requested = st.query_params.get("view")
    if requested is not None and requested not in allowed:
        st.error(t(lang, "access.denied_view"))
        return None
    if len(allowed) == 1:
        chosen = allowed[0]
    else:
        follow_url("view", "nav_view", requested if requested in allowed else allowed[0])
        chosen = st.sidebar.radio(
            t(lang, "nav.view"),
            options=list(allowed),
            format_func=lambda v: t(lang, VIEWS[v][0]),
            key="nav_view",
        )
    set_param("view", chosen)
    return chosen


def run() -> None:
    """Render one rerun of the app."""
    st.set_page_config(page_title="Showroom Vision", page_icon=":material/directions_car:", layout="wide")
    try:
        settings = Settings.from_env()
        users = _users(str(settings.users), settings.users.stat().st_mtime_ns)
    except (SettingsError, UsersFileError, OSError) as exc:
        st.error(str(exc))
        return
    _warm_chart_renderer()
    st.html(PAGE_STYLE)
    st.session_state[CHARTS_SHOWN] = {}
    _client_id()
    try:
        _run_page(settings, users)
        write_url()
    finally:
        _write_cookies()


def _run_page(settings: Settings, users: dict[str, User]) -> None:
    username = _resumed_username(users)
    user = users.get(username) if isinstance(username, str) else None
    if user is None:
        # Nothing but the log-in form before log-in, whatever the URL asks for. A session whose user was
        # removed from the users file is logged out here.
        st.session_state.pop("username", None)
        # The form sits in a slot that is cleared once the password checks out, and the page follows in
        # the same run (no second run for the browser to wait for).
        idp = _identity_provider()
        slot = st.empty()
        with slot.container():
            signed_in = idp and _provider_logged_in()
            user = _provider_user(users, _lang()) if signed_in else _login(users, idp)
        if user is None:
            return
        slot.empty()
        st.session_state["username"] = user.username.lower()
        st.session_state.pop("logged_out", None)
        _start_session(user)
        st.session_state.setdefault("lang", user.language)

    lang = _lang()
    with st.sidebar:
        st.markdown(f"**{t(lang, 'app.title')}**")
        st.caption(t(lang, "signed_in_as", name=user.name, role=t(lang, f"role.{user.role}")))
        _language_picker(st.sidebar)
        if st.button(t(lang, "logout"), key="logout"):
            _logout()
            st.query_params.clear()
            if _identity_provider() and _provider_logged_in():
                st.logout()  # also forgets the provider's identity cookie; starts a new session
            st.rerun()
    view = _choose_view(user, lang)
    if view is None:
        return
    data = ScopedData(_fetch(settings.db), user)
    try:
        VIEWS[view][1](ViewContext(user=user, lang=lang, data=data))
    except AccessDeniedError:
        # The views ask only for what the role allows; reaching this means a check in a view was missed,
        # and the data layer refused anyway.
        log.warning("refused a request outside the scope of %s", user.username)
        st.error(t(lang, "access.denied_view"))
    except (sqlite3.Error, OSError, StorageError) as exc:
        # A database server that refuses us (wrong password, down) says why; the password is never shown.
        log.exception("dashboard data could not be read from %s", redact(settings.db))
        st.error(t(lang, "error.data", error=exc))
