"""The email renderer: an issue compiled once, then rendered per recipient into RFC 5322 bytes.

Pure functions, no database and no settings: the site's URL comes from the caller
(compose.py passes the app's). The costly steps (Jinja compile, Markdown, nh3, MJML, CSS
inlining, QP encoding of the static text) run once per issue; see render_inputs.py for
what it is given, templating.py for how the subscriber-dependent parts are cut out as
slots, layout.py for the HTML pipeline, and mime.py for the byte assembly.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from email.headerregistry import Address
from email.utils import getaddresses, make_msgid, parseaddr
from typing import Any

from markupsafe import Markup

from app import branding, i18n
from app.engagement.links import Tracking
from app.issues import layout as _layout
from app.issues.footer import layout_words
from app.issues.memo import BoundedMemo
from app.issues.mime import (
    MessageSkeleton,
    check_header_value,
    clean_header_text,
    clean_subject,
    format_address,
    simple_message,
    subject_header,
)
from app.issues.render_inputs import (
    IssueContent,
    Recipient,
    SubjectTemplate,
    sample_recipient,
    template_context,
)
from app.issues.templating import (
    DYNAMIC_NAMES,
    BodyError,
    HeaderError,
    SlotBatch,
    SlottedTemplate,
    is_template,
)
from app.issues.templating import trial_render as _trial

TRACKING_TAG = "K"  # the slots of app/engagement/links.py: pixel and tracked links

__all__ = ["BodyError", "CompiledIssue", "HeaderError", "IssueContent", "Recipient",
           "compile_issue", "render_system_email", "validate_issue"]  # fmt: skip

log = logging.getLogger(__name__)
_SLOW_CACHE_MAX = 256  # distinct bodies a control-flow template yields (e.g. vip or not)


# The body's compiled template, shared by the autosave's validation and the compile after
# it. Only the compile is kept: every render still runs in the sandbox with its limits.
_body_templates: BoundedMemo[SlottedTemplate] = BoundedMemo(max_entries=8, max_chars=2_000_000)


def body_template(source: str, dynamic: frozenset[str]) -> SlottedTemplate:
    """The body's SlottedTemplate (tag B, autoescaped), compiled once per source."""
    return _body_templates.get((source, dynamic), lambda: SlottedTemplate(
        source, tag="B", autoescape=True, dynamic=dynamic))  # fmt: skip


def validate_issue(
    *, subject: str, preheader: str, from_addr: str, template: str, format: str, body: str
) -> None:
    """Raise BodyError or HeaderError unless this issue can be rendered for anyone."""
    check_header_value(subject, "subject")
    check_header_value(from_addr, "from")
    if not subject.strip():
        raise HeaderError("subject must not be empty")
    # One mailbox: a list of authors in From needs a Sender and fails DMARC alignment.
    if len(getaddresses([from_addr])) != 1:
        raise HeaderError("from must name exactly one address")
    _, addr = parseaddr(from_addr)
    try:
        Address(addr_spec=addr)
    except (ValueError, IndexError, TypeError) as exc:
        raise HeaderError(f"from is not an email address: {exc}") from None
    if "@" not in addr:
        raise HeaderError("from is not an email address")
    if format not in ("markdown", "html"):
        raise BodyError("format must be 'markdown' or 'html'")
    try:
        layout = _layout.load_layout(template)
    except FileNotFoundError as exc:
        raise BodyError(str(exc)) from None
    compiled = body_template(body, DYNAMIC_NAMES)
    sample = sample_recipient("")  # only whether it renders matters here, not its links
    issue = {"subject": subject, "preheader": preheader, "id": 0}
    ctx = template_context(sample, issue, "")
    if is_template(subject):
        personal = SubjectTemplate(subject, {"issue": issue, "archive_url": ""})
        issue = {**issue, "subject": clean_subject(personal.check(ctx))}
        ctx = template_context(sample, issue, "")
    # With the layout's CSS, as the compile does: its body_fragment (the preview's, right
    # after an autosave) is then this one's, from layout.body_memo.
    _trial(lambda: _layout.body_fragment(compiled.render_recording(ctx)[0], format, layout.css))


