"""The `notifications:` section of servers.yaml: where to tell people that a run waits for
them or has ended (JSON signed with HMAC-SHA256, or a Slack-compatible message)."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationInfo, field_validator

from orchestrator_mcp.config.base import Name, OptionalSecret, Strict, is_loopback_host


class NotificationEvent(StrEnum):
    """What a target may be told about: a run waiting for an approval, or its end."""

    AWAITING_APPROVAL = "awaiting_approval"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


DEFAULT_EVENTS = [NotificationEvent.AWAITING_APPROVAL, NotificationEvent.COMPLETED,
                  NotificationEvent.FAILED]


def _checked_url(url: str, *, allow_http: bool, key: str) -> str:
    """An absolute http(s) URL; plain http only to a loopback host or with allow_http.
    Errors never repeat the URL: it may hold a token."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ValueError(f"{key} is not a valid URL (check the port)") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{key} must be an absolute http:// or https:// URL with a host")
    if parts.scheme == "http" and not allow_http and not is_loopback_host(parts.hostname):
        raise ValueError(f"{key} must use https (plain http is sent in clear); a loopback "
                         "host may use http, or set allow_http: true on a trusted network")
    if any(c.isspace() for c in url):
        raise ValueError(f"{key} may not contain spaces or line breaks")
    return url


class NotificationTarget(Strict):
    """One receiver. Empty `profiles` / `alert_rules` mean every run; otherwise a run is
    sent only when its profile is listed and, with `alert_rules`, when one of those alert
    rules opened it."""

    name: Name
    allow_http: bool = False  # before `url`, whose check reads it
    url: str = Field(description="where to POST; https unless loopback or allow_http")
    secret: OptionalSecret = Field(
        default=None, description="HMAC-SHA256 key: X-Signature-256: sha256=<hex> over "
        "'<X-Orchestrator-Timestamp>.<body>'")
    format: Literal["json", "slack"] = "json"
    events: list[NotificationEvent] = Field(default_factory=lambda: list(DEFAULT_EVENTS),
                                            min_length=1)
    profiles: list[str] = Field(default_factory=list)
    alert_rules: list[str] = Field(default_factory=list)
    timeout_seconds: float = Field(default=10, gt=0, le=120,
                                   description="for one POST, connection included")

    @field_validator("url")
    @classmethod
    def _url(cls, url: str, info: ValidationInfo) -> str:
        return _checked_url(url, allow_http=bool(info.data.get("allow_http")), key="the URL")

    def wants(self, event: NotificationEvent, profile: str, alert_rule: str | None) -> bool:
        return (event in self.events
                and (not self.profiles or profile in self.profiles)
                and (not self.alert_rules or alert_rule in self.alert_rules))


class NotificationsSettings(Strict):
    public_url: str | None = Field(
        default=None, description="the console's base URL as receivers reach it, for the "
        "link to a run's page (<public_url>/console/runs/<id>)")
    targets: list[NotificationTarget] = Field(default_factory=list)
    poll_seconds: float = Field(
        default=2, ge=0.1, le=60, description="how often runs executed elsewhere are "
        "looked at (runs this process executes are sent at once)")
    catch_up_hours: float = Field(
        default=24, gt=0, le=24 * 30, description="after a stop, events older than this "
        "are not sent any more")

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, url: str | None) -> str | None:
        if url is None or not url.strip():
            return None
        return _checked_url(url.strip(), allow_http=True, key="public_url").rstrip("/")

    @field_validator("targets")
    @classmethod
    def _distinct(cls, targets: list[NotificationTarget]) -> list[NotificationTarget]:
        names = [t.name for t in targets]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"target names must be distinct: {', '.join(twice)} appear twice")
        return targets

    def target(self, name: str) -> NotificationTarget | None:
        return next((t for t in self.targets if t.name == name), None)
