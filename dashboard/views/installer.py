"""Installer view: every node's liveness and health, what needs attention first. No visitor figures."""

from __future__ import annotations

from datetime import UTC, datetime

import streamlit as st

from aggregator.queries import NodeHealth
from dashboard import attention
from dashboard import format as fmt
from dashboard.i18n import Lang, t
from dashboard.views.common import ViewContext


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


def issue_text(lang: Lang, issue: attention.Issue) -> str:
    return t(lang, issue.key, **issue.values)


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


def _status(lang: Lang, node: NodeHealth) -> str:
    return t(lang, "inst.online") if node.online else t(lang, "inst.offline")


def render(ctx: ViewContext) -> None:
    lang = ctx.lang
    now = datetime.now(UTC)
    st.title(t(lang, "inst.title"))
    pairs = ranked(ctx.data.nodes(now=now.replace(microsecond=0)), now)
    if not pairs:
        st.info(t(lang, "empty"))
        return

    st.subheader(t(lang, "inst.attention"))
    troubled = [(n, issues) for n, issues in pairs if issues]
    if not troubled:
        st.success(t(lang, "inst.all_ok"))
    for node, issues in troubled:
        line = f"**{node.store_id} / {node.node_id}** — " + "; ".join(issue_text(lang, i) for i in issues)
        if attention.worst(issues) == "critical":
            st.error(line, icon=":material/error:")
        else:
            st.warning(line, icon=":material/warning:")

    st.subheader(t(lang, "inst.title"))
    nodes_table = {
        t(lang, "inst.severity"): [t(lang, f"sev.{attention.worst(i)}") for _, i in pairs],
        t(lang, "inst.store"): [n.store_id for n, _ in pairs],
        t(lang, "inst.node"): [n.node_id for n, _ in pairs],
        t(lang, "inst.status"): [_status(lang, n) for n, _ in pairs],
        t(lang, "inst.last_heartbeat"): [fmt.timestamp(n.last_heartbeat_at) for n, _ in pairs],
        t(lang, "inst.heartbeat_age"): [
            None if n.last_heartbeat_at is None else int((now - n.last_heartbeat_at).total_seconds())
            for n, _ in pairs
        ],
        t(lang, "inst.cameras"): [len(n.cameras) for n, _ in pairs],
        t(lang, "inst.outbox"): [n.outbox_depth for n, _ in pairs],
        t(lang, "inst.oldest_unsent"): [n.oldest_unsent_age_s for n, _ in pairs],
        t(lang, "inst.gaps"): [n.seq_missing for n, _ in pairs],
        t(lang, "inst.calibration"): [
            max(n.calibration_error_m.values()) if n.calibration_error_m else None for n, _ in pairs
        ],
        t(lang, "inst.issues"): ["; ".join(issue_text(lang, x) for x in i) for _, i in pairs],
        t(lang, "inst.software"): [n.software_version or "–" for n, _ in pairs],
        t(lang, "inst.model"): [n.model_id or "–" for n, _ in pairs],
        t(lang, "inst.uptime"): [fmt.seconds(n.uptime_s) for n, _ in pairs],
    }
    st.dataframe(nodes_table, hide_index=True, key="table_nodes")

    st.subheader(t(lang, "inst.cameras"))
    cam_rows = [(n, c) for n, _ in pairs for c in n.cameras]
    st.dataframe(
        {
            t(lang, "inst.store"): [n.store_id for n, _ in cam_rows],
            t(lang, "inst.node"): [n.node_id for n, _ in cam_rows],
            t(lang, "inst.camera"): [c.camera_id for _, c in cam_rows],
            t(lang, "inst.status"): [c.state for _, c in cam_rows],
            t(lang, "inst.fps"): [round(c.fps, 1) for _, c in cam_rows],
            t(lang, "inst.target_fps"): [c.target_fps for _, c in cam_rows],
            t(lang, "inst.inference_ms"): [round(c.inference_ms, 1) for _, c in cam_rows],
            t(lang, "inst.quality"): [c.quality for _, c in cam_rows],
            t(lang, "inst.calibration"): [n.calibration_error_m.get(c.camera_id) for n, c in cam_rows],
            f"≤ {attention.CALIBRATION_MAX_ERROR_M:.2f} m": [
                calibration_verdict(lang, n.calibration_error_m.get(c.camera_id)) for n, c in cam_rows
            ],
        },
        hide_index=True,
        key="table_cameras",
    )
