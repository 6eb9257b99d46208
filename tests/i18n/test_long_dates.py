"""The long dates a worker formats without Babel are Babel's own."""

from __future__ import annotations

from datetime import date

from babel import Locale, dates

from app import i18n


def test_long_dates_are_babels() -> None:
    """The long dates a worker formats without Babel (app/i18n.py) are Babel's, every month,
    for every shipped language; a language added later is formatted by Babel itself."""
    assert set(i18n.LANGUAGES) <= set(i18n.LONG_DATES)
    for lang in i18n.LANGUAGES:
        locale = Locale.parse("en_GB" if lang == i18n.SOURCE_LANGUAGE else lang)
        for day in (date(2026, month, 1 + month * 2) for month in range(1, 13)):
            assert i18n.format_date(day, lang) == dates.format_date(day, "long", locale=locale)
