"""Where and how to reach one SMTP server: the settings parsed from one smtp:// URL.

At the bottom of the delivery package: the SMTP client (smtp.py) and the transports
(transport.py) both read it, and it imports neither, so the two never import each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit


@dataclass
class SMTPServer:
    """Where and how to reach one SMTP server, parsed from one URL."""

    host: str
    port: int
    name: str = ""  # its route name (name= in the URL; default: the host), see transport.py
    username: str | None = None
    password: str | None = None
    use_tls: bool = False  # smtps://, TLS from the first byte
    start_tls: bool = False
    max_connections: int = 10
    rate: float = 0.0
    timeout: float = 30.0
    validate_certs: bool = True
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_url(cls, url: str) -> SMTPServer:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps"):
            raise ValueError(f"not an smtp:// or smtps:// URL: {parts.scheme}://")
        if not parts.hostname:
            raise ValueError("SMTP URL without a host")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        truthy = ("1", "true", "yes", "on")
        smtps = parts.scheme == "smtps"
        return cls(
            host=parts.hostname,
            name=query.get("name", "").strip() or parts.hostname,
            port=parts.port or (465 if smtps else 25),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            use_tls=smtps,
            start_tls=query.get("starttls", "false").lower() in truthy,
            max_connections=max(1, int(query.get("max_connections", 10))),
            rate=float(query.get("rate", 0)),
            timeout=float(query.get("timeout", 30)),
            validate_certs=query.get("verify", "true").lower() in truthy,
        )
