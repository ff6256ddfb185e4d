"""Logging set-up: stderr plus a file in the data dir; stdout stays for the protocol.

Every handler carries a `RedactingFilter`, so no record reaches stderr or the log file with
a secret in it: credential shapes (bearer tokens, `api_key=…`, URL passwords, AWS keys…)
and the values of secret-looking environment variables and configured tokens, as read
when logging is configured.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from orchestrator_mcp.telemetry.audit import redact_text

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Environment variables whose values are secrets (OPENAI_API_KEY, ORCH_HTTP_TOKEN,
# AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, GITHUB_TOKEN, DB_PASSWORD, …).
SECRET_ENV = re.compile(r"pass|secret|token|api[_-]?key|credential|private[_-]?key", re.I)
MIN_SECRET_LENGTH = 8  # shorter values ("1", "true") would blank out ordinary text


def env_secrets(environ: Mapping[str, str] | None = None) -> list[str]:
    """Values of secret-looking environment variables."""
    environ = os.environ if environ is None else environ
    return [v for k, v in environ.items() if SECRET_ENV.search(k) and len(v) >= MIN_SECRET_LENGTH]


def config_secrets(config: Any) -> list[str]:
    """Tokens written in servers.yaml / profiles.yaml: the HTTP tokens, the alert webhook
    token, and downstream servers' env and header values under secret-looking names."""
    found: list[str | None] = []
    servers = getattr(config, "servers", None)
    http = getattr(servers, "http", None)
    if http is not None:
        found.append(http.token)
        found.extend(t.token for t in http.tokens)
    for server in (getattr(servers, "servers", None) or {}).values():
        for mapping in (server.env, server.headers):
            found.extend(v for k, v in mapping.items() if SECRET_ENV.search(k)
                         or k.lower() == "authorization")
    alerts = getattr(getattr(config, "profiles", None), "alerts", None)
    found.append(getattr(alerts, "token", None))
    return [s for s in found if isinstance(s, str) and len(s) >= MIN_SECRET_LENGTH]


class RedactingFilter(logging.Filter):
    """Rewrites each record's message (and its traceback) with secrets as ***."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        # Longest first, so a secret that contains another is hidden whole.
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)
        self._traceback = logging.Formatter()

    def add(self, secrets: Iterable[str | None]) -> None:
        self.secrets = sorted({*self.secrets, *(s for s in secrets if s)}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_redacted", False):  # done by the previous handler
            return True
        record._redacted = True
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string: leave it to the handler
            return True
        clean = redact_text(message, self.secrets)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._traceback.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text, self.secrets)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info, self.secrets)
        return True


def redacting_filter() -> RedactingFilter | None:
    """The filter installed by configure_logging, to add secrets learnt later."""
    for handler in logging.getLogger().handlers:
        for f in handler.filters:
            if isinstance(f, RedactingFilter):
                return f
    return None


def configure_logging(data_dir: Path, level: str = "INFO",
                      secrets: Iterable[str | None] = ()) -> Path:
    log_dir = data_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_file = log_dir / "orchestrator.log"
    root = logging.getLogger()
    root.handlers.clear()
    formatter = logging.Formatter(LOG_FORMAT)
    redactor = RedactingFilter([*env_secrets(), *(s for s in secrets if s)])
    for handler in (
        logging.StreamHandler(sys.stderr),
        logging.handlers.RotatingFileHandler(log_file, maxBytes=10_000_000, backupCount=3),
    ):
        handler.setFormatter(formatter)
        handler.addFilter(redactor)
        root.addHandler(handler)
    root.setLevel(level.upper())
    return log_dir
