"""Installer view: every node's liveness and health, what needs attention first. No visitor figures."""

from __future__ import annotations

from datetime import UTC, datetime

import streamlit as st

from aggregator.queries import NodeHealth
from dashboard import attention
from dashboard import format as fmt
from dashboard.i18n import TABLES, Lang, t
from dashboard.views.common import ViewContext, show_table


def node_issues(node: NodeHealth, now: datetime) -> list[attention.Issue]:
    age = None if node.last_heartbeat_at is None else (now - node.last_heartbeat_at).total_seconds()
    return attention.node_issues(
        online=node.online,
        heartbeat_age_s=age,
        cameras=node.cameras,
        outbox_depth=node.outbox_depth,
        seq_missing=node.seq_missing,
        calibration_error_m=node.calibration_error_m,
    )


ATTENTION_SHOWN = 15
"""Nodes listed under "needs attention first" (the worst); the rest are in the table below, worst first."""
LIVE_EVERY_S = 10
"""The node list refreshes itself this often: a node that stops reporting shows within one heartbeat."""


def issue_text(lang: Lang, issue: attention.Issue) -> str:
    values = dict(issue.values)
    for name, value in list(values.items()):
        if isinstance(value, int) and not isinstance(value, bool):
            values[name] = fmt.count(value)  # '2,500', as in the tables
    for name, prefix in (("state", "cam.state"), ("quality", "cam.quality")):
        if isinstance(values.get(name), str):
            values[name] = translated(lang, prefix, str(values[name]))
    if "age_s" in values:
        age = values.pop("age_s")
        values["age"] = fmt.seconds(age if isinstance(age, int | float) else None, lang)
    return t(lang, issue.key, **values)


def ranked(nodes: list[NodeHealth], now: datetime) -> list[tuple[NodeHealth, list[attention.Issue]]]:
    """Nodes with their issues, worst first (critical, then warning, then by issue count)."""
    pairs = [(n, node_issues(n, now)) for n in nodes]
    pairs.sort(
        key=lambda p: (
            -attention.SEVERITY_RANK[attention.worst(p[1])],
            -len(p[1]),
            p[0].store_id,
            p[0].node_id,
        )
    )
    return pairs


def calibration_verdict(lang: Lang, error_m: float | None) -> str | None:
    """Green within the calibration limit (the node config's default, 0.3 m), red beyond it; None without a
    figure. The heartbeat carries each camera's fit error on the floor; the pair-by-pair held-out check
    (`showroom hardware calibrate`) runs on the box at installation."""
    if error_m is None:
        return None
    if error_m > attention.CALIBRATION_MAX_ERROR_M:
        return f"🔴 {t(lang, 'sev.warning')}"
    return f"🟢 {t(lang, 'sev.ok')}"


def _age_s(node: NodeHealth, now: datetime) -> float | None:
    return (
        None if node.last_heartbeat_at is None else max(0.0, (now - node.last_heartbeat_at).total_seconds())
    )


def node_state(lang: Lang, node: NodeHealth, now: datetime) -> str:
    """'online'; 'offline' or 'stale (age)' once the node stopped reporting."""
    age = _age_s(node, now)
    if not node.online:
        return t(lang, "inst.offline")
    if not attention.reporting(node.online, age):
        return t(lang, "inst.stale", age=fmt.seconds(age, lang))
    return t(lang, "inst.online")


def camera_state(lang: Lang, node: NodeHealth, state: str, now: datetime) -> str:
    """A camera's state as its node last reported it, or 'stale (age)' when the node stopped reporting."""
    age = _age_s(node, now)
    if not attention.reporting(node.online, age):
        return t(lang, "inst.stale", age=fmt.seconds(age, lang))
    return translated(lang, "cam.state", state)


def translated(lang: Lang, prefix: str, value: str) -> str:
    """A value of the event contract (a camera state, a connection quality) in `lang`; as sent when the
    contract grew a value this dashboard does not know yet."""
    key = f"{prefix}.{value}"
    return t(lang, key) if key in TABLES[lang] else value


def render(ctx: ViewContext) -> None:
    lang = ctx.lang
    st.title(t(lang, "inst.title"))
    st.caption(
        t(
            lang,
            "inst.live_caption",
            seconds=LIVE_EVERY_S,
            heartbeat=int(attention.HEARTBEAT_EVERY_S),
            grace=int(attention.STALE_HEARTBEAT_S - attention.HEARTBEAT_EVERY_S),
        )
    )
    _live_nodes(ctx)


