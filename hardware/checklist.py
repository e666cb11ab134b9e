"""The commissioning checklist: items with pass/fail and the measured value, as text, JSON and an HTML page
the installer hands to the store (self-contained: no scripts, fonts or images from anywhere)."""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime
from typing import Any

Value = str | int | float | None


@dataclass(frozen=True)
class CheckItem:
    """One line of the checklist.

    Attributes:
        name: what was checked, e.g. `camera:entrance` (stable: scripts read it).
        ok: passed.
        value: the measured value (a number where there is one), None when nothing could be measured.
        unit: the value's unit (`fps`, `ms/frame`, `m`, `MB`, `s`), empty when none.
        detail: how it was measured and what it was compared with.
        reason: why it failed (empty when it passed): what the installer should fix.
    """

    name: str
    ok: bool
    value: Value
    unit: str = ""
    detail: str = ""
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "ok": self.ok, "value": self.value, "unit": self.unit}
        out["detail"] = self.detail
        if self.reason:
            out["reason"] = self.reason
        return out

    def shown_value(self) -> str:
        if self.value is None:
            return "-"
        value = f"{self.value:g}" if isinstance(self.value, float) else str(self.value)
        return f"{value} {self.unit}".strip()


def failed(name: str, reason: str, *, unit: str = "", detail: str = "") -> CheckItem:
    """An item that could not be measured, with why."""
    return CheckItem(name, False, None, unit, detail, reason)


def text_lines(items: list[CheckItem]) -> list[str]:
    """One line per item: PASS/FAIL, name, value, then the detail or the reason."""
    width = max((len(i.name) for i in items), default=10)
    lines = []
    for item in items:
        note = item.reason if not item.ok else item.detail
        lines.append(
            f"{'PASS' if item.ok else 'FAIL'}  {item.name:<{width}}  {item.shown_value():<16}  {note}"
        )
    return lines


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; }
h1 { font-size: 1.4rem; margin-bottom: 0.2rem; }
.meta { color: #555; margin-bottom: 1.2rem; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 0.35rem 0.6rem; border-bottom: 1px solid #ddd; vertical-align: top; }
th { background: #f3f3f3; }
.pass { color: #14692c; font-weight: 600; }
.fail { color: #b3261e; font-weight: 600; }
.verdict { font-size: 1.1rem; margin: 1rem 0; }
.small { color: #666; font-size: 0.85rem; }
"""


def html_report(
    items: list[CheckItem], *, store_id: str, node_id: str, when: datetime, software_version: str
) -> str:
    """The checklist as one self-contained HTML page."""
    esc = html.escape
    passed = all(i.ok for i in items)
    rows = "\n".join(
        "<tr>"
        f'<td class="{"pass" if i.ok else "fail"}">{"PASS" if i.ok else "FAIL"}</td>'
        f"<td>{esc(i.name)}</td><td>{esc(i.shown_value())}</td>"
        f'<td>{esc(i.reason) if not i.ok else ""}<div class="small">{esc(i.detail)}</div></td>'
        "</tr>"
        for i in items
    )
    failed_count = sum(not i.ok for i in items)
    verdict = (
        f'<p class="verdict pass">All {len(items)} checks passed.</p>'
        if passed
        else f'<p class="verdict fail">{failed_count} of {len(items)} checks failed.</p>'
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Commissioning report: {esc(store_id)} / {esc(node_id)}</title>
<style>{_CSS}</style>
</head>
<body>
<h1>Commissioning report</h1>
<div class="meta">Store <b>{esc(store_id)}</b>, node <b>{esc(node_id)}</b>;
checked {esc(when.isoformat(timespec="seconds"))}; Showroom Vision {esc(software_version)}</div>
{verdict}
<table>
<thead><tr><th>Result</th><th>Check</th><th>Measured</th><th>Notes</th></tr></thead>
<tbody>
{rows}
</tbody>
</table>
</body>
</html>
"""
