"""Where configuration and data live when the command line does not say."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "orchestrator-mcp"


def user_config_dir() -> Path:
    return Path(platformdirs.user_config_dir(APP_NAME))


def resolve_data_dir(explicit: Path | None) -> Path:
    """`--data-dir`, else `ORCH_DATA_DIR`, else the per-user data dir; created if missing."""
    chosen = explicit or (Path(os.environ["ORCH_DATA_DIR"]) if os.environ.get("ORCH_DATA_DIR")
                          else Path(platformdirs.user_data_dir(APP_NAME)))
    chosen.mkdir(parents=True, exist_ok=True)
    return chosen
