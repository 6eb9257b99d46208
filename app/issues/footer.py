"""The words an issue's layout adds around its body, in the language of the issue's lists.

The body is the author's and is never translated; the footer (why you receive this,
unsubscribe, preferences, the web version) is ours, so it speaks the readers' language.
Layouts see these as `footer.<key>` (email_templates/newsletter shows each).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from app import i18n


def issue_language(list_languages: Iterable[str | None], default: str) -> str:
    """An issue's language: its lists' when they share one, else the installation's."""
    return i18n.language_of(list_languages, default)


def layout_words(lang: str, list_names: Sequence[str]) -> dict[str, str]:
    """The layout's own words in `lang`, the list names placed where the language wants them."""
    _ = i18n.translations(lang).gettext
    lists = ", ".join(list_names)
    if list_names:
        receiving = _("You are receiving this because you subscribed to %(lists)s.")
        web_version = _("This is the web version of an issue of %(lists)s.")
    else:
        receiving = _("You are receiving this because you subscribed.")
        web_version = _("This is the web version of an issue.")
    return {
        "receiving": receiving % {"lists": lists} if list_names else receiving,
        "web_version": web_version % {"lists": lists} if list_names else web_version,
        "unsubscribe": _("Unsubscribe"),
        "preferences": _("Manage your preferences"),
        "browser": _("View in your browser"),
        "to_receive": _("To receive the next one by email,"),
        "subscribe_here": _("subscribe here"),
        "past_issues": _("All past issues"),
        # The plain-text part puts each address after its label.
        "unsubscribe_label": _("Unsubscribe:"),
        "preferences_label": _("Manage your preferences:"),
        "browser_label": _("View in your browser:"),
        "subscribe_label": _("Subscribe to receive the next one by email:"),
        "past_issues_label": _("All past issues:"),
    }
