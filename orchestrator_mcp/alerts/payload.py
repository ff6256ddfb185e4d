"""Alertmanager's webhook payload, version 4, as it arrives."""

from __future__ import annotations

import hashlib
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Alert(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    status: Literal["firing", "resolved"]
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: str = Field(alias="startsAt", default="")
    ends_at: str = Field(alias="endsAt", default="")
    generator_url: str = Field(alias="generatorURL", default="")
    fingerprint: str = Field(min_length=1, max_length=128)


class Notification(BaseModel):
    # Alertmanager may add fields in later releases; unknown ones are ignored, known ones
    # are validated.
    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    version: Literal["4"]
    group_key: str = Field(alias="groupKey", min_length=1, max_length=4096)
    truncated_alerts: int = Field(alias="truncatedAlerts", default=0, ge=0)
    status: Literal["firing", "resolved"]
    receiver: str = Field(max_length=1024)
    group_labels: dict[str, str] = Field(alias="groupLabels", default_factory=dict)
    common_labels: dict[str, str] = Field(alias="commonLabels", default_factory=dict)
    common_annotations: dict[str, str] = Field(alias="commonAnnotations", default_factory=dict)
    external_url: str = Field(alias="externalURL", default="")
    alerts: list[Alert] = Field(min_length=1, max_length=10_000)

    @property
    def group_id(self) -> str:
        """The group as dedup sees it: group key plus the set of alert fingerprints."""
        fingerprints = ",".join(sorted({a.fingerprint for a in self.alerts}))
        return hashlib.sha256(f"{self.group_key}\n{fingerprints}".encode()).hexdigest()[:32]

    @property
    def receipt_id(self) -> str:
        """Same for Alertmanager's retries of one notification, different for a new one."""
        parts = [self.group_key, self.status] + sorted(
            f"{a.fingerprint}/{a.status}/{a.starts_at}/{a.ends_at}" for a in self.alerts)
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]

    @property
    def labels(self) -> dict[str, str]:
        """Labels the rule matches on: the common labels, else the first alert's."""
        return self.common_labels or self.alerts[0].labels
