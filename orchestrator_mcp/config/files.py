"""The two files' top-level shapes: servers.yaml and profiles.yaml, one section per part
(each section's model lives in the module of its part).

Every model forbids unknown keys so a typo is an error, not a silently ignored option.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from orchestrator_mcp.config.agents import AgentsSettings
from orchestrator_mcp.config.alerts import AlertsSettings
from orchestrator_mcp.config.audit import AuditSettings
from orchestrator_mcp.config.base import Name, Strict
from orchestrator_mcp.config.gateway import GatewaySettings, ServerConfig
from orchestrator_mcp.config.http import HttpSettings
from orchestrator_mcp.config.knowledge import KnowledgeSettings
from orchestrator_mcp.config.llm import LLMSettings
from orchestrator_mcp.config.notifications import NotificationsSettings
from orchestrator_mcp.config.profiles import ProfileConfig
from orchestrator_mcp.config.runs import RunsSettings
from orchestrator_mcp.config.schedules import ScheduleDef
from orchestrator_mcp.config.templates import TemplateDef
from orchestrator_mcp.workflows.definitions import WorkflowDef


class ServersFile(Strict):
    servers: dict[Name, ServerConfig] = Field(default_factory=dict)
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    agents: AgentsSettings = Field(default_factory=AgentsSettings)
    knowledge: KnowledgeSettings = Field(default_factory=KnowledgeSettings)
    runs: RunsSettings = Field(default_factory=RunsSettings)
    notifications: NotificationsSettings = Field(default_factory=NotificationsSettings)

    @model_validator(mode="before")
    @classmethod
    def _accept_host_shape(cls, data: object) -> object:
        if isinstance(data, dict) and "mcpServers" in data:
            data = dict(data)
            if "servers" in data:
                raise ValueError("use either 'servers' or 'mcpServers', not both")
            data["servers"] = data.pop("mcpServers")
        return data


class ProfilesFile(Strict):
    profiles: dict[Name, ProfileConfig] = Field(default_factory=dict)
    alerts: AlertsSettings = Field(default_factory=AlertsSettings)
    workflows: dict[Name, WorkflowDef] = Field(default_factory=dict)
    templates: dict[Name, TemplateDef] = Field(default_factory=dict)
    schedules: dict[Name, ScheduleDef] = Field(default_factory=dict)
