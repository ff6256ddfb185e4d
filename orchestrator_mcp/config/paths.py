"""Where configuration and data live when the command line does not say."""

from __future__ import annotations

from pathlib import Path

import platformdirs

APP_NAME = "orchestrator-mcp"


def user_config_dir() -> Path:
    return Path(platformdirs.user_config_dir(APP_NAME))


def resolve_data_dir(explicit: Path | None) -> Path:
    """`--data-dir`, else `ORCH_DATA_DIR`, else the per-user data dir; created if missing."""
    from orchestrator_mcp.config.environment import environment

    chosen = (explicit or environment().orchestrator.data_dir
              or Path(platformdirs.user_data_dir(APP_NAME)))
    chosen.mkdir(parents=True, exist_ok=True)
    return chosen
