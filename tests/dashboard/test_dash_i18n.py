"""Both languages carry every UI string with the same placeholders; the views use no key that is missing;
and a page shown in Chinese shows no English beyond the data's own names (dates, durations, states,
units, chart axes included)."""

from __future__ import annotations

import base64
import html
import os
import re
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import dash_world as world
import pytest
from streamlit.testing.v1 import AppTest

from dashboard import format as fmt
from dashboard.i18n import EN, LANGUAGES, TABLES, ZH, as_lang, placeholders, t
from dashboard.settings import ENV_DB, ENV_USERS

DASHBOARD = Path(__file__).resolve().parents[2] / "dashboard"


def test_same_keys_in_every_language() -> None:
    assert set(TABLES) == set(LANGUAGES) == {"en", "zh"}
    assert set(EN) == set(ZH), f"only in en: {set(EN) - set(ZH)}; only in zh: {set(ZH) - set(EN)}"


@pytest.mark.parametrize("key", sorted(EN))
def test_same_placeholders(key: str) -> None:
    assert placeholders(EN[key]) == placeholders(ZH[key]), key


def test_chinese_table_is_translated() -> None:
    # A copied English string would slip through the key check; most strings must contain CJK characters.
    cjk = re.compile(r"[\u4e00-\u9fff]")
    untranslated = [k for k, v in ZH.items() if not cjk.search(v) and v != "{store} — {date}"]
    assert untranslated == [], untranslated


def test_every_key_used_in_code_exists() -> None:
    used: set[str] = set()
    for path in DASHBOARD.rglob("*.py"):
        used |= set(re.findall(r"""\bt\(\s*\w+,\s*["']([a-z_.]+)["']""", path.read_text(encoding="utf-8")))
    assert used, "no t(lang, key) call found: the test's pattern no longer matches the views"
    assert used - set(EN) == set()


def test_format_and_missing_key() -> None:
    assert t("en", "access.denied_store", store="sh-02") == "You do not have access to store sh-02."
    assert t("zh", "access.denied_store", store="sh-02") == "您无权查看门店 sh-02。"
    with pytest.raises(KeyError, match="no UI string 'nope'"):
        t("en", "nope")
    assert as_lang("zh") == "zh"
    assert as_lang("fr") == "en"


# -- no English left on a page shown in Chinese ------------------------------------------------------------

ALLOWED_LATIN = ("UTC", "TOP", "CSV", "PDF", "PNG", "Asia/Shanghai")
"""Words a Chinese page may show in Latin letters besides the data's own names: time zone ids, the
abbreviations the product uses in Chinese too, file formats."""


ENGLISH = (
    re.compile(r"[A-Za-z]{2,}"),  # a word
    re.compile(r"\d\s?[smhd]\b"),  # a duration or distance in English units: '45 s', '3 h', '0.45 m'
    re.compile(r"\d{4}-\d{2}-\d{2}"),  # an ISO date: Chinese pages write 2026年11月20日
)


def _data_names() -> set[str]:
    """What the test world itself names in Latin letters: stores, brands, cars, plan elements, people,
    nodes, cameras, the detector model."""
    names: set[str] = {"node-a", "cam-a", "yolox-tiny"}
    for brand in world.REGISTRY["brands"]:
        names |= {brand["id"], brand["name"]}
    for store in world.REGISTRY["stores"]:
        names |= {store["store_id"], store["name"]}
    for car in world.CARS:
        names |= {car["id"], car["model_name"]}
    plan = world.PLAN_SH01
    names |= {str(d["name"]) for d in plan["doors"] if "name" in d}
    names |= {z["name"] for z in plan["zones"]}
    names |= {str(u["name"]) for u in world.USERS} | {"Zhang Min"}
    return names


