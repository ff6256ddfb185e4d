"""The `schedules:` section of profiles.yaml: a cron expression and time zone that start a
template, a workflow or a goal run at each tick.

Checked here: the cron syntax (5 fields, or 6 with seconds first, as DBOS reads it), the
time zone, and that exactly one target is named. That the target exists and its inputs
fit is checked across sections by the loader.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from orchestrator_mcp.config.base import Strict

CRON_HINT = ("5 fields 'minute hour day month weekday' (e.g. '*/15 * * * *'), or 6 with "
             "seconds first ('*/10 * * * * *')")


def check_cron(expression: str) -> str:
    from croniter import croniter

    fields = expression.split()
    if not 5 <= len(fields) <= 6 or not croniter.is_valid(expression,
                                                           second_at_beginning=True):
        raise ValueError(f"cron {expression!r} is not a valid cron expression; give "
                         f"{CRON_HINT}")
    return " ".join(fields)


def check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"time zone {name!r} does not exist; give an IANA name such as "
                         "'UTC', 'Europe/Paris' or 'America/New_York'") from None
    return name


class ScheduleDef(Strict):
    description: str = ""
    cron: str = Field(description=CRON_HINT)
    timezone: str = Field(default="UTC", description="IANA time zone the cron is read in")
    template: str | None = Field(default=None, description="a template under 'templates:'")
    workflow: str | None = Field(default=None, description="a workflow")
    goal: str | None = Field(default=None, min_length=1, max_length=10_000,
                             description="a goal run's goal (with 'profile')")
    profile: str = Field(default="default", description="the profile of a goal run")
    inputs: dict[str, Any] = Field(
        default_factory=dict, description="template parameters, workflow inputs, or a goal "
        "run's context")
    enabled: bool = True
    overlap: Literal["skip", "allow"] = Field(
        default="skip", description="skip: a tick starts nothing while this schedule's "
        "previous run has not ended")
    missed: Literal["skip", "run_once"] = Field(
        default="skip", description="ticks missed while no process executed runs: skip "
        "them, or run once (the latest) at start")

    @field_validator("cron")
    @classmethod
    def _cron(cls, expression: str) -> str:
        return check_cron(expression)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, name: str) -> str:
        return check_timezone(name)

    @model_validator(mode="after")
    def _one_target(self) -> ScheduleDef:
        named = [k for k in ("template", "workflow", "goal") if getattr(self, k) is not None]
        if len(named) != 1:
            raise ValueError("give exactly one of 'template', 'workflow' or 'goal' (what each "
                             f"tick starts); got {', '.join(named) or 'none'}")
        if self.goal is None and "profile" in self.model_fields_set:
            raise ValueError("'profile' is for goal schedules; a template or workflow names "
                             "its own")
        return self

    @property
    def target(self) -> str:
        """'template disk-health', 'workflow network-check' or 'goal'."""
        if self.template is not None:
            return f"template {self.template}"
        if self.workflow is not None:
            return f"workflow {self.workflow}"
        return "goal"

    def ticks_after(self, moment: datetime, count: int) -> list[datetime]:
        """The next `count` fire times after `moment`, in the schedule's time zone."""
        from croniter import croniter

        it = croniter(self.cron, moment.astimezone(ZoneInfo(self.timezone)),
                      second_at_beginning=True)
        return [it.get_next(datetime) for _ in range(count)]

    def latest_tick(self, moment: datetime) -> tuple[datetime, datetime]:
        """The last fire time at or before `moment` and the one before it."""
        from croniter import croniter

        it = croniter(self.cron, moment.astimezone(ZoneInfo(self.timezone)),
                      second_at_beginning=True)
        latest = it.get_prev(datetime)
        return latest, it.get_prev(datetime)
