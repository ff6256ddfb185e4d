"""The `alerts:` section of profiles.yaml: the Alertmanager webhook's tokens and limits, and
the rules that turn alerts into runs."""

from __future__ import annotations

import re

from pydantic import Field, field_validator, model_validator

from orchestrator_mcp.config.base import Name, OptionalSecret, OptionalToken, Strict


class AlertRule(Strict):
    """Which alerts open which runs. Every `match` label must be equal and every `match_re`
    label must fully match its regex; the first matching rule wins."""

    name: Name
    match: dict[str, str] = Field(default_factory=dict)
    match_re: dict[str, str] = Field(default_factory=dict)
    profile: str = "default"
    goal: str = Field(
        default="Alert {{ labels.alertname }} is {{ status }} on "
        "{{ labels.instance | default('an unknown instance') }}: "
        "{{ annotations.summary | default('') }}. Diagnose the cause with read-only tools "
        "and the runbooks, then propose a remediation.",
        description="Jinja2 template (sandboxed) over status, labels, annotations, alerts.",
    )
    workflow: str | None = Field(
        default=None, description="run this workflow instead of a goal run; its inputs "
        "come from `workflow_inputs` templates")
    workflow_inputs: dict[str, str] = Field(default_factory=dict)
    cancel_on_resolved: bool = False
    max_concurrent: int = Field(default=5, ge=1, le=1000)
    cooldown_seconds: float = Field(default=0, ge=0, le=86400)

    @field_validator("match_re")
    @classmethod
    def _regexes(cls, patterns: dict[str, str]) -> dict[str, str]:
        for label, pattern in patterns.items():
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"match_re.{label}: {pattern!r} is not a valid regex "
                                 f"({exc.msg})") from None
        return patterns

    @field_validator("goal")
    @classmethod
    def _template(cls, goal: str) -> str:
        from jinja2 import TemplateSyntaxError
        from jinja2.sandbox import SandboxedEnvironment

        try:
            SandboxedEnvironment().parse(goal)
        except TemplateSyntaxError as exc:
            raise ValueError(f"goal template error at line {exc.lineno}: {exc.message}") from None
        return goal


class AlertsSettings(Strict):
    token: OptionalToken = Field(
        default=None, description="Bearer token Alertmanager sends (http_config.authorization); "
        "the HTTP token is accepted too.")
    hmac_secret: OptionalSecret = Field(
        default=None, description="If set, requests must carry X-Signature-256: sha256=<hex>.")
    max_body_bytes: int = Field(default=1_048_576, ge=1024, le=64 * 1_048_576)
    max_new_runs_per_minute: int = Field(default=30, ge=1, le=100_000)
    rules: list[AlertRule] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _removed_keys(cls, data: object) -> object:
        if isinstance(data, dict) and "deliver_url" in data:
            raise ValueError(
                "deliver_url was removed: alert runs' outcomes are now sent by `notifications:` "
                "in servers.yaml — fix: delete deliver_url and add a target there, e.g. "
                "notifications: {targets: [{name: alerts, url: <the URL>, format: slack, "
                "alert_rules: [<your rule names>]}]} (see the README's Notifications)")
        return data
