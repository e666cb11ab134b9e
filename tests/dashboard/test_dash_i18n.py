"""Both languages carry every UI string with the same placeholders; the views use no key that is missing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dashboard.i18n import EN, LANGUAGES, TABLES, ZH, as_lang, placeholders, t

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