@st.fragment(run_every=LIVE_EVERY_S)
def _live_nodes(ctx: ViewContext) -> None:
    lang = ctx.lang
    now = datetime.now(UTC)
    pairs = ranked(ctx.data.nodes(now=now.replace(microsecond=0)), now)
    if not pairs:
        st.info(t(lang, "empty"))
        return

    st.subheader(t(lang, "inst.attention"))
    troubled = [(n, issues) for n, issues in pairs if issues]
    if not troubled:
        st.success(t(lang, "inst.all_ok"))
    for node, issues in troubled[:ATTENTION_SHOWN]:
        line = f"**{node.store_id} / {node.node_id}** — " + "; ".join(issue_text(lang, i) for i in issues)
        if attention.worst(issues) == "critical":
            st.error(line, icon=":material/error:")
        else:
            st.warning(line, icon=":material/warning:")

    if len(troubled) > ATTENTION_SHOWN:
        st.caption(t(lang, "inst.attention_more", more=len(troubled) - ATTENTION_SHOWN))

    st.subheader(t(lang, "inst.title"))
    nodes_table = {
        t(lang, "inst.severity"): [t(lang, f"sev.{attention.worst(i)}") for _, i in pairs],
        t(lang, "inst.store"): [n.store_id for n, _ in pairs],
        t(lang, "inst.node"): [n.node_id for n, _ in pairs],
        t(lang, "inst.status"): [node_state(lang, n, now) for n, _ in pairs],
        t(lang, "inst.last_heartbeat"): [fmt.utc_time(n.last_heartbeat_at, lang) for n, _ in pairs],
        t(lang, "inst.heartbeat_age"): [fmt.seconds(_age_s(n, now), lang) for n, _ in pairs],
        t(lang, "inst.cameras"): [fmt.count(len(n.cameras)) for n, _ in pairs],
        t(lang, "inst.outbox"): [fmt.count(n.outbox_depth) for n, _ in pairs],
        t(lang, "inst.oldest_unsent"): [fmt.seconds(n.oldest_unsent_age_s, lang) for n, _ in pairs],
        t(lang, "inst.gaps"): [fmt.count(n.seq_missing) for n, _ in pairs],
        t(lang, "inst.calibration"): [
            fmt.metres(max(n.calibration_error_m.values()) if n.calibration_error_m else None, lang)
            for n, _ in pairs
        ],
        t(lang, "inst.issues"): ["; ".join(issue_text(lang, x) for x in i) for _, i in pairs],
        t(lang, "inst.software"): [n.software_version or "–" for n, _ in pairs],
        t(lang, "inst.model"): [n.model_id or "–" for n, _ in pairs],
        t(lang, "inst.uptime"): [fmt.seconds(n.uptime_s, lang) for n, _ in pairs],
    }
    show_table(lang, nodes_table, "table_nodes")

    st.subheader(t(lang, "inst.cameras"))
    cam_rows = [(n, c) for n, _ in pairs for c in n.cameras]
    show_table(
        lang,
        {
            t(lang, "inst.store"): [n.store_id for n, _ in cam_rows],
            t(lang, "inst.node"): [n.node_id for n, _ in cam_rows],
            t(lang, "inst.camera"): [c.camera_id for _, c in cam_rows],
            t(lang, "inst.status"): [camera_state(lang, n, c.state, now) for n, c in cam_rows],
            t(lang, "inst.fps"): [fmt.number(c.fps) for _, c in cam_rows],
            t(lang, "inst.target_fps"): [fmt.number(c.target_fps) for _, c in cam_rows],
            t(lang, "inst.inference_ms"): [fmt.number(c.inference_ms) for _, c in cam_rows],
            t(lang, "inst.quality"): [translated(lang, "cam.quality", c.quality) for _, c in cam_rows],
            t(lang, "inst.calibration"): [
                fmt.metres(n.calibration_error_m.get(c.camera_id), lang) for n, c in cam_rows
            ],
            f"≤ {fmt.metres(attention.CALIBRATION_MAX_ERROR_M, lang)}": [
                calibration_verdict(lang, n.calibration_error_m.get(c.camera_id)) for n, c in cam_rows
            ],
        },
        "table_cameras",
    )
