"""Configuration: servers.yaml, profiles.yaml and paths, validated once at start."""

from orchestrator_mcp.config.files import ServersFile
from orchestrator_mcp.config.gateway import GatewaySettings, ServerConfig, ToolFilter
from orchestrator_mcp.config.loader import Config, ConfigError, find_config_dir, load_config
from orchestrator_mcp.config.paths import resolve_data_dir
from orchestrator_mcp.config.profiles import ProfileConfig

__all__ = [
    "Config",
    "ConfigError",
    "GatewaySettings",
    "ProfileConfig",
    "ServerConfig",
    "ServersFile",
    "ToolFilter",
    "find_config_dir",
    "load_config",
    "resolve_data_dir",
]
