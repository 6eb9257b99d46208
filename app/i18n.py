"""Languages of the public pages and system emails: Babel catalogues, loaded once each.

The catalogues are the `.po` files under app/locale/<lang>/LC_MESSAGES/, read with
Babel's `read_po` when a language is first used and compiled in memory, so no `.mo`
binary is committed and there is no build step. Adding a language is adding a folder:
`pybabel init -i app/locale/messages.pot -d app/locale -l xx`, then translating it.
English is the source language: its catalogue is the empty one.

Babel is imported only where it is needed (a catalogue other than English, a date in a
language missing from LONG_DATES, a number): every dispatcher compiles issues, which
format one date each, and Babel's locale data for that alone is ~10 MB of a process's
memory (issue 15's memory target); the long dates of the shipped languages are here.
"""

from __future__ import annotations

import gettext
from collections.abc import Iterable
from datetime import date, datetime
from functools import cache
from io import BytesIO
from pathlib import Path
from typing import Any

LOCALE_DIR = Path(__file__).parent / "locale"
SOURCE_LANGUAGE = "en"
# CLDR's long date of each shipped language as Babel writes it ("d MMMM y", "d. MMMM y"):
# the pattern and the month names (English is en_GB's, see format_date). Checked against
# Babel for every month by tests/test_architecture.py (test_long_dates_are_babels).
LONG_DATES: dict[str, tuple[str, tuple[str, ...]]] = {
    "en": ("{d} {month} {y}", ("January", "February", "March", "April", "May", "June",
                               "July", "August", "September", "October", "November",
                               "December")),
    "de": ("{d}. {month} {y}", ("Januar", "Februar", "März", "April", "Mai", "Juni", "Juli",
                                "August", "September", "Oktober", "November", "Dezember")),
    "fr": ("{d} {month} {y}", ("janvier", "février", "mars", "avril", "mai", "juin",
                               "juillet", "août", "septembre", "octobre", "novembre",
                               "décembre")),
}  # fmt: skip


def _shipped() -> tuple[str, ...]:
    found = sorted(p.parents[1].name for p in LOCALE_DIR.glob("*/LC_MESSAGES/messages.po"))
    return (SOURCE_LANGUAGE, *[lang for lang in found if lang != SOURCE_LANGUAGE])


LANGUAGES: tuple[str, ...] = _shipped()


def N_(message: str) -> str:  # noqa: N802 - the name pybabel extracts by default
    """Mark a string for the catalogue where it is defined; translate it where it is shown."""
    return message


def is_shipped(lang: str | None) -> bool:
    """Whether a catalogue exists for `lang`."""
    return lang in LANGUAGES


def check(lang: str) -> str:
    """`lang` itself when shipped; ValueError naming the choices otherwise (pydantic: 422)."""
    if lang not in LANGUAGES:
        raise ValueError(f"must be one of: {', '.join(LANGUAGES)}")
    return lang


@cache
def translations(lang: str) -> gettext.NullTranslations:
    """The catalogue of `lang`, compiled from its .po once per process; empty for English."""
    po = LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po"
    if lang == SOURCE_LANGUAGE or lang not in LANGUAGES or not po.is_file():
        return gettext.NullTranslations()
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po
    from babel.support import Translations

    with po.open("rb") as f:
        catalog = read_po(f, locale=lang)
    compiled = BytesIO()
    write_mo(compiled, catalog, use_fuzzy=False)
    compiled.seek(0)
    return Translations(compiled)


def names() -> dict[str, str]:
    """Each shipped language by its own name ("English", "Deutsch", "français"), for a select."""
    from babel import Locale

    return {lang: Locale.parse(lang).get_display_name(lang) or lang for lang in LANGUAGES}


def default_language(settings: Any) -> str:
    """The installation's language (TIDINGS_LANGUAGE), English when it names no catalogue."""
    lang = getattr(settings, "language", SOURCE_LANGUAGE)
    return lang if lang in LANGUAGES else SOURCE_LANGUAGE


def language_of(languages: Iterable[str | None], default: str) -> str:
    """The language of a page about these lists: theirs when they all share one, else `default`.

    A list without a language of its own (None) speaks the installation's default.
    """
    chosen = {lang if lang is not None and is_shipped(lang) else default for lang in languages}
    return chosen.pop() if len(chosen) == 1 else default


def format_date(value: date | datetime, lang: str, format: str = "long") -> str:
    """A date as a reader of `lang` writes it: '3 June 2026', '3. Juni 2026', '3 juin 2026'."""
    if format == "long" and lang in LONG_DATES:
        pattern, months = LONG_DATES[lang]
        return pattern.format(d=value.day, month=months[value.month - 1], y=value.year)
    from babel import Locale, dates

    # English pages wrote day, month, year before there were catalogues: keep that order.
    locale = Locale.parse("en_GB" if lang == SOURCE_LANGUAGE else lang)
    return dates.format_date(value, format=format, locale=locale)


def format_number(value: float, lang: str) -> str:
    """A number with the grouping and decimal marks of `lang`."""
    from babel import Locale, numbers

    return numbers.format_decimal(value, locale=Locale.parse(lang))
