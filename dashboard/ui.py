"""The app's shell: settings, log-in, language, navigation by role; then one view.

Everything that decides what a person may see happens here and in `dashboard.data` on the server: the
logged-in user lives in Streamlit's server-side session state, and the URL's query parameters (`view`,
`store`, `date`) are only requests, checked against the user's role and stores on every rerun.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import streamlit as st
from streamlit.errors import StreamlitMissingAuthlibError

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
from dashboard.settings import Settings, SettingsError
from dashboard.views import hq, installer, store
from dashboard.views.common import CHARTS_SHOWN, ViewContext

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
MAX_FAILURES, LOCK_S = 5, 30.0


@dataclass
class _Throttle:
    """Failed log-ins per username across all sessions: after MAX_FAILURES, refuse for LOCK_S seconds."""

    failures: dict[str, int] = field(default_factory=dict)
    locked_until: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_s(self, name: str) -> float:
        with self.lock:
            return max(0.0, self.locked_until.get(name, 0.0) - time.monotonic())

    def record(self, name: str, ok: bool) -> None:
        with self.lock:
            if ok:
                self.failures.pop(name, None)
                return
            self.failures[name] = self.failures.get(name, 0) + 1
            if self.failures[name] >= MAX_FAILURES:
                self.locked_until[name] = time.monotonic() + LOCK_S
                self.failures[name] = 0


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
def _throttle() -> _Throttle:
    return _Throttle()


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
        name = username.strip().lower()
        throttle = _throttle()
        wait = throttle.wait_s(name)
        if wait > 0:
            st.error(t(lang, "login.locked", seconds=int(wait) + 1))
            return None
        user = authenticate(users, username, password)
        throttle.record(name, user is not None)
        if user is None:
            st.error(t(lang, "login.failed"))
        return user


def _logout() -> None:
    for key in ("username", "login_password"):
        st.session_state.pop(key, None)


def _choose_view(user: User, lang: Lang) -> str | None:
    allowed = VIEWS_BY_ROLE[user.role]
    requested = st.query_params.get("view")
    if requested is not None and requested not in allowed:
        st.error(t(lang, "access.denied_view"))
        return None
    if len(allowed) == 1:
        chosen = allowed[0]
    else:
        chosen = st.sidebar.radio(
            t(lang, "nav.view"),
            options=list(allowed),
            index=allowed.index(requested) if requested in allowed else 0,
            format_func=lambda v: t(lang, VIEWS[v][0]),
            key="nav_view",
        )
    if st.query_params.get("view") != chosen:
        st.query_params["view"] = chosen
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
    st.session_state[CHARTS_SHOWN] = {}
    username = st.session_state.get("username")
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
    except (sqlite3.Error, OSError) as exc:
        log.exception("dashboard data could not be read from %s", settings.db)
        st.error(t(lang, "error.data", error=exc))
