"""The catalogues: every string of the public pages is extracted, and translated in de and fr."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from app import i18n

ROOT = Path(__file__).resolve().parents[2]
POT = ROOT / "app" / "locale" / "messages.pot"
PLACEHOLDER = re.compile(r"%\([a-z_]+\)s")
TAG = re.compile(r"</?[a-z]+(?:\s[^>]*)?>")


def catalogue(lang: str) -> dict[str, str]:
    with (ROOT / "app" / "locale" / lang / "LC_MESSAGES" / "messages.po").open("rb") as f:
        return {m.id: m.string for m in read_po(f) if m.id and not m.fuzzy}


def template_ids() -> set[str]:
    with POT.open("rb") as f:
        return {m.id for m in read_po(f) if m.id}


def test_english_german_and_french_ship() -> None:
    assert i18n.LANGUAGES[:1] == ("en",) and {"de", "fr"} <= set(i18n.LANGUAGES)


@pytest.mark.parametrize("lang", ["de", "fr"])
def test_every_msgid_is_translated_with_its_placeholders_and_markup(lang: str) -> None:
    ids, translated = template_ids(), catalogue(lang)
    assert len(ids) > 60  # the public pages and the confirmation email
    missing = sorted(i for i in ids if not translated.get(i, "").strip())
    assert missing == [], f"{lang}: untranslated {missing}"
    for msgid in ids:
        msgstr = translated[msgid]
        assert sorted(PLACEHOLDER.findall(msgstr)) == sorted(PLACEHOLDER.findall(msgid)), msgid
        # Links and emphasis keep their targets: a translator moves them, never drops them.
        assert sorted(TAG.findall(msgstr)) == sorted(TAG.findall(msgid)), msgid
        assert msgstr != msgid or len(msgid) < 12, f"{lang}: {msgid!r} left in English"


def test_the_template_holds_every_marked_string(tmp_path: Path) -> None:
    """Re-extracting with babel.cfg finds no string the .pot lacks: none is left untranslated.

    (A msgid no longer used may stay a while: it costs nothing, and lets the catalogues
    be updated before or after the template that marks a new string.)
    """
    out = tmp_path / "fresh.pot"
    subprocess.run(
        [sys.executable, "-m", "babel.messages.frontend", "extract", "-F", "babel.cfg",
         "--no-location", "-o", str(out), "."],
        cwd=ROOT, check=True, capture_output=True,
    )  # fmt: skip
    with out.open("rb") as f:
        fresh = {m.id for m in read_po(f) if m.id}
    assert sorted(fresh - template_ids()) == [], "run pybabel extract and update (babel.cfg)"


def test_an_unknown_language_is_english_and_a_catalogue_is_compiled_once() -> None:
    assert i18n.translations("xx").gettext("Subscribe") == "Subscribe"
    assert i18n.translations("de") is i18n.translations("de")
    assert i18n.translations("fr").gettext("Unsubscribe") == "Se désabonner"


def test_a_page_about_lists_speaks_theirs_only_when_they_agree() -> None:
    assert i18n.language_of(["de", "de"], "en") == "de"
    assert i18n.language_of(["de", "fr"], "en") == "en"
    assert i18n.language_of(["de", None], "en") == "en"  # None is the default's
    assert i18n.language_of([None], "fr") == "fr"
    assert i18n.language_of([], "fr") == "fr"
    assert i18n.language_of(["xx"], "en") == "en"


def test_dates_and_numbers_follow_the_language() -> None:
    from datetime import date

    day = date(2026, 6, 3)
    assert i18n.format_date(day, "en") == "3 June 2026"
    assert i18n.format_date(day, "de") == "3. Juni 2026"
    assert i18n.format_date(day, "fr") == "3 juin 2026"
    assert i18n.format_number(1234.5, "de") == "1.234,5"
    assert i18n.format_number(1234.5, "en") == "1,234.5"
