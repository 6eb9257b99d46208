"""What the settings page shows of the setup: what the environment fixes (secrets hidden),
the DNS records to publish, the bounce webhook URLs and the sign-up form's embed snippet.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from email.utils import parseaddr
from urllib.parse import urlsplit, urlunsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from sqlalchemy.engine import make_url

from app.config import Settings

WEBHOOKS = ("dsn", "ses", "sendgrid", "postmark", "mailgun")


@dataclass(frozen=True)
class DnsRecord:
    name: str
    type: str
    value: str
    why: str


def hide_password(url: str) -> str:
    """A URL with its password replaced by ***, for showing."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def environment(settings: Settings) -> list[tuple[str, str]]:
    """The settings the environment fixes, as (name, value) with secrets hidden."""
    smtp = settings.smtp_url or f"outbox (files under {settings.var_dir}/outbox)"
    servers = ", ".join(hide_password(u.strip()) for u in smtp.split(",") if u.strip())
    database = make_url(settings.database_url).render_as_string(hide_password=True)
    dkim = "configured" if _dkim_ready(settings) else "not configured"
    selector = f"{settings.dkim_selector or '-'}._domainkey.{settings.dkim_domain or '-'}"
    return [
        ("TIDINGS_SMTP_URL", servers),
        ("TIDINGS_DATABASE_URL", database),
        ("TIDINGS_PUBLIC_URL", settings.public_url),
        ("TIDINGS_FROM", settings.from_),
        ("TIDINGS_BOUNCE_DOMAIN", settings.bounce_domain or "not set (no VERP)"),
        ("TIDINGS_WEBHOOK_SECRET", "set" if settings.webhook_secret else "not set"),
        ("DKIM", f"{dkim} ({selector})"),
        ("S3 media store", settings.s3_bucket or "not set (files under var/media)"),
    ]  # fmt: skip


def _dkim_ready(settings: Settings) -> bool:
    return bool(settings.dkim_domain and settings.dkim_selector and settings.dkim_key_file)


def dkim_public_value(pem: bytes) -> str:
    """The DKIM TXT value for a PEM private key (RSA or Ed25519)."""
    key = serialization.load_pem_private_key(pem, password=None)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        raw = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode()}"
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("the DKIM key is neither RSA nor Ed25519")
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"


def dns_records(settings: Settings) -> tuple[list[DnsRecord], list[str]]:
    """The records to publish, and problems found on the way (an unreadable key)."""
    domain = parseaddr(settings.from_)[1].rpartition("@")[2] or "example.org"
    records, problems = [], []
    if _dkim_ready(settings):
        try:
            value = dkim_public_value(settings.dkim_key_file.read_bytes())  # type: ignore[union-attr]
        except (OSError, ValueError, TypeError) as exc:
            problems.append(f"the DKIM key file could not be read: {exc}")
        else:
            name = f"{settings.dkim_selector}._domainkey.{settings.dkim_domain}"
            records.append(DnsRecord(name, "TXT", value, "lets receivers check the signature"))
    else:
        problems.append("DKIM is not configured: set TIDINGS_DKIM_DOMAIN, _SELECTOR, _KEY_FILE.")
    records.append(DnsRecord(domain, "TXT", "v=spf1 a mx include:<your mail provider> ~all",
                             "names the servers allowed to send as this domain; "
                             "list the SMTP servers above"))  # fmt: skip
    dmarc = f"v=DMARC1; p=none; rua=mailto:dmarc@{domain}"
    advice = "start with p=none, read the reports, then move to quarantine"
    records.append(DnsRecord(f"_dmarc.{domain}", "TXT", dmarc, advice))
    return records, problems


def webhook_urls(settings: Settings) -> list[tuple[str, str]]:
    """The bounce webhook URL of each provider."""
    base = settings.public_url.rstrip("/")
    return [(name, f"{base}/webhooks/{name}") for name in WEBHOOKS]


def embed_snippet(settings: Settings, list_slugs: list[str]) -> str:
    """The sign-up form to paste into another site, for these public lists."""
    action = html.escape(settings.public_url.rstrip("/") + "/api/v1/subscribe", quote=True)
    lists = "".join(
        f'\n  <input type="hidden" name="list" value="{html.escape(s, quote=True)}">'
        for s in list_slugs
    )
    return (
        f'<form method="post" action="{action}">\n'
        '  <label for="tidings-email">Email address</label>\n'
        '  <input type="email" id="tidings-email" name="email" required autocomplete="email">\n'
        '  <label for="tidings-name">Name (optional)</label>\n'
        '  <input type="text" id="tidings-name" name="name" autocomplete="name">'
        f"{lists}\n"
        '  <button type="submit">Subscribe</button>\n'
        "</form>"
    )
