"""Settings: every knob in one place, read from TIDINGS_* variables and a .env file."""

from __future__ import annotations

import os
import secrets
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

VAR_DIR = Path(os.environ.get("TIDINGS_VAR_DIR", "./var"))


def _read_or_create_secret(path: Path, nbytes: int = 32) -> str:
    """Read a generated secret from `path`, creating it (mode 0600) on first use."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    value = secrets.token_urlsafe(nbytes)
    # O_EXCL: two processes starting at once agree on one secret.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    return value


class Settings(BaseSettings):
    """Configuration of one Tidings process."""

    model_config = SettingsConfigDict(env_prefix="TIDINGS_", env_file=".env", extra="ignore")

    database_url: str = f"sqlite+aiosqlite:///{VAR_DIR}/tidings.db"
    smtp_url: str | None = None
    public_url: str = "http://127.0.0.1:8000"
    admin_token: str | None = None
    secret_key: str | None = None
    from_: str = Field("Tidings <newsletter@localhost>", alias="TIDINGS_FROM")
    organisation_name: str = "Tidings"
    organisation_address: str = ""
    language: str = "en"  # public pages and system emails, unless a list chooses its own
    bounce_domain: str | None = None
    webhook_secret: str | None = None
    mailgun_signing_key: str | None = None
    sendgrid_verification_key: str | None = None
    postmark_webhook_token: str | None = None
    dkim_domain: str | None = None
    dkim_selector: str | None = None
    dkim_key_file: Path | None = None
    embedded_worker: bool = True
    retry_delays: Annotated[list[int], NoDecode] = [60, 300, 1800, 7200]
    soft_bounce_limit: int = 3
    test_postgres_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
    var_dir: Path = VAR_DIR
    check_deliverability: bool = False
    trusted_proxies: Annotated[list[str], NoDecode] = []
    public_rate_limit: int = 20  # requests per client address per minute, per public endpoint
    max_body_bytes: int = 1_000_000
    max_import_bytes: int = 200_000_000
    # Slow clients: seconds for a request's line and headers, and for its whole body.
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    import_body_timeout: float = 600.0
    # The media library: uploads bounded in bytes and in decoded pixels (decompression bombs).
    max_media_bytes: int = 10 * 1024 * 1024
    max_media_pixels: int = 40_000_000
    # S3-compatible media store; unset bucket means files under var/media.
    s3_bucket: str | None = None
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None
    s3_prefix: str = "media/"
    # The dispatcher.
    batch_size: int = 200
    concurrency: int = 20
    lease_seconds: int = 120
    failure_pause_threshold: int = 50
    # Fan-out (app/delivery/fanout.py): a send to at most this many recipients writes its
    # deliveries in the send call; a larger one fixes them by a snapshot and the workers
    # write them as they claim, already claimed, each claim looking through at most
    # `fanout_batch` subscriber ids for its next recipients.
    fanout_inline_limit: int = 50_000
    fanout_batch: int = 20_000
    hourly_quota: int | None = None
    log_level: str = "INFO"
    console_idle_minutes: int = 480  # a console session ends after this long unused
    webhook_allow_private: bool = False  # let webhooks call loopback/private addresses
    # Engagement (app/engagement): what is tracked, how long events stay, when a send pauses.
    tracking: Literal["off", "aggregate", "individual"] = "aggregate"
    events_retention_days: int = 400
    pause_complaint_rate: float = 0.003
    pause_bounce_rate: float = 0.05

    @field_validator("retry_delays", "trusted_proxies", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, int):
            return [value]
        return value

    @cached_property
    def admin_token_value(self) -> str:
        """The admin bearer token: configured, or generated into var/admin-token."""
        return self.admin_token or _read_or_create_secret(self.var_dir / "admin-token")

    @cached_property
    def secret_key_value(self) -> str:
        """The key that signs confirm and unsubscribe tokens."""
        return self.secret_key or _read_or_create_secret(self.var_dir / "secret-key", 48)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def sender_domain(self) -> str:
        """The domain of the default From address, used for Message-IDs."""
        return _domain_of(self.from_)  # parsed once per From, not on every read


@lru_cache(maxsize=16)
def _domain_of(from_header: str) -> str:
    from email.utils import parseaddr

    return parseaddr(from_header)[1].rpartition("@")[2] or "localhost"


settings = Settings()