def _shown_texts(at: AppTest) -> list[str]:
    """Every text a person sees on the page: headings, text, metrics, tables, widgets' labels and options,
    and the words drawn in the charts (SVG text)."""

    def walk(node: Any) -> Iterator[Any]:
        yield node
        for child in getattr(node, "children", {}).values():
            yield from walk(child)

    out: list[str] = []
    for e in walk(at._tree):
        kind = getattr(e, "type", "")
        if kind == "image":
            svg = base64.b64decode(e.proto.imgs[0].url.split(",", 1)[1]).decode("utf-8")
            out += [html.unescape(m) for m in re.findall(r"<text[^>]*>([^<]*)</text>", svg)]
        elif kind in ("table", "arrow_data_frame", "dataframe"):
            frame = e.value
            out += [str(c) for c in frame.columns] + [str(v) for v in frame.to_numpy().flatten()]
        elif kind == "metric":
            out += [e.label, str(e.value)]
        elif kind in ("selectbox", "multiselect", "radio"):
            out += [e.label, *(str(o) for o in e.options)]
        elif kind in ("markdown", "caption", "title", "header", "subheader", "alert", "info", "error"):
            out.append(re.sub(r":(?:green|red|gray|blue|orange|violet|rainbow)\[", "[", str(e.value)))
        elif kind in ("button", "download_button", "text_input", "date_input"):
            out.append(str(e.label))
        elif kind in ("warning", "success"):
            out.append(str(e.value))
    return out


def _english_left(at: AppTest) -> list[str]:
    allowed = sorted(_data_names() | set(ALLOWED_LATIN), key=len, reverse=True)
    left = []
    for text in _shown_texts(at):
        stripped = text
        for name in allowed:
            stripped = stripped.replace(name, "")
        if any(pattern.search(stripped) for pattern in ENGLISH):
            left.append(text)
    return left


@pytest.fixture(scope="module")
def zh_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    base = tmp_path_factory.mktemp("zh_world")
    db = world.build_db(base / "aggregator.sqlite")
    users = world.write_users(base / "users.yaml")
    saved = {k: os.environ.get(k) for k in (ENV_DB, ENV_USERS)}
    os.environ[ENV_DB], os.environ[ENV_USERS] = str(db), str(users)
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.mark.parametrize(
    ("username", "params"),
    [
        ("li.wei", {"date": world.DAY.isoformat(), "period": "day"}),  # a past day: funnel, heatmap, health
        ("li.wei", {}),  # today: the live parts
        ("hq.aurora", {"date": world.DAY.isoformat()}),  # league, totals, trends, audits, silent stores
        ("hq.aurora", {"view": "store", "store": "bj-02", "date": world.DAY.isoformat()}),
        ("tech", {}),  # nodes and cameras, states and ages
    ],
)
def test_a_page_in_chinese_shows_no_english(zh_world: None, username: str, params: dict[str, str]) -> None:
    at = world.logged_in(username, timeout_s=60, **params)
    at.session_state["lang"] = "zh"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    texts = _shown_texts(at)
    assert len(texts) > 20, texts  # the page was drawn
    assert _english_left(at) == []


def test_in_chinese_days_are_picked_from_lists_written_in_chinese(zh_world: None) -> None:
    """Streamlit's calendar names months and weekdays in English only, so in Chinese every day picker is
    a list of days written in Chinese, newest first; choosing one moves the page (and its URL) there."""
    at = world.logged_in("li.wei", timeout_s=60, date=world.DAY.isoformat(), period="day")
    at.session_state["lang"] = "zh"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.date_input) == 0  # no calendar anywhere on the page
    picker = at.selectbox(key="pick_date")
    assert picker.label == "日期" and picker.value == world.DAY
    shown, day_before = (fmt.day_with_weekday(d, "zh") for d in (world.DAY, world.DAY - timedelta(days=1)))
    assert picker.options.index(shown) < picker.options.index(day_before)  # newest first
    assert fmt.day_with_weekday(date(2026, 11, 20), "zh") == "2026年11月20日 周五"
    before = world.DAY - timedelta(days=1)
    picker.select(before)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.query_params["date"] == before.isoformat()
    assert any(fmt.day(before, "zh") in str(title.value) for title in at.title)

    # A custom period: from a list of days up to the day shown.
    custom = world.logged_in("li.wei", timeout_s=60, date=world.DAY.isoformat(), period="custom")
    custom.session_state["lang"] = "zh"
    custom.run()
    assert len(custom.date_input) == 0
    start = custom.selectbox(key="store_range_start")
    assert start.label == "开始" and start.value == world.DAY - timedelta(days=13)
    assert start.options[0] == fmt.day_with_weekday(world.DAY, "zh")  # nothing after the period's end

    # HQ's period end, too.
    hq = world.logged_in("hq.aurora", timeout_s=60, date=world.DAY.isoformat())
    hq.session_state["lang"] = "zh"
    hq.run()
    assert len(hq.date_input) == 0 and hq.selectbox(key="hq_end").value == world.DAY