def _compile_subject(
    issue: Mapping[str, Any], archive_url: str, sample: Recipient
) -> tuple[str, SubjectTemplate | None]:
    """The subject everyone gets, or the neutral subscriber's and a per-recipient template."""
    source = str(issue["subject"])
    if not is_template(source):
        return source, None
    # `issue.subject` inside the subject is its own source text: no recursion.
    template = SubjectTemplate(source, {"issue": issue, "archive_url": archive_url})
    if template.constant is not None:
        return clean_subject(template.constant), None
    neutral = template_context(sample, issue, archive_url)
    return clean_subject(template.render(neutral)), template


class CompiledIssue:
    """An issue with its expensive work done; render_* are cheap per recipient."""

    def __init__(
        self, content: IssueContent, *, archive_url: str, web: bool = False, site_url: str = "",
        tracking: Tracking | None = None,
    ):  # fmt: skip
        self.content = content
        # Engagement: links and pixel rewritten once per assembled variant (app/engagement).
        self.tracking = tracking
        self._tracked: dict[tuple[str, ...], _layout.Assembled] = {}
        site = site_url.rstrip("/")  # the app's public URL (compose.py); "": site-relative
        self._sample = sample_recipient(site)  # previews without a subscriber, the archive
        self.archive_url = archive_url
        self._raw_issue = {"subject": content.subject, "preheader": content.preheader,
                           "id": content.id}  # fmt: skip
        subject, self._subject = _compile_subject(self._raw_issue, archive_url, self._sample)
        # Inside the body and layout, `issue.subject` is what this recipient's header says;
        # here, what the neutral subscriber's does.
        self._issue = {**self._raw_issue, "subject": subject}
        self._neutral = template_context(self._sample, self._raw_issue, archive_url)
        dynamic = DYNAMIC_NAMES | {"issue"} if self._subject else DYNAMIC_NAMES
        self._layout = _layout.load_layout(content.template, dynamic)
        self._body = body_template(content.body, dynamic)
        date = content.date or datetime.now(UTC)
        self._static = {
            "issue": self._issue,
            "archive_url": archive_url,
            "organisation": branding.current().email_context(),
            "date": i18n.format_date(date, content.language),
            "list_names": list(content.list_names),
            "lang": content.language,
            "footer": layout_words(content.language, content.list_names),
            "body": Markup(_layout.BODY_MARK),  # noqa: S704 - a fixed marker, no user data
            # The public web version: layouts show how to subscribe instead of personal links.
            "web_version": web,
            "subscribe_url": f"{site}/subscribe",
            "archive_index_url": f"{site}/archive",
        }
        self._templates = (self._layout.html, self._layout.text, self._body)
        self._fixed = [t.render_skeleton(self._static) if t.fast else None for t in self._templates]
        # Per recipient, the fast templates' slots are one Jinja render (templating.py).
        fast = [t for t, f in zip(self._templates, self._fixed, strict=True) if f is not None]
        self._batch = SlotBatch(fast)
        self._cache: dict[tuple[str, ...], _layout.Assembled] = {}
        self.fast = all(t.fast for t in self._templates) and (
            self._subject is None or self._subject.fast
        )
        self._skeleton = MessageSkeleton(
            from_addr=content.from_addr,
            subject=None if self._subject else subject,
            list_id=content.list_id,
        )
        self._parts(self._sample)  # compile now, so a broken layout fails here
        if tracking is not None:
            # The link table is fixed here: a variant met later keeps links it lacks as is.
            self._parts(replace(self._sample, delivery_id=0, tracked=True))
            tracking.frozen = True

    def render_subject(self, r: Recipient) -> str:
        """The subject this recipient sees, in the header and wherever the layout shows it."""
        return self._subject_in(template_context(r, self._raw_issue, self.archive_url), False)

    def _subject_in(self, personal: dict[str, Any], force_slow: bool) -> str:
        if self._subject is None:
            return str(self._issue["subject"])
        raw = self._subject.render(personal, neutral=self._neutral, force_slow=force_slow)
        return clean_subject(raw)

    def _parts(
        self, r: Recipient, *, force_slow: bool = False
    ) -> tuple[_layout.Assembled, dict[str, list[str]], str]:
        """This recipient's assembled variant, its slot values by tag, and the subject."""
        personal = template_context(r, self._raw_issue, self.archive_url)
        subject = self._subject_in(personal, force_slow)
        issue = self._issue if self._subject is None else {**self._issue, "subject": subject}
        ctx = {**self._static, **personal, "issue": issue}
        skeletons: list[str] = []
        values = {} if force_slow else self._batch.eval(ctx)
        for template, fixed in zip(self._templates, self._fixed, strict=True):
            if fixed is not None and not force_slow:
                skeletons.append(fixed)
                continue
            try:
                skeleton, vals = template.render_recording(ctx)
            except Exception:  # noqa: BLE001 - documented fallback: neutral content, never a crash
                log.warning("issue %s: body failed for one recipient", self.content.id,
                            exc_info=True)  # fmt: skip
                neutral = {**ctx, **template_context(self._sample, issue, self.archive_url)}
                skeleton, vals = template.render_recording(neutral)
            skeletons.append(skeleton)
            values[template.tag] = vals
        key = tuple(skeletons)
        assembled = self._cache.get(key)
        if assembled is None:
            if len(self._cache) >= _SLOW_CACHE_MAX:
                self._cache.clear()
            assembled = _layout.assemble(self._layout, *skeletons, format=self.content.format)
            self._cache[key] = assembled
        if self.tracking is not None and r.tracked and r.delivery_id is not None:
            assembled = self._tracked_variant(key, assembled)
            values[TRACKING_TAG] = self.tracking.values(r.delivery_id)
        return assembled, values, subject

    def _tracked_variant(
        self, key: tuple[str, ...], assembled: _layout.Assembled
    ) -> _layout.Assembled:
        found = self._tracked.get(key)
        if found is None:
            assert self.tracking is not None
            if len(self._tracked) >= _SLOW_CACHE_MAX:
                self._tracked.clear()
            found = self._tracked[key] = self.tracking.apply(assembled)
        return found

    def render_html(self, r: Recipient) -> str:
        """The HTML part for this recipient (previews)."""
        assembled, values, _ = self._parts(r)
        return assembled.html.text(assembled.fill(values)[0])

    def render_text(self, r: Recipient) -> str:
        """The plain-text part for this recipient (previews)."""
        assembled, values, _ = self._parts(r)
        return assembled.text.text(assembled.fill(values)[1])

    def render_archive_html(self) -> str:
        """The public web version: a neutral subscriber, no unsubscribe token."""
        return self.render_html(self._sample)

    def render_archive_subject(self) -> str:
        """The subject as the public archive shows it: rendered for the neutral subscriber."""
        return self.render_subject(self._sample)

    def render_message(self, r: Recipient, *, force_slow: bool = False) -> bytes:
        """The full RFC 5322 message (CRLF, QP parts, no DKIM), ready for SMTP DATA."""
        assembled, values, subject = self._parts(r, force_slow=force_slow)
        text, html = assembled.encode(values)
        return self._skeleton.message(
            subject_line=subject_header(subject) if self._subject else None,
            to=format_address(r.name, r.email),
            message_id=r.message_id,
            unsubscribe_url=r.unsubscribe_url,
            text=text,
            html=html,
        )


def compile_issue(
    content: IssueContent, *, archive_url: str, web: bool = False, site_url: str = "",
    tracking: Tracking | None = None,
) -> CompiledIssue:  # fmt: skip
    """Do an issue's expensive rendering work once (`web`: the archive's version)."""
    return CompiledIssue(content, archive_url=archive_url, web=web, site_url=site_url,
                         tracking=tracking)  # fmt: skip


def render_system_email(
    kind: str, *, to_email: str, to_name: str, from_addr: str, context: Mapping[str, Any]
) -> bytes:
    """A system email (the confirmation) from email_templates/<kind>/ as RFC 5322 bytes."""
    ctx = {"organisation": branding.current().email_context(), **context}
    system = _layout.load_system(kind, frozenset(context))
    subject = clean_header_text(system.subject.render(ctx))
    html, text = system.render(ctx)
    domain = parseaddr(from_addr)[1].rpartition("@")[2] or "localhost"  # as Settings.sender_domain
    return simple_message(
        from_addr=from_addr,
        to=format_address(to_name, to_email),
        subject=subject,
        message_id=make_msgid(domain=domain),
        text=text,
        html=html,
    )
